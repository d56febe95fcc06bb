"""The PyTorch mirror of a spec: one torch module per node, the same slots, the same dtype.

Each node's module comes from the builder its registry entry names (``LayerInfo.torch``).
The manual engine's starting parameters and state are copied in by each slot's torch name, so
both engines start bit-identical; :meth:`TorchGraph.forward` runs the nodes in the spec's
(topological) order and keeps every value's gradient, and, where a value feeds several
nodes, each edge's own share of it.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from manual.layers import LAYERS
from manual.layers.info import LayerInfo, Signature
from manual.parameters import initial_parameters, initial_state
from manual.registry import LOSSES
from manual.spec import Node, Spec
from reference.core.engine import resolve, torch_callable


def attribute(module: nn.Module, path: str) -> Any:
    """``module.out_proj.weight`` for the path ``"out_proj.weight"``."""
    return functools.reduce(getattr, path.split("."), module)


def build_module(info: LayerInfo, node: Node, spec: Spec) -> nn.Module:
    """The torch module of ``node`` from the builder ``info.torch`` names."""
    shapes = tuple(spec.shape_of(ref) for ref in node.inputs)
    return resolve(info.torch)(info, node.options, node.signature, shapes,
                               getattr(torch, spec.dtype))


def _builder(node: Node, spec: Spec) -> nn.Module:
    return build_module(LAYERS[node.type], node, spec)


class TorchGraph(nn.Module):
    """The spec's nodes as torch modules (``graph_nodes[i]`` is node ``i``)."""

    def __init__(self, spec: Spec, params: Mapping[str, np.ndarray],
                 state: Mapping[str, np.ndarray] | None = None,
                 modules: Sequence[nn.Module] | None = None) -> None:
        super().__init__()
        self.graph_nodes = nn.ModuleList(
            [_builder(node, spec) for node in spec.nodes] if modules is None else modules)
        self.load(spec, params, state)

    def load(self, spec: Spec, params: Mapping[str, np.ndarray],
             state: Mapping[str, np.ndarray] | None = None) -> None:
        """Take ``spec`` (of the structure the modules were built for) and its starting
        slots: the parameters and state copied in, the loss and the training mode set."""
        self.spec = spec
        state = initial_state(spec) if state is None else state
        with torch.no_grad():
            for node, module in zip(spec.nodes, self.graph_nodes, strict=True):
                for kind, values in (("params", params), ("state", state)):
                    for name, slot in getattr(node.signature, kind).items():
                        target = attribute(module, slot.torch or name)
                        target.copy_(torch.from_numpy(np.asarray(values[f"{node.name}.{name}"])))
        loss = LOSSES[spec.loss.type]
        if getattr(self, "loss_op", None) is not loss:
            self.loss_op, self.loss_fn = loss, torch_callable(loss)
        self.loss_options = dict(spec.loss.options)
        training = spec.mode == "train"
        # train() sets a node module's whole tree at once, so its root's flag speaks for it
        if self.training != training or any(m.training != training for m in self.graph_nodes):
            self.train(training)
        self.shared = spec.shared()

    @property
    def layers(self) -> list[nn.Module]:
        return list(self.graph_nodes)

    def forward(self, inputs: Mapping[str, torch.Tensor],
                noise: Mapping[str, torch.Tensor] | None = None
                ) -> tuple[dict[str, torch.Tensor], dict[tuple[str, int], torch.Tensor]]:
        """Every value by name, and each shared value's per-edge copy (for its gradient)."""
        values: dict[str, torch.Tensor] = dict(inputs)
        edges: dict[tuple[str, int], torch.Tensor] = {}
        for node, module in zip(self.spec.nodes, self.graph_nodes, strict=True):
            if node.signature.noise:
                masks = {k: noise[f"{node.name}.{k}"] for k in node.signature.noise} \
                    if noise is not None else {}
                # nn.Module's typed __setattr__ expects tensors or modules; this is a plain dict
                module.noise = masks  # type: ignore[assignment]
            args = []
            for j, ref in enumerate(node.inputs):
                value = values[ref]
                if j in node.signature.no_grad:  # a mask: no gradient, as in the manual engine
                    value = value.detach()
                elif ref in self.shared and value.requires_grad:
                    value = value.view_as(value)  # its own autograd node: this edge's share
                    edges[(node.name, j)] = value
                args.append(value)
            y = module(*args)
            if node.signature.outputs:
                for name, value in zip(node.signature.outputs, y, strict=True):
                    values[f"{node.name}.{name}"] = value
                values[node.name] = y[0]
            else:
                values[node.name] = y
        return values, edges

    def named_slots(self, kind: str) -> dict[str, torch.Tensor]:
        """``params`` or ``state`` of every node, by the manual engine's names."""
        out = {}
        for node, module in zip(self.spec.nodes, self.graph_nodes, strict=True):
            for name, slot in getattr(node.signature, kind).items():
                out[f"{node.name}.{name}"] = attribute(module, slot.torch or name)
        return out


def build(spec: Spec, params: Mapping[str, np.ndarray] | None = None,
          state: Mapping[str, np.ndarray] | None = None) -> TorchGraph:
    """The torch mirror with the manual engine's starting slots (bit-identical)."""
    return TorchGraph(spec, initial_parameters(spec) if params is None else params, state)


