"""One runner per engine: the only place either engine is driven through a spec.

:func:`run_manual` and :func:`run_torch` take the same spec, slots, data, upstream gradient
and noise and return a :class:`Run` of numpy arrays keyed alike, which the comparisons, the
protocols, the rounding judge, the experiments and lockstep training consume.

The upstream gradient enters through the loss (``dloss``), or, with ``grad_at_output``, at
named values directly (``{"lstm.output": g, "lstm.h_n": h}``): the loss is then not
evaluated, and an entry may be a function of the reference's shape that draws it
(:data:`Upstream`), so that a wrong-shaped output of the manual engine is a verdict, not a
crash. An empty ``grad_at_output`` runs the forward alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import manual
from manual.data import Data
from manual.numerics import Array
from manual.random import stream
from manual.registry import LOSSES
from manual.spec import Spec
from reference.core import mirror
from reference.core.engine import torch_callable

Draw = Callable[[tuple[int, ...]], Array]
# The gradient given at each named value: an array, or a draw from the reference's shape.
Upstream = Mapping[str, "Array | Draw"]


@dataclass
class Run:
    """Everything one forward, loss and backward pass produced.

    ``values`` holds every graph input and node output; ``grad_at[v]`` is
    :math:`\\partial L/\\partial v` (``grad_at[spec.output]`` is the gradient at the output);
    ``grad_in[(node, j)]`` is what ``node`` sent back along input edge ``j`` (recorded where the
    value read there feeds several nodes); ``state`` is every buffer after the forward.
    ``grad_at_output`` is the gradient given at named values in place of a loss (then
    ``loss`` is ``None``), as arrays.
    """

    loss: Array | None
    values: dict[str, Array]
    grad_at: dict[str, Array]
    param_grads: dict[str, Array]
    state: dict[str, Array] = field(default_factory=dict)
    grad_in: dict[tuple[str, int], Array] = field(default_factory=dict)
    dloss: Any = None
    grad_at_output: dict[str, Array] | None = None

    def loss_value(self) -> Array:
        """The loss; a run given its upstream at the output has none (an error)."""
        if self.loss is None:
            raise ValueError("run: no loss (its upstream was given at the output)")
        return self.loss


def default_dloss(spec: Spec, loss_shape: tuple[int, ...]) -> np.ndarray:
    """1 for a reduced loss (as ``loss.backward()``); a seeded random array for ``none``."""
    if not loss_shape:
        return np.asarray(1.0, dtype=spec.dtype)
    return stream(spec.seed, "dloss").standard_normal(loss_shape).astype(spec.dtype)


def reference_dloss(spec: Spec, data: Data) -> np.ndarray:
    """The upstream gradient both runs of ``spec`` on ``data`` get by default, from the shape of
    PyTorch's loss (evaluated on a zero output: the network itself need not run)."""
    output = torch.zeros((len(data.x), *spec.output_shape), dtype=getattr(torch, spec.dtype))
    loss_fn = torch_callable(LOSSES[spec.loss.type])
    loss = loss_fn(output, torch.from_numpy(data.y), **spec.loss.options)
    return default_dloss(spec, tuple(loss.shape))


def _zeros_like(value: Array) -> Array:
    return np.zeros(np.shape(value), dtype=np.asarray(value).dtype)


