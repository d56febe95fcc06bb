"""The PyTorch mirror of a spec: one torch module per node, the same slots, the same dtype.

Each node's module comes from the builder its registry entry names (``LayerInfo.torch``).
The manual engine's starting parameters and state are copied in by each slot's torch name, so
both engines start bit-identical; :meth:`TorchGraph.forward` runs the nodes in the spec's
(topological) order and keeps every value's gradient, and, where a value feeds several
nodes, each edge's own share of it.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from manual.layers import LAYERS
from manual.parameters import initial_parameters, initial_state
from manual.registry import LOSSES
from manual.spec import Node, Spec
from reference.engine import torch_callable


def attribute(module: nn.Module, path: str) -> Any:
    """``module.out_proj.weight`` for the path ``"out_proj.weight"``."""
    return functools.reduce(getattr, path.split("."), module)


def _builder(node: Node, spec: Spec) -> nn.Module:
    info = LAYERS[node.type]
    module_name, _, name = info.torch.rpartition(".")
    build = getattr(importlib.import_module(module_name), name)
    shapes = tuple(spec.shape_of(ref) for ref in node.inputs)
    return build(info, node.options, node.signature, shapes, getattr(torch, spec.dtype))


class TorchGraph(nn.Module):
    """The spec's nodes as torch modules (``graph_nodes[i]`` is node ``i``)."""

    def __init__(self, spec: Spec, params: Mapping[str, np.ndarray],
                 state: Mapping[str, np.ndarray] | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.graph_nodes = nn.ModuleList([_builder(node, spec) for node in spec.nodes])
        state = initial_state(spec) if state is None else state
        with torch.no_grad():
            for node, module in zip(spec.nodes, self.graph_nodes, strict=True):
                for kind, values in (("params", params), ("state", state)):
                    for name, slot in getattr(node.signature, kind).items():
                        target = attribute(module, slot.torch or name)
                        target.copy_(torch.from_numpy(np.asarray(values[f"{node.name}.{name}"])))
        self.loss_fn = torch_callable(LOSSES[spec.loss.type])
        self.loss_options = dict(spec.loss.options)
        self.train(spec.mode == "train")
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
                if ref in self.shared and value.requires_grad:
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
