r"""``check_network``: a user's own network, value by value, against the spec's PyTorch mirror.

The user runs their own code with the spec's weights and hands in whatever they computed, by
the harness's tensor names (:func:`reference.core.compare.run_tensors`; a chain's nodes are
``layers.{i}``)::

    forward: layers.{i}    the output of node i           forward: loss
    state: {node}.{buffer} a buffer after the forward     backward: output  dL/d(network output)
    backward: layers.{i}   dL/d(output i)                 backward: input   dL/dx
    backward: layers.{i}.weight, .bias                    backward: {ref} -> {node}  an edge

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

import manual
from manual.data import Data
from manual.layers import LAYERS
from manual.spec import Spec
from reference.checks.diagnose import compare_named, constant_factor
from reference.checks.model import check_model
from reference.core.compare import _edge_name, grad_name, run_tensors, spec_tolerance
from reference.core.names import TensorName
from reference.core.records import ComparisonRecord
from reference.core.run import run_torch

LAYOUTS = ("rows", "columns")


def _reference_values(spec: Spec, data: Data, params: Mapping[str, np.ndarray],
                      dloss: np.ndarray | None) -> dict[str, tuple[np.ndarray, str]]:
    """Every tensor of one torch pass by printed name, with its pass (``forward`` or
    ``backward``): the one place this module drives an engine. Noise (a dropout mask) is the
    harness's own draw, as in ``compare_network``."""
    run = run_torch(spec, data, params=params, dloss=dloss,
                    noise=manual.draw_noise(spec, len(data.x)))
    return {key: (np.asarray(value), stage)
            for key, (_, value, stage) in run_tensors(spec, run).items() if value is not None}


def order(spec: Spec) -> list[str]:
    """Tensor names in the order a forward then a backward pass computes them.

    Forward: each node's outputs and state in topological order, then the loss. Backward:
    the gradient at the output, then each node in reverse order (the gradient at its output,
    its parameter gradients, what it sent back along a shared input edge), then the inputs.
    """
    return [str(name) for name in ordered_names(spec)]


def ordered_names(spec: Spec) -> list[TensorName]:
    """:func:`order`'s names as fields."""
    names: list[TensorName] = []
    for node in spec.nodes:
        names += [TensorName("forward", node.name)]
        names += [TensorName("forward", node.name, o) for o in list(node.signature.outputs)[1:]]
        names += [TensorName("state", node.name, k) for k in node.signature.state]
    names += [TensorName("forward", "loss"), grad_name(spec, spec.output)]
    shared = spec.shared()
    for node in reversed(spec.nodes):
        if node.name != spec.output:
            names.append(grad_name(spec, node.name))
        names += [TensorName("backward", node.name, k) for k in node.signature.params]
        names += [_edge_name(spec, node, j) for j, ref in enumerate(node.inputs) if ref in shared]
    names += [grad_name(spec, i.name) for i in spec.inputs if i.kind == "real"]
    return names


def _in_layout(name: TensorName, value: Any, want: np.ndarray, layout: str) -> Any:
    if layout == "rows" or value is None:
        return value
    array = np.asarray(value)
    if name.slot == "weight":
        return array
    loss = name.stage == "forward" and name.ref == "loss"
    if array.size == want.size and (name.slot == "bias" or loss):
        return array.reshape(want.shape)
    return array.T if array.ndim == 2 else array


def _factor_note(spec: Spec, values: Mapping[str, np.ndarray], first: str, c: float) -> str:
    note = f"from {first} on, every gradient is {c:.3g} x PyTorch's"
    for node in spec.nodes:
        op = LAYERS[node.type].op  # an activation whose f' is written in its output a = f(x)
        if op is not None and op.calculus.derivative is not None:
            a = values[str(TensorName("forward", node.name))]
            formula, derivative = op.calculus.derivative
            if a.size == 1 and abs(derivative(float(a.reshape(()))) - c) <= 1e-3 * abs(c):
                return (f"{note} (= {formula} = {node.type}' at {node.name}, a = "
                        f"{float(a.reshape(())):.4g}): a factor {node.type}' applied twice?")
    return note + ": one factor applied once too often, or missing?"


def check_network(
    spec: Spec | Any, data: Data | tuple[Any, Any], mine: Mapping[str, Any] | None = None, *,
    params: Mapping[str, np.ndarray] | None = None, layout: str = "rows",
    dloss: np.ndarray | None = None, keep_values: bool = True, torch: Any = None,
    mapping: Mapping[str, str] | None = None, loss: Callable[..., Any] | None = None,
    name: str | None = None,
) -> ComparisonRecord:
    """Compare the user's values ``mine`` (by tensor name) with PyTorch's run of ``spec``.

    ``params`` are the weights the user ran with, by the spec's names (default: the spec's
    initial parameters, explicit in a spec like the seed's). The upstream gradient of the
    loss is 1 for a reduced loss, as ``loss.backward()``.

    Given a model instead of a spec (an object with ``params`` and ``loss(X, y)``, or a
    callable ``(X, y) -> (loss, grads)`` with ``params``), ``data`` is ``(X, y)`` and
    ``torch`` its twin (``mapping``, ``loss``): see :mod:`reference.checks.model`.
    """
    if not isinstance(spec, Spec):
        if torch is None or isinstance(data, Data):
            raise ValueError("torch: checking a model needs its PyTorch twin (a function of "
                             "the parameters by name, or an nn.Module with mapping) and "
                             "data (X, y)")
        return check_model(spec, data, torch=torch, params=params, mapping=mapping,
                           loss=loss, name=name)
    if not isinstance(data, Data) or mine is None:
        raise ValueError("check_network(spec, data, mine): give the spec's data and your "
                         "values by tensor name")
    if layout not in LAYOUTS:
        raise ValueError(f"layout: must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    start = dict(manual.initial_parameters(spec) if params is None else params)
    reference = _reference_values(spec, data, start, dloss)
    values = {name: value for name, (value, _) in reference.items()}
    if not mine:  # nothing handed in would pass vacuously
        raise ValueError(f"mine: no tensors given; names: "
                         f"{', '.join(n for n in order(spec) if n in values)}")
    unknown = sorted(set(mine) - set(values))
    if unknown:
        raise ValueError(f"mine: no tensor {unknown[0]!r} in this spec; names: "
                         f"{', '.join(n for n in order(spec) if n in values)}")
    tolerances = {stage: spec_tolerance(spec, stage) for stage in ("forward", "backward")}
    named = {str(name): name for name in ordered_names(spec)}
    names = [n for n in named if n in mine]
    got = {n: _in_layout(named[n], mine[n], values[n], layout) for n in names}
    tensors = [compare_named(named[n], got[n], values[n], tolerances[reference[n][1]],
                             keep_values) for n in names]
    failing = [t.name for t in tensors if not t.passed]
    notes = []
    if failing:
        first = failing[0]
        later = [n for n in names[names.index(first):]
                 if named[n].stage in ("backward", "edge")]
        c = constant_factor([(got[n], values[n]) for n in later]) if later else None
        if c is not None:
            notes.append(_factor_note(spec, values, first, c))
    worst = next((t for t in tensors if not t.passed), None)
    divergence = None if worst is None else f"{worst.name}: {worst.problem}"
    return ComparisonRecord(
        subject=spec.name or "network", kind="network", dtype=spec.dtype, seed=spec.seed,
        passed=worst is None, first_divergence=divergence,
        tolerance_reason="; ".join(sorted({t.reason for t in tolerances.values()})),
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
