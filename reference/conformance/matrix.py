"""The conformance matrix: every registered op alone, and every activation x loss in a network.

Both the test suite and ``make report`` iterate these cases, so a new registry
entry is covered everywhere without new test code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import manual
from manual.random import stream
from manual.registry import ACTIVATIONS, LOSSES, OpInfo, loss_info
from manual.spec import DTYPES, Spec
from reference.core import sampling


@dataclass(frozen=True)
class OpCase:
    """One op alone, with one set of options (and, for a loss, one target kind)."""

    op: OpInfo
    dtype: str
    options: Mapping[str, Any] = field(default_factory=dict)
    target_kind: str | None = None

    @property
    def id(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in self.options.items())
        target = f"[{self.target_kind}]" if self.target_kind else ""
        return f"{self.op.name}{target}({opts})-{self.dtype}"


def op_cases(dtypes: tuple[str, ...] = DTYPES) -> Iterator[OpCase]:
    """Every registered op x every variant x every target kind x dtype."""
    for op in [*ACTIVATIONS.values(), *LOSSES.values()]:
        for options in op.variants:
            for target_kind in op.targets or (None,):
                for dtype in dtypes:
                    yield OpCase(op, dtype, options, target_kind)


def mlp_spec(
    widths: Sequence[int], activation: str, loss: str, dtype: str = "float64", *,
    seed: int = 0, name: str = "", activation_options: Mapping[str, Any] | None = None,
    loss_options: Mapping[str, Any] | None = None,
) -> Spec:
    """An MLP ``widths[0] -> ... -> widths[-1]`` with ``activation`` after every hidden
    layer, then whatever ``loss`` needs on its input (sigmoid before ``bce``, log_softmax
    before ``nll`` and ``kl_div``)."""
    layers: list[dict[str, Any]] = []
    for out in widths[1:-1]:
        layers += [{"type": "linear", "out_features": out},
                   {"type": activation, **(activation_options or {})}]
    layers.append({"type": "linear", "out_features": widths[-1]})
    adapter = loss_info(LOSSES[loss]).adapter  # what makes the input the loss needs
    if adapter:
        layers.append({"type": adapter})
    raw = {"input_shape": [widths[0]], "layers": layers,
           "loss": {"type": loss, **(loss_options or {})}, "dtype": dtype, "seed": seed}
    return manual.parse_spec({"name": name, **raw} if name else raw)


def network_spec(
    activation: str, loss: str, dtype: str, *, seed: int = 0, width: int = 8,
    features: int = 4, classes: int = 3, activation_options: Mapping[str, Any] | None = None,
    loss_options: Mapping[str, Any] | None = None,
) -> Spec:
    """The matrix's network: 2 hidden layers with ``activation`` after each, ending in ``loss``."""
    return mlp_spec([features, width, width, classes], activation, loss, dtype, seed=seed,
                    name=f"{activation} x {loss}", activation_options=activation_options,
                    loss_options=loss_options)


def network_data(spec: Spec, batch: int = 5, target_kind: str | None = None) -> manual.Data:
    """Seeded inputs and a target of the loss's (first) kind for ``spec``."""
    rng = stream(spec.seed, "matrix", spec.name)
    x = rng.standard_normal((batch, spec.input_shape[0]))
    op = LOSSES[spec.loss.type]
    y = sampling.target(target_kind or op.targets[0], (batch, spec.output_width), rng,
                        spec.dtype, spec.loss.options)
    return manual.make_data(spec, x, y)


@dataclass(frozen=True)
class NetworkCase:
    activation: str
    loss: str
    dtype: str

    @property
    def id(self) -> str:
        return f"{self.activation}x{self.loss}-{self.dtype}"

    def spec(self, seed: int = 0) -> Spec:
        return network_spec(self.activation, self.loss, self.dtype, seed=seed)


def network_cases(dtypes: tuple[str, ...] = DTYPES) -> Iterator[NetworkCase]:
    """Every activation x every loss (made compatible by the output adapter) x dtype."""
    for activation in ACTIVATIONS:
        for loss in LOSSES:
            for dtype in dtypes:
                yield NetworkCase(activation, loss, dtype)


# Graphs every protocol also runs on: a residual block, two branches concatenated, and a
# value read twice by one node (its gradient is the sum of both edges').
GRAPHS: dict[str, dict[str, Any]] = {
    "residual": {"inputs": {"x": {"shape": [6]}}, "nodes": [
        {"name": "fc1", "type": "linear", "inputs": ["x"], "out_features": 6},
        {"name": "act", "type": "tanh", "inputs": ["fc1"]},
        {"name": "skip", "type": "add", "inputs": ["act", "x"]},
        {"name": "head", "type": "linear", "inputs": ["skip"], "out_features": 3}],
        "loss": {"type": "cross_entropy"}},
    "branches": {"inputs": {"x": {"shape": [5]}}, "nodes": [
        {"name": "left", "type": "linear", "inputs": ["x"], "out_features": 4},
        {"name": "left_act", "type": "sigmoid", "inputs": ["left"]},
        {"name": "right", "type": "linear", "inputs": ["x"], "out_features": 3},
        {"name": "both", "type": "concat", "inputs": ["left_act", "right"]},
        {"name": "head", "type": "linear", "inputs": ["both"], "out_features": 2}],
        "loss": {"type": "mse"}},
    "twice": {"inputs": {"x": {"shape": [4]}}, "nodes": [
        {"name": "fc", "type": "linear", "inputs": ["x"], "out_features": 4},
        {"name": "double", "type": "add", "inputs": ["fc", "fc"]},
        {"name": "act", "type": "softplus", "inputs": ["double"]},
        {"name": "flat", "type": "flatten", "inputs": ["act"]},
        {"name": "head", "type": "linear", "inputs": ["flat"], "out_features": 3}],
        "loss": {"type": "mse"}},
}


def graph_spec(name: str, dtype: str, seed: int = 0) -> Spec:
    return manual.parse_spec({"name": name, **GRAPHS[name], "dtype": dtype, "seed": seed})


def graph_data(spec: Spec, batch: int = 5) -> manual.Data:
    """Seeded inputs and a target of the loss's first kind for a graph of :data:`GRAPHS`."""
    rng = stream(spec.seed, "matrix", spec.name)
    x = rng.standard_normal((batch, *spec.input_shape))
    kind = LOSSES[spec.loss.type].targets[0]
    return manual.make_data(spec, x, sampling.target(kind, (batch, spec.output_width), rng,
                                                     spec.dtype, spec.loss.options))