def run_manual(spec: Spec, data: Data, *, params: Mapping[str, Array] | None = None,
               state: Mapping[str, Array] | None = None, dloss: Any = None,
               noise: Mapping[str, Array] | None = None,
               net: manual.Network | None = None,
               grad_at_output: Mapping[str, Array] | None = None) -> Run:
    """One pass of the manual engine (a fresh network unless ``net`` is given); with
    ``grad_at_output`` (arrays), backward from those values instead of a loss."""
    if net is None:
        net = manual.build(spec, None if params is None else {k: v.copy() for k, v in
                                                              params.items()},
                           None if state is None else {k: v.copy() for k, v in state.items()})
    output = net.forward({k: v.copy() for k, v in data.feed(spec).items()}, noise)
    loss: Array | None = None
    if grad_at_output is None:
        loss = net.loss(output, data.y)
        if dloss is None:
            dloss = default_dloss(spec, np.shape(loss))
        net.backward(dloss)
    else:
        given = {k: np.array(v, copy=True) for k, v in grad_at_output.items()}
        if given:
            net.backward_from(given)
        else:
            net.grad_at, net.grad_in = {}, {}
    grad_at = {name: net.grad_at[name] if name in net.grad_at else _zeros_like(value)
               for name, value in net.values.items()}
    shared = spec.shared()
    # An edge into a node that does not lead to the loss carries no gradient: zeros, as
    # PyTorch's (never-set) .grad reads.
    grad_in: dict[tuple[str, int], Array] = {}
    for node in spec.nodes:
        for j, ref in enumerate(node.inputs):
            if ref in shared and spec.input_kind(ref) == "real":
                edge = net.grad_in.get((node.name, j))
                grad_in[(node.name, j)] = _zeros_like(net.values[ref]) if edge is None else edge
    return Run(loss=None if loss is None else np.asarray(loss), values=dict(net.values),
               grad_at=grad_at, param_grads=net.named_grads(), state=net.named_state(),
               grad_in=grad_in, dloss=dloss,
               grad_at_output=None if grad_at_output is None else dict(grad_at_output))


def _numpy(t: torch.Tensor | None, like: torch.Tensor) -> Array:
    if t is None:
        return np.zeros(tuple(like.shape), dtype=str(like.dtype).removeprefix("torch."))
    return t.detach().numpy().copy()


def _backward_from(values: Mapping[str, torch.Tensor], upstream: Upstream
                   ) -> dict[str, Array]:
    """``torch.autograd.backward`` from the given values; the upstream as arrays."""
    given = {}
    for ref, entry in upstream.items():
        value = values[ref]
        given[ref] = np.asarray(entry(tuple(value.shape)) if callable(entry) else entry)
    wanted = [ref for ref in given if values[ref].requires_grad]
    if wanted:
        torch.autograd.backward([values[ref] for ref in wanted],
                                [torch.from_numpy(given[ref].copy()) for ref in wanted])
    return given


def run_torch(spec: Spec, data: Data, *, params: Mapping[str, Array] | None = None,
              state: Mapping[str, Array] | None = None, dloss: Any = None,
              noise: Mapping[str, Array] | None = None,
              net: mirror.TorchGraph | None = None,
              grad_at_output: Upstream | None = None) -> Run:
    """One pass of the PyTorch mirror; every value keeps its gradient. Without ``net``, the
    mirror is lent by :func:`reference.core.mirror.lend` (reset modules of an earlier case of the
    same structure). With ``grad_at_output``, backward from those values instead of a loss
    (each entry an array, or a :data:`Draw` called with the value's shape)."""
    if net is None:
        net = mirror.lend(spec, params, state)
    else:
        net.zero_grad(set_to_none=False)
    arrays, feed = data.feed(spec), {}
    for item in spec.inputs:
        tensor = torch.from_numpy(arrays[item.name].copy())
        feed[item.name] = tensor.requires_grad_(True) if item.kind == "real" else tensor
    values, edges = net(feed, None if noise is None else
                        {k: torch.from_numpy(np.asarray(v).copy()) for k, v in noise.items()})
    for value in [*values.values(), *edges.values()]:
        if value.requires_grad:
            value.retain_grad()
    loss, given = None, None
    if grad_at_output is None:
        loss = net.loss_fn(values[spec.output], torch.from_numpy(data.y), **net.loss_options)
        if dloss is None:
            dloss = default_dloss(spec, tuple(loss.shape))
        loss.backward(torch.from_numpy(np.asarray(dloss, dtype=spec.dtype)))
    else:
        given = _backward_from(values, grad_at_output)
    return Run(
        loss=None if loss is None else loss.detach().numpy(),
        values={k: v.detach().numpy() for k, v in values.items()},
        grad_at={k: _numpy(v.grad, v) for k, v in values.items()},
        param_grads={k: _numpy(p.grad, p) for k, p in net.named_slots("params").items()},
        state={k: b.detach().numpy().copy() for k, b in net.named_slots("state").items()},
        grad_in={k: _numpy(v.grad, v) for k, v in edges.items()},
        dloss=dloss, grad_at_output=given,
    )
