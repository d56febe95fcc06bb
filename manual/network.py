r"""The manual engine's network: a graph executor over the spec's nodes.

Forward runs the nodes in topological order (the spec's order); backward runs them in
reverse and, where a value feeds several nodes, sums the gradients that come back
(micrograd's ``+=``: :math:`\partial L/\partial v = \sum_{c \in \text{consumers}(v)}
\partial L/\partial v\,|_c`). After :meth:`Network.forward`, ``values[name]`` is every graph
input and node output; after :meth:`Network.backward`, ``grad_at[name]`` is :math:`\partial
L/\partial` that value, ``grad_in[(node, j)]`` the gradient one node sent back along its
``j``-th input edge (which localises a divergence where paths meet), and ``input_grads`` the
gradient at each graph input. Parameter gradients accumulate across backward passes until
:meth:`zero_grad`, as PyTorch's ``.grad`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from manual.layers import LAYERS, LayerInfo
from manual.module import Layer, Module
from manual.numerics import Array
from manual.parameters import initial_parameters, initial_state
from manual.registry import LOSSES, OpInfo
from manual.spec import Spec

__all__ = ["Network", "build", "initial_parameters", "initial_state"]


class Network:
    """The nodes of one spec as modules, and the loss."""

    def __init__(self, spec: Spec, params: Mapping[str, Array] | None = None,
                 state: Mapping[str, Array] | None = None,
                 entries: Mapping[str, LayerInfo] | None = None) -> None:
        """``entries`` gives a node (by name) an entry of its own instead of its type's in
        :data:`~manual.layers.LAYERS` (a user's layer, an op checked alone)."""
        self.spec = spec
        entries = entries or {}
        params = initial_parameters(spec) if params is None else params
        state = initial_state(spec) if state is None else state
        self.modules: dict[str, Layer] = {}
        for node in spec.nodes:
            signature = node.signature
            own = {k: params[f"{node.name}.{k}"] for k in signature.params}
            buffers = {k: state[f"{node.name}.{k}"] for k in signature.state}
            own_entry = entries.get(node.name)
            self.modules[node.name] = Layer(
                LAYERS[node.type] if own_entry is None else own_entry, node.resolved, own,
                buffers, registered=own_entry is None)
        self.loss_op: OpInfo = LOSSES[spec.loss.type]
        self.loss_options = dict(spec.loss.options)
        self.values: dict[str, Any] = {}
        self.grad_at: dict[str, Array] = {}
        self.grad_in: dict[tuple[str, int], Array | None] = {}
        self.input_grads: dict[str, Array | None] = {}
        self._loss_cache: Any = None
        self.train(spec.mode == "train")

    # -- running ---------------------------------------------------------------------------

    def forward(self, inputs: Mapping[str, Array] | Array,
                noise: Mapping[str, Array] | None = None) -> Array:
        """Run every node; ``inputs`` by graph-input name (or the one input's array)."""
        if not isinstance(inputs, Mapping):
            inputs = {self.spec.inputs[0].name: inputs}
        values: dict[str, Any] = dict(inputs)
        for node in self.spec.nodes:
            module = self.modules[node.name]
            if node.signature.noise:
                module.noise = {k: noise[f"{node.name}.{k}"] for k in node.signature.noise} \
                    if noise is not None else {}
            y = module.forward(*(values[ref] for ref in node.inputs))
            if node.signature.outputs:  # several outputs: "<node>" is the first
                for name, value in zip(node.signature.outputs, y, strict=True):
                    values[f"{node.name}.{name}"] = value
                values[node.name] = y[0]
            else:
                values[node.name] = y
        self.values = values
        return values[self.spec.output]

    def loss(self, output: Array, target: Array) -> Array:
        value, self._loss_cache = self.loss_op.forward(output, target, **self.loss_options)
        return value

    def backward(self, dloss: Array | float = 1.0) -> Array | None:
        """Backpropagate ``dloss`` (1 for a reduced loss) from the loss to the inputs."""
        dtype = np.dtype(self.spec.dtype)
        dy = self.loss_op.backward(np.asarray(dloss, dtype=dtype), self._loss_cache)
        return self.backward_from(dy)

    def backward_from(self, grad: Array | Mapping[str, Array]) -> Array | None:
        """Backpropagate ``grad`` = :math:`\\partial L/\\partial` output, or a gradient at each
        of several values (by name: ``{"lstm.output": ..., "lstm.h_n": ...}``); returns the
        first input's gradient."""
        grads: dict[str, Array] = dict(grad) if isinstance(grad, Mapping) else \
            {self.spec.output: grad}
        self.grad_in = {}
        for node in reversed(self.spec.nodes):
            dy = self._upstream(node.name, node.signature.outputs, grads)
            if dy is None:  # nothing below the loss reads this node
                continue
            dinputs = self.modules[node.name].backward(dy)
            for j, (ref, dx) in enumerate(zip(node.inputs, dinputs, strict=True)):
                self.grad_in[(node.name, j)] = dx
                if dx is not None:
                    self.accumulate(grads, ref, dx)
        self.grad_at = grads
        self.input_grads = {i.name: grads.get(i.name) for i in self.spec.inputs}
        return self.input_grads[self.spec.inputs[0].name]

    def accumulate(self, grads: dict[str, Array], ref: str, dx: Array) -> None:
        """Where paths meet, gradients add (a new array: nothing handed out is written)."""
        grads[ref] = dx if ref not in grads else grads[ref] + dx

    def _upstream(self, name: str, outputs: Mapping[str, Any], grads: dict[str, Array]) -> Any:
        if not outputs:
            return grads.get(name)
        keys = [f"{name}.{out}" for out in outputs]
        if name in grads:  # the first output read as "<node>"
            first = grads[name]
            grads[keys[0]] = first if keys[0] not in grads else grads[keys[0]] + first
        if keys[0] in grads:  # "<node>" and "<node>.<first>" are one value: one gradient
            grads[name] = grads[keys[0]]
        if not any(key in grads for key in keys):
            return None
        return tuple(grads[key] if key in grads else np.zeros_like(self.values[key])
                     for key in keys)

    # -- modes and slots -------------------------------------------------------------------

    def train(self, mode: bool = True) -> Network:
        self.training = mode
        for module in self.modules.values():
            module.training = mode
        return self

    def eval(self) -> Network:
        return self.train(False)

    def zero_grad(self) -> None:
        for module in self.modules.values():
            for grad in module.grads.values():
                grad.fill(0)

    def named_parameters(self) -> dict[str, Array]:
        return {f"{n}.{k}": v for n, m in self.modules.items() for k, v in m.params.items()}

    def named_grads(self) -> dict[str, Array]:
        return {f"{n}.{k}": v for n, m in self.modules.items() for k, v in m.grads.items()}

    def named_state(self) -> dict[str, Array]:
        return {f"{n}.{k}": v for n, m in self.modules.items() for k, v in m.state.items()}

    # -- a chain's view (round 1's names) ----------------------------------------------------

    @property
    def layers(self) -> list[Module]:
        return list(self.modules.values())

    @property
    def outputs(self) -> list[Array]:
        """Each node's output, in order (``forward: layers.{i}``)."""
        return [self.values[node.name] for node in self.spec.nodes]

    @property
    def upstream(self) -> list[Array]:
        """:math:`\\partial L/\\partial` each node's output, in order (``backward: layers.{i}``)."""
        return [self.grad_at[node.name] for node in self.spec.nodes]

    @property
    def input_grad(self) -> Array | None:
        return self.input_grads.get(self.spec.inputs[0].name)


def build(spec: Spec, params: Mapping[str, Array] | None = None,
          state: Mapping[str, Array] | None = None) -> Network:
    """Build the manual network for ``spec`` (slots from the spec's seed by default)."""
    return Network(spec, params, state)