def lend(spec: Spec, params: Mapping[str, np.ndarray] | None = None,
         state: Mapping[str, np.ndarray] | None = None) -> TorchGraph:
    """:func:`build`, from this thread's :class:`ModulePool`: the modules (and the graph
    around them) of earlier specs of the same structure, reset to what a fresh build gives.
    The graph is lent until the next call on this thread; keep one beyond that with
    :func:`build`."""
    pool = getattr(_LOCAL, "pool", None)
    if pool is None:
        pool = _LOCAL.pool = ModulePool()
    return pool.graph(spec, initial_parameters(spec) if params is None else params, state)


_LOCAL = threading.local()


def clear_pool() -> None:
    """Forget this thread's pooled modules (the next :func:`lend` builds afresh)."""
    _LOCAL.pool = ModulePool()


def _plain(value: Any) -> Hashable:
    """A hashable form of a JSON-like option that tells apart what may build different
    modules (``1``, ``1.0`` and ``True``; ``0.0`` and ``-0.0``); TypeError for anything else."""
    if value is None or isinstance(value, (bool, int, str)):
        return type(value), value
    if isinstance(value, float):
        return float, repr(value)
    if isinstance(value, (list, tuple)):
        return type(value), tuple(_plain(v) for v in value)
    if isinstance(value, Mapping):
        return dict, tuple(sorted((str(k), _plain(v)) for k, v in value.items()))
    raise TypeError(f"option value {type(value).__name__} is not JSON-like")


class _Pooled:
    """A node's module and the starting values of what no slot sets (BatchNorm's
    ``num_batches_tracked``, a parameter PyTorch initialises and the spec leaves alone)."""

    def __init__(self, module: nn.Module, signature: Signature, info: Any) -> None:
        self.module, self.info = module, info  # info: its id is in the key, keep it alive
        slots = {slot.torch or name for kind in (signature.params, signature.state)
                 for name, slot in kind.items()}
        tensors = [*module.named_parameters(), *module.named_buffers()]
        self.unslotted = [(t, t.detach().clone()) for name, t in tensors if name not in slots]
        self.parameters = [p for _, p in module.named_parameters()]

    def reset(self) -> None:
        with torch.no_grad():
            for tensor, start in self.unslotted:
                tensor.copy_(start)
        for p in self.parameters:
            p.grad = None


class ModulePool:
    """Torch modules by node structure (layer entry, options, input shapes, dtype), and graphs
    by their nodes' structures, so that a spec like one seen before skips constructing
    modules. Every lent module is reset to a fresh build's state: no gradients, the
    unslotted tensors' starting values; the graph then copies the spec's parameters and state
    in and sets the training mode. One graph is in use at a time, so graphs may share
    modules. Holds at most ``capacity`` node modules and ``graphs`` graphs, dropping those
    least recently used: fuzzed specs repeat in runs (Hypothesis varies a case it just drew),
    so a small pool keeps nearly every hit of a large one, and every pooled object is one
    more for each full garbage collection to visit."""

    def __init__(self, capacity: int = 64, graphs: int = 16) -> None:
        self.capacity, self.graph_capacity = capacity, graphs
        self._entries: OrderedDict[Hashable, list[_Pooled]] = OrderedDict()
        self._graphs: OrderedDict[Hashable, tuple[TorchGraph, list[_Pooled]]] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def graph(self, spec: Spec, params: Mapping[str, np.ndarray],
              state: Mapping[str, np.ndarray] | None = None) -> TorchGraph:
        """The mirror of ``spec`` with its starting slots, from pooled modules."""
        keys = self._keys(spec)
        if keys is None:  # an option that is not JSON-like: built every time
            return TorchGraph(spec, params, state)
        entries: list[_Pooled]
        if keys in self._graphs:
            self._graphs.move_to_end(keys)
            net, entries = self._graphs[keys]
            for entry in entries:
                entry.reset()
            net.load(spec, params, state)
            return net
        entries = self._lend(spec, keys)
        net = TorchGraph(spec, params, state, modules=[entry.module for entry in entries])
        self._graphs[keys] = net, entries
        if len(self._graphs) > self.graph_capacity:
            self._graphs.popitem(last=False)
        return net

    def modules(self, spec: Spec) -> list[nn.Module]:
        """One module per node of ``spec``, reset (distinct, also where two nodes are
        alike)."""
        keys = self._keys(spec)
        if keys is None:
            return [_builder(node, spec) for node in spec.nodes]
        return [entry.module for entry in self._lend(spec, keys)]

    @staticmethod
    def _keys(spec: Spec) -> tuple[Hashable, ...] | None:
        try:
            return tuple((id(LAYERS[node.type]), LAYERS[node.type].torch, _plain(node.options),
                          spec.dtype, tuple(spec.shape_of(ref) for ref in node.inputs))
                         for node in spec.nodes)
        except TypeError:
            return None

    def _lend(self, spec: Spec, keys: tuple[Hashable, ...]) -> list[_Pooled]:
        taken: dict[Hashable, int] = {}
        out = []
        for node, key in zip(spec.nodes, keys, strict=True):
            index = taken[key] = taken.get(key, -1) + 1
            entries = self._entries.setdefault(key, [])
            self._entries.move_to_end(key)
            if index < len(entries):
                entries[index].reset()
            else:
                entries.append(_Pooled(_builder(node, spec), node.signature,
                                       LAYERS[node.type]))
                self._size += 1
            out.append(entries[index])
        while self._size > self.capacity:
            oldest = next(iter(self._entries))
            if oldest in taken:  # this graph alone is larger than the pool
                break
            self._size -= len(self._entries.pop(oldest))
        return out
