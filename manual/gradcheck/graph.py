r"""A numerical check of any graph network: perturb one element, re-run what lies downstream.

Perturbing a parameter of node :math:`n` (or a graph input) changes only the nodes reachable
from :math:`n`, so each perturbed evaluation re-runs the pure forwards of that topological
suffix and reads every other value from the unperturbed pass. State (running statistics) is
read, never updated, and noise (a dropout mask) stays fixed, so the function being
differentiated is the one the analytic backward saw. The loss is
:math:`\sum \delta \odot \ell` with the upstream gradient :math:`\delta` of that backward.

This is the general path; :mod:`manual.gradcheck.network` keeps the batched rank-one path for
chains of linear and elementwise or row-wise layers, which is much faster there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from manual.data import Data
from manual.gradcheck.core import Analytic, Array
from manual.layers import LAYERS
from manual.network import Network
from manual.parameters import draw_noise, initial_parameters, initial_state
from manual.random import stream
from manual.registry import LOSSES
from manual.spec import Spec


class GraphEvaluator(Analytic):
    """Perturbed evaluations of a graph network's loss (the Evaluator protocol)."""

    def __init__(self, spec: Spec, data: Data, params: Mapping[str, Array] | None = None,
                 seed: int = 0) -> None:
        self.spec, self.y = spec, data.y
        params = initial_parameters(spec) if params is None else params
        self.params: dict[str, Array] = {k: np.array(v, dtype=np.float64)
                                         for k, v in params.items()}
        self.state = {k: np.array(v) for k, v in initial_state(spec).items()}
        self.noise = draw_noise(spec, len(data.x))
        net = Network(spec, {k: v.copy() for k, v in self.params.items()},
                      {k: v.copy() for k, v in self.state.items()})
        inputs = {k: v.astype(np.float64) if v.dtype.kind == "f" else v
                  for k, v in data.feed(spec).items()}
        loss = net.loss(net.forward(inputs, self.noise), self.y)
        # A reduced loss is backpropagated from 1; ``none`` from a seeded random upstream,
        # drawn as the rank-one evaluator draws it.
        shape = np.shape(loss)
        self.dloss = stream(seed, "gradcheck", "dloss").standard_normal(shape) if shape \
            else np.ones(())
        self.base: dict[str, Any] = dict(net.values)
        self.training = net.training
        net.backward(self.dloss)
        self.grads = {k: np.array(v, dtype=np.float64) for k, v in net.named_grads().items()}
        for item in spec.inputs:
            if item.kind == "real":
                grad = net.input_grads.get(item.name)
                self.grads[item.name] = np.zeros_like(inputs[item.name]) if grad is None \
                    else np.array(grad, dtype=np.float64)
        self.inputs = inputs
        self.names = list(self.grads)
        self.slots = {f"{node.name}.{k}": (node.name, k) for node in spec.nodes
                      for k in node.signature.params}
        self.scale = float(np.sum(np.abs(self.dloss * loss)) + sum(
            np.sum(np.abs(np.asarray(net.values[k]) * g)) for k, g in net.grad_at.items()
            if k in net.values and np.shape(net.values[k]) == np.shape(g)))
        self.multiply_adds = 0
        # Each node's switches (LayerInfo.switches) at the unperturbed point, made when needed.
        self.switches: dict[str, Array] = {}

    # -- the Evaluator protocol -------------------------------------------------------------

    def value(self, name: str) -> Array:
        return self.inputs[name] if name in self.inputs else self.params[name]

    def differences(self, name: str, h: float, flat: NDArray[np.int64] | None = None,
                    direction: Array | None = None, complex_step: bool = False
                    ) -> tuple[Array, NDArray[np.bool_]]:
        if complex_step:
            raise ValueError("the graph evaluator has no complex step; use full mode")
        if name not in self.grads:
            raise ValueError(f"tensor: no tensor {name!r} (known: {', '.join(self.names)})")
        base = self.value(name)
        units = [direction] if direction is not None else [
            np.eye(1, base.size, int(i)).reshape(base.shape) for i in (flat if flat is not None
                                                                     else range(base.size))]
        deltas, crossed = [], []
        for unit in units:
            up, up_hit = self._loss(name, base + h * unit)
            down, down_hit = self._loss(name, base - h * unit)
            deltas.append(up - down)
            crossed.append(up_hit or down_hit)
        return np.asarray(deltas), np.asarray(crossed, dtype=bool)

    # -- one perturbed evaluation -----------------------------------------------------------

    def _loss(self, name: str, value: Array) -> tuple[float, bool]:
        """The loss with tensor ``name`` set to ``value``, and whether a kink was crossed."""
        values = dict(self.base)
        # Parameter names may hold dots themselves (``attn.out_proj.weight``): look the
        # owner and slot up rather than splitting the name.
        owner, slot = (name, "") if name in self.inputs else self.slots[name]
        dirty = {owner}
        if name in self.inputs:
            values[name] = value
        hit = False
        for node in self.spec.nodes:
            if node.name != owner and not dirty.intersection(node.inputs):
                continue
            dirty.add(node.name)
            info = LAYERS[node.type]
            params = {k: self.params[f"{node.name}.{k}"] for k in node.signature.params}
            if node.name == owner and name not in self.inputs:
                params[slot] = value
            args = tuple(values[ref] for ref in node.inputs)
            hit = hit or self._crosses(node, info, args)
            state = {k: self.state[f"{node.name}.{k}"] for k in node.signature.state}
            noise = {k: self.noise[f"{node.name}.{k}"] for k in node.signature.noise}
            y, _, _ = info.forward(args, params, state, noise, training=self.training,
                                   **node.resolved)
            if node.signature.outputs:
                for out, v in zip(node.signature.outputs, y, strict=True):
                    values[f"{node.name}.{out}"] = v
                    dirty.add(f"{node.name}.{out}")
                y = y[0]
            values[node.name] = y
        loss_op = LOSSES[self.spec.loss.type]
        out = values[self.spec.output]
        loss, _ = loss_op.forward(out, self.y, **self.spec.loss.options)
        return float(np.sum(self.dloss * loss)), hit or self._loss_crosses(loss_op, out)

    def _crosses(self, node: Any, info: Any, args: tuple[Array, ...]) -> bool:
        """Whether the perturbed inputs ``args`` of ``node`` took another branch than the
        unperturbed ones: a changed ``switches`` (a max pool's winner), or an activation's
        input moved across one of its kinks."""
        if info.switches is not None:
            if node.name not in self.switches:
                base = tuple(self.base[ref] for ref in node.inputs)
                self.switches[node.name] = info.switches(base, node.resolved)
            return bool(np.any(info.switches(args, node.resolved) != self.switches[node.name]))
        if info.op is None:
            return False
        kinks = tuple(info.op.domain.kinks(node.options))
        return _straddles(self.base[node.inputs[0]], args[0], kinks)

    def _loss_crosses(self, loss_op: Any, out: Array) -> bool:
        """Whether the loss's input (less the target, for a regression loss) crossed a kink
        (``l1`` at 0, ``huber`` at ``delta``)."""
        kinks = tuple(loss_op.domain.kinks(self.spec.loss.options))
        if not kinks:
            return False
        before = np.asarray(self.base[self.spec.output])
        if "real" in loss_op.targets:
            target = np.reshape(self.y, before.shape)
            return _straddles(before - target, np.asarray(out) - target, kinks)
        return _straddles(before, out, kinks)


def _straddles(before: Array, after: Array, kinks: tuple[float, ...]) -> bool:
    """Whether some element lies on different sides of a kink point before and after (touching
    the point counts; resting on it does not)."""
    before, after = np.asarray(before), np.asarray(after)
    return any(bool(np.any(np.sign(before - k) != np.sign(after - k))) for k in kinks)
