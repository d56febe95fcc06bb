r"""``check_network``: a user's own network, value by value, against the spec's PyTorch mirror.

The user runs their own code with the spec's weights and hands in whatever they computed, by
the harness's tensor names::

    forward: layers.{i}    the output of layer i          forward: loss
    backward: output       dL/d(network output)           backward: layers.{i}  dL/d(output i)
    backward: input        dL/dx                          backward: layers.{i}.weight, .bias

The record names the first wrong one in the order backprop computes them, with both values
at its worst element. When the first wrong gradient and every later one are PyTorch's times
one constant :math:`c`, it says so; when :math:`c` equals :math:`a(1-a)` (sigmoid') or
:math:`1-a^2` (tanh') of a scalar activation output, it says which: the seed tutorial's slip
(its sigmoid' applied twice) makes every gradient :math:`0.056\times` PyTorch's.

``layout="columns"`` takes the seed's column vectors: activations and their gradients are
``(features, batch)`` and are transposed; biases ``(out, 1)`` are flattened.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import manual
from manual.data import Data
from manual.spec import Spec
from reference import engine
from reference.checks.diagnose import compare_named, constant_factor
from reference.compare import default_dloss, spec_tolerance
from reference.records import ComparisonRecord

LAYOUTS = ("rows", "columns")
_DERIVATIVES: Mapping[str, tuple[str, Callable[[float], float]]] = {
    "sigmoid": ("a(1 - a)", lambda a: a * (1 - a)),
    "tanh": ("1 - a^2", lambda a: 1 - a * a),
}


def _reference_values(spec: Spec, data: Data, params: Mapping[str, np.ndarray],
                      dloss: np.ndarray | None) -> dict[str, np.ndarray]:
    """Every tensor of one torch pass, by name: the one place this module drives an engine
    (to be rewired to ``reference.run.run_torch``)."""
    net = engine.build(spec, params)
    if dloss is None:
        with torch.no_grad():
            outputs = net(torch.from_numpy(data.x.copy()))
            top = outputs[-1] if outputs else torch.from_numpy(data.x.copy())
            loss = net.loss_fn(top, torch.from_numpy(data.y), **net.loss_options)
        dloss = default_dloss(spec, tuple(loss.shape))
    run = engine.run(net, data.x, data.y, dloss)
    values = {f"forward: layers.{i}": out for i, out in enumerate(run.outputs)}
    values["forward: loss"] = run.loss
    values["backward: output"] = run.loss_grad
    values |= {f"backward: layers.{i}": up for i, up in enumerate(run.upstream)}
    values["backward: input"] = run.input_grad
    values |= {f"backward: {name}": grad for name, grad in run.grads.items()}
    return values


def order(spec: Spec) -> list[str]:
    """Tensor names in the order a forward then a backward pass computes them."""
    n = len(spec.layers)
    names = [f"forward: layers.{i}" for i in range(n)] + ["forward: loss", "backward: output"]
    for i in range(n - 1, -1, -1):
        if i < n - 1:
            names.append(f"backward: layers.{i}")
        names += [f"backward: layers.{i}.weight", f"backward: layers.{i}.bias"]
    return [*names, "backward: input"]


def _in_layout(name: str, value: Any, want: np.ndarray, layout: str) -> Any:
    if layout == "rows" or value is None:
        return value
    array = np.asarray(value)
    if name.endswith(".weight"):
        return array
    if array.size == want.size and (name.endswith(".bias") or name == "forward: loss"):
        return array.reshape(want.shape)
    return array.T if array.ndim == 2 else array


def _factor_note(spec: Spec, values: Mapping[str, np.ndarray], first: str, c: float) -> str:
    note = f"from {first} on, every gradient is {c:.3g} x PyTorch's"
    for i, layer in enumerate(spec.layers):
        if layer.type in _DERIVATIVES:
            a = values[f"forward: layers.{i}"]
            formula, derivative = _DERIVATIVES[layer.type]
            if a.size == 1 and abs(derivative(float(a.reshape(()))) - c) <= 1e-3 * abs(c):
                return (f"{note} (= {formula} = {layer.type}' at layers.{i}, a = "
                        f"{float(a.reshape(())):.4g}): a factor {layer.type}' applied twice?")
    return note + ": one factor applied once too often, or missing?"


def check_network(
    spec: Spec, data: Data, mine: Mapping[str, Any], *,
    params: Mapping[str, np.ndarray] | None = None, layout: str = "rows",
    dloss: np.ndarray | None = None, keep_values: bool = True,
) -> ComparisonRecord:
    """Compare the user's values ``mine`` (by tensor name) with PyTorch's run of ``spec``.

    ``params`` are the weights the user ran with, by the spec's names (default: the spec's
    initial parameters, explicit in a spec like the seed's). The upstream gradient of the
    loss is 1 for a reduced loss, as ``loss.backward()``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout: must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    start = dict(manual.initial_parameters(spec) if params is None else params)
    values = _reference_values(spec, data, start, dloss)
    unknown = sorted(set(mine) - set(values))
    if unknown:
        raise ValueError(f"mine: no tensor {unknown[0]!r} in this spec; names: "
                         f"{', '.join(n for n in order(spec) if n in values)}")
    tolerance = spec_tolerance(spec)
    names = [n for n in order(spec) if n in mine]
    got = {n: _in_layout(n, mine[n], values[n], layout) for n in names}
    tensors = [compare_named(n, got[n], values[n], tolerance, keep_values) for n in names]
    failing = [t.name for t in tensors if not t.passed]
    notes = []
    if failing:
        first = failing[0]
        later = [n for n in names[names.index(first):] if n.startswith("backward: ")]
        c = constant_factor([(got[n], values[n]) for n in later]) if later else None
        if c is not None:
            notes.append(_factor_note(spec, values, first, c))
    worst = next((t for t in tensors if not t.passed), None)
    divergence = None if worst is None else f"{worst.name}: {worst.problem}"
    return ComparisonRecord(
        subject=spec.name or "network", kind="network", dtype=spec.dtype, seed=spec.seed,
        passed=worst is None, first_divergence=divergence, tolerance_reason=tolerance.reason,
        tensors=tensors, spec=spec.to_dict(), options={"layout": layout}, notes=notes,
    )


@dataclass
class NetworkCase:
    """A user's network for ``backprop-harness check``: ``mine()`` runs the user's code and
    returns its values by tensor name."""

    name: str
    spec: Spec
    data: Data
    mine: Callable[[], Mapping[str, Any]]
    layout: str = "rows"
    params: Mapping[str, np.ndarray] | None = None

    def run(self) -> ComparisonRecord:
        record = check_network(self.spec, self.data, self.mine(), params=self.params,
                               layout=self.layout)
        record.subject = self.name
        return record
