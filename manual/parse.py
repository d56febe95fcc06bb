"""Parsing a spec: the JSON (a chain's shorthand or a graph) validated once, into a
:class:`manual.spec.Spec`.

Every node's per-sample output shape is inferred from its layer's signature, its options are
checked against the entry's and resolved once (stored on the node), and every error is a
``ValueError`` that names the field or node (``layers[2] (linear): out_features ...``,
``node 'skip' (add): inputs must ...``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from manual import finite, jsonfile
from manual.layers import LAYERS
from manual.registry import INPUT_KINDS, LOSSES, hint, loss_info
from manual.spec import (
    CHAIN_INPUT,
    DTYPES,
    MODES,
    Input,
    LayerSpec,
    Node,
    Shape,
    Spec,
    split_ref,
)

_COMMON_FIELDS = {"name", "loss", "dtype", "seed", "mode"}
_CHAIN_FIELDS = _COMMON_FIELDS | {"input_shape", "layers"}
_GRAPH_FIELDS = _COMMON_FIELDS | {"inputs", "nodes", "output"}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_options(where: str, op_options: Mapping[str, Any], given: Mapping[str, Any]) -> dict:
    unknown = sorted(set(given) - set(op_options))
    if unknown:
        known = ", ".join(sorted(op_options)) or "none"
        raise ValueError(f"{where}: unknown option {unknown[0]!r} (known options: {known})")
    for name, value in given.items():
        problem = op_options[name].check(value)
        if problem:
            raise ValueError(f"{where}: {name} {problem}")
    return dict(given)


def _shape(raw: object, where: str, what: str) -> Shape:
    if not (isinstance(raw, list) and all(_is_int(d) and d >= 1 for d in raw)):
        raise ValueError(f"{where}: must be {what} with positive integers, got {raw!r}")
    return tuple(raw)


class _Graph:
    """The nodes parsed so far, so that each new node can be checked against them."""

    def __init__(self, inputs: tuple[Input, ...], dtype: str) -> None:
        self.inputs = {i.name: i for i in inputs}
        self.dtype = dtype
        self.nodes: dict[str, Node] = {}
        self.later: set[str] = set()

    def resolve(self, where: str, ref: object) -> tuple[Shape, str]:
        """The shape and kind of what ``ref`` names, or an error saying what is wrong."""
        if not isinstance(ref, str):
            raise ValueError(f"{where}: inputs must be names (strings), got {ref!r}")
        if ref in self.inputs:
            return self.inputs[ref].shape, self.inputs[ref].kind
        try:
            source, output = split_ref(ref, self.nodes)
        except KeyError:
            if ref in self.later or ref.rpartition(".")[0] in self.later:
                raise ValueError(f"{where}: input {ref!r} is defined later; a node may only "
                                 f"read graph inputs and earlier nodes (no cycles)") from None
            known = ", ".join([*self.inputs, *self.nodes]) or "none"
            raise ValueError(f"{where}: input {ref!r} is not a graph input or an earlier node "
                             f"(known: {known})") from None
        signature = self.nodes[source].signature
        return (signature.outputs[output] if output else signature.shape), "real"

    def add(self, where: str, name: str, raw: Mapping[str, Any], refs: list[Any]) -> Node:
        kind = raw["type"]
        info = LAYERS[kind]
        given = {k: v for k, v in raw.items() if k not in ("type", "name", "inputs")}
        options = _check_options(where, info.options, given)
        problem = info.op.relations(options) if info.op is not None else None
        if problem:
            raise ValueError(f"{where}: {problem}")
        resolved = [self.resolve(where, ref) for ref in refs]
        kinds = {k for _, k in resolved}
        if info.behaviour.input_kind == "index" and kinds != {"index"}:
            raise ValueError(f"{where}: reads integer indices; its inputs must be graph inputs "
                             f"of kind 'index'")
        if info.behaviour.input_kind == "real" and "index" in kinds:
            raise ValueError(f"{where}: an input of kind 'index' can only feed a layer that "
                             f"reads indices (such as embedding)")
        try:
            signature = info.signature(options, tuple(shape for shape, _ in resolved))
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
        # Finite as JSON is not finite in float32 (the parameter values too).
        problem = finite.options_problem(info.options, options, self.dtype,
                                         values=signature.params)
        if problem:
            raise ValueError(f"{where}: {problem}")
        node = Node(name, kind, tuple(refs), options, signature)
        self.nodes[name] = node
        return node


def _layer_type(where: str, raw: object) -> str:
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise ValueError(f"{where}: must be an object with a string 'type', got {raw!r}")
    if raw["type"] not in LAYERS:
        raise ValueError(f"{where}: unknown layer type {raw['type']!r} "
                         f"(known: {', '.join(LAYERS)})")
    return raw["type"]


def _parse_chain(raw: Mapping[str, Any], dtype: str
                 ) -> tuple[tuple[Input, ...], tuple[Node, ...], str]:
    shape = _shape(raw["input_shape"], "input_shape", "[D] or [d1, ..., dk]")
    if not shape:
        raise ValueError("input_shape: must be [D] or [d1, ..., dk] with positive integers, "
                         "got []")
    if not isinstance(raw["layers"], list):
        raise ValueError(f"layers: must be a list, got {type(raw['layers']).__name__}")
    inputs = (Input(CHAIN_INPUT, shape),)
    graph, previous = _Graph(inputs, dtype), CHAIN_INPUT
    for index, item in enumerate(raw["layers"]):
        kind = _layer_type(f"layers[{index}]", item)
        name = f"layers.{index}"
        graph.add(f"layers[{index}] ({kind})", name, item, [previous])
        previous = name
    return inputs, tuple(graph.nodes.values()), previous


def _parse_inputs(raw: object) -> tuple[Input, ...]:
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"inputs: must be an object naming at least one input, got {raw!r}")
    inputs = []
    for name, entry in raw.items():
        where = f"inputs.{name}"
        if not isinstance(entry, dict) or "shape" not in entry:
            raise ValueError(f"{where}: must be an object with a 'shape', got {entry!r}")
        unknown = sorted(set(entry) - {"shape", "kind"})
        if unknown:
            raise ValueError(f"{where}: unknown field {unknown[0]!r} (known: kind, shape)")
        kind = entry.get("kind", "real")
        if kind not in ("real", "index"):
            raise ValueError(f"{where}.kind: must be 'real' or 'index', got {kind!r}")
        shape = entry["shape"]
        inputs.append(Input(name, _shape(shape, f"{where}.shape", "a list"), kind))
    return tuple(inputs)


def _parse_graph(raw: Mapping[str, Any], dtype: str
                 ) -> tuple[tuple[Input, ...], tuple[Node, ...], str]:
    for required in ("inputs", "nodes"):
        if required not in raw:
            raise ValueError(f"spec: missing field {required!r}")
    inputs = _parse_inputs(raw["inputs"])
    if not isinstance(raw["nodes"], list) or not raw["nodes"]:
        raise ValueError("nodes: must be a non-empty list")
    graph = _Graph(inputs, dtype)
    names = [item.get("name") if isinstance(item, dict) else None for item in raw["nodes"]]
    for index, item in enumerate(raw["nodes"]):
        name = names[index]
        if not isinstance(name, str) or not name:
            raise ValueError(f"nodes[{index}]: must have a non-empty string 'name'")
        kind = _layer_type(f"node {name!r}", item)
        where = f"node {name!r} ({kind})"
        if name in graph.nodes or name in graph.inputs:
            raise ValueError(f"{where}: duplicate name (another node or input is called "
                             f"{name!r})")
        refs = item.get("inputs")
        if not isinstance(refs, list) or not refs:
            raise ValueError(f"{where}: inputs must be a non-empty list of names")
        graph.later = {n for n in names[index:] if isinstance(n, str)}
        graph.add(where, name, item, refs)
    output = raw.get("output", names[-1])
    if output not in graph.nodes:
        raise ValueError(f"output: {output!r} is not a node (nodes: {', '.join(graph.nodes)})")
    return inputs, tuple(graph.nodes.values()), output


def _parse_loss(raw: object, spec: Spec) -> LayerSpec:
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise ValueError(f"loss: must be an object with a string 'type', got {raw!r}")
    kind = raw["type"]
    if kind not in LOSSES:
        raise ValueError(f"loss: unknown loss type {kind!r} (known: {', '.join(LOSSES)})")
    given = {k: v for k, v in raw.items() if k != "type"}
    loss = LayerSpec(kind, _check_options(f"loss ({kind})", LOSSES[kind].options, given))
    problem = finite.options_problem(LOSSES[kind].options, loss.options, spec.dtype)
    if problem:  # finite as JSON is not finite in float32
        raise ValueError(f"loss ({kind}): {problem}")
    needs = loss_info(LOSSES[kind]).needs
    low, high = INPUT_KINDS[needs]
    last = spec.node(spec.output) if spec.nodes else None
    op = LAYERS[last.type].op if last is not None else None
    # A layer with no op (linear, conv, add, ...) produces unbounded real values.
    made = op.domain.outputs if op is not None else (-math.inf, math.inf)
    if made[0] < low or made[1] > high:
        bounds = f"[{low:g}, {high:g}]".replace("inf", "∞")
        producer = ("the input" if last is None else f"the last layer ({last.type!r})"
                    if spec.chain else f"the output node {last.name!r} ({last.type})")
        raise ValueError(f"loss ({kind}): needs {needs} in {bounds}, but {producer} does not "
                         f"produce them; {hint(LOSSES[kind])}")
    return loss


def parse_spec(raw: object) -> Spec:
    """Validate a decoded JSON object and return the :class:`Spec` it describes."""
    if not isinstance(raw, dict):
        raise ValueError(f"spec: must be a JSON object, got {type(raw).__name__}")
    chain = "nodes" not in raw and "inputs" not in raw
    known_fields = _CHAIN_FIELDS if chain else _GRAPH_FIELDS
    unknown = sorted(set(raw) - known_fields)
    if unknown:
        raise ValueError(f"spec: unknown field {unknown[0]!r} (known: "
                         f"{', '.join(sorted(known_fields))})")
    for required in ("input_shape", "layers", "loss") if chain else ("loss",):
        if required not in raw:
            raise ValueError(f"spec: missing field {required!r}")
    dtype = raw.get("dtype", "float64")
    if dtype not in DTYPES:
        raise ValueError(f"dtype: must be 'float32' or 'float64', got {dtype!r}")
    seed = raw.get("seed", 0)
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise ValueError(f"name: must be a string, got {name!r}")
    mode = raw.get("mode", "train")
    if mode not in MODES:
        raise ValueError(f"mode: must be 'train' or 'eval', got {mode!r}")
    inputs, nodes, output = _parse_chain(raw, dtype) if chain else _parse_graph(raw, dtype)
    spec = Spec(inputs, nodes, output, LayerSpec("mse"), dtype, seed, name, mode, chain)
    spec = Spec(inputs, nodes, output, _parse_loss(raw["loss"], spec), dtype, seed, name, mode,
                chain)
    return spec


def load_json(path: str | Path, what: str) -> Any:
    """Read a JSON file; every problem is a one-line ``ValueError`` (:mod:`manual.jsonfile`)."""
    return jsonfile.load_json(path, what)


def load_spec(path: str | Path) -> Spec:
    """Load and validate a spec file."""
    return parse_spec(load_json(path, "spec"))
