"""The network spec: one JSON description that both engines build from.

A spec is a graph of named nodes, each a layer of :data:`manual.layers.LAYERS` reading named
inputs (graph inputs or earlier nodes), plus a loss on the ``output`` node. Today's
``{"input_shape": [D], "layers": [...]}`` is shorthand for a chain: the input is named
``input`` and the layers ``layers.0 … layers.{n-1}``, each reading the one before, so every
parameter name (``layers.2.weight``) and tensor name (``backward: layers.2``) of a chain is
the same as in round 1.

A spec is validated once, when it is loaded (:mod:`manual.parse`: ``parse_spec``,
``load_spec``): every node's per-sample output shape is inferred from its layer's signature,
and every error is a ``ValueError`` that names the field or node.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from manual.layers.info import Signature

DTYPES = ("float32", "float64")
MODES = ("train", "eval")
CHAIN_INPUT = "input"

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerSpec:
    """A layer's (or the loss's) type and the options the spec gives it."""

    type: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.options}


@dataclass(frozen=True)
class Input:
    """A graph input: its per-sample shape (the batch ``N`` is implicit) and its kind."""

    name: str
    shape: Shape
    kind: Literal["real", "index"] = "real"


@dataclass(frozen=True)
class Node:
    """One layer of the graph: its type, the names it reads, its options and its shapes."""

    name: str
    type: str
    inputs: tuple[str, ...]
    options: Mapping[str, Any]
    signature: Signature = field(compare=False, repr=False)

    @property
    def shape(self) -> Shape:
        return self.signature.shape

    @functools.cached_property
    def resolved(self) -> Mapping[str, Any]:
        """The options as the node runs them: the spec's, plus what the signature resolved
        from them at load (a convolution's geometry). ``options`` keeps the spec's form,
        which ``to_dict`` writes back."""
        return {**self.options, **self.signature.options}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "inputs": list(self.inputs),
                **self.options}


@dataclass(frozen=True)
class Spec:
    """A validated network: graph inputs, nodes in topological order, the output and loss.

    ``chain`` is True when the spec was written as ``input_shape`` + ``layers`` (it is
    written back the same way).
    """

    inputs: tuple[Input, ...]
    nodes: tuple[Node, ...]
    output: str
    loss: LayerSpec
    dtype: str = "float64"
    seed: int = 0
    name: str = ""
    mode: Literal["train", "eval"] = "train"
    chain: bool = True

    def node(self, name: str) -> Node:
        return self._nodes[name]

    @functools.cached_property
    def _nodes(self) -> dict[str, Node]:
        return {node.name: node for node in self.nodes}

    def shape_of(self, ref: str) -> Shape:
        """The per-sample shape of a graph input, a node, or a node's named output."""
        for item in self.inputs:
            if item.name == ref:
                return item.shape
        source, output = split_ref(ref, self._nodes)
        signature = self._nodes[source].signature
        return signature.outputs[output] if output else signature.shape

    def label(self, index: int) -> str:
        """How errors name node ``index``: ``layers[2] (linear)`` in a chain, ``node 'skip'
        (add)`` in a graph (as parsing does)."""
        node = self.nodes[index]
        return (f"layers[{index}] ({node.type})" if self.chain
                else f"node {node.name!r} ({node.type})")

    def consumers(self, ref: str) -> tuple[str, ...]:
        return tuple(node.name for node in self.nodes if ref in node.inputs)

    def input_kind(self, ref: str) -> str:
        """``index`` for a graph input of integer indices, else ``real``."""
        return next((i.kind for i in self.inputs if i.name == ref), "real")

    def shared(self) -> frozenset[str]:
        """The values read by more than one input edge (where gradients add up)."""
        return self._shared

    @functools.cached_property
    def _shared(self) -> frozenset[str]:
        edges = Counter(ref for node in self.nodes for ref in node.inputs)
        return frozenset(ref for ref, count in edges.items() if count > 1)

    @property
    def layers(self) -> tuple[LayerSpec, ...]:
        """The nodes as ``LayerSpec``s, in order (a chain's ``layers`` list)."""
        return tuple(LayerSpec(node.type, node.options) for node in self.nodes)

    @property
    def input_shape(self) -> Shape:
        return self.inputs[0].shape

    @property
    def output_shape(self) -> Shape:
        return self.shape_of(self.output)

    @property
    def widths(self) -> tuple[int, ...]:
        """The last dimension of every node's output (a chain's feature counts)."""
        return tuple(node.shape[-1] if node.shape else 1 for node in self.nodes)

    @property
    def output_width(self) -> int:
        shape = self.output_shape
        return shape[0] if shape else 1

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name} if self.name else {}
        if self.chain:
            out |= {"input_shape": list(self.input_shape),
                    "layers": [layer.to_dict() for layer in self.layers]}
        else:
            out |= {"inputs": {i.name: {"shape": list(i.shape),
                                        **({"kind": i.kind} if i.kind != "real" else {})}
                               for i in self.inputs},
                    "nodes": [node.to_dict() for node in self.nodes], "output": self.output}
        out |= {"loss": self.loss.to_dict(), "dtype": self.dtype, "seed": self.seed}
        if self.mode != "train":
            out["mode"] = self.mode
        return out

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def split_ref(ref: str, nodes: Mapping[str, Node]) -> tuple[str, str]:
    """``"lstm1.h_n"`` -> ``("lstm1", "h_n")``; a node's own name -> ``(name, "")``."""
    if ref in nodes:
        return ref, ""
    source, _, output = ref.rpartition(".")
    if source in nodes and output in nodes[source].signature.outputs:
        return source, output
    raise KeyError(ref)
