"""Registry entries for the layers of round 1 and the graph layers.

``linear`` (on inputs ``(N, *, in_features)``, as ``nn.Linear``), every activation (wrapped
from its OpInfo), and the graph layers ``add``, ``concat`` and ``flatten``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from manual import init as initializers
from manual.layers.info import (
    EMPTY,
    Array,
    LayerInfo,
    Shape,
    Signature,
    Slot,
    Structure,
    stateless,
)
from manual.ops import merge
from manual.ops.linear import LinearCache, linear_backward, linear_forward
from manual.options import Given, Int
from manual.registry import ACTIVATIONS, OpInfo

B = "reference.builders.core."


def matrix_shape(value: object) -> tuple[int, ...] | None:
    """The shape of a nested list of finite numbers, or None if it is not rectangular."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return () if math.isfinite(value) else None
    if not isinstance(value, list) or not value:
        return None
    shapes = {matrix_shape(item) for item in value}
    if len(shapes) != 1 or None in shapes:
        return None
    (inner,) = shapes
    return (len(value), *inner)  # type: ignore[misc]


def one_input(shapes: tuple[Shape, ...], rank: int = 1) -> Shape:
    if len(shapes) != 1:
        raise ValueError(f"takes one input, got {len(shapes)}")
    if len(shapes[0]) < rank:
        raise ValueError(f"needs an input with at least {rank} dimension(s) per sample, got "
                         f"shape {shapes[0]}")
    return shapes[0]


# ---- linear --------------------------------------------------------------------------

def _given(values: Any) -> Any:
    return lambda rng, shape: np.asarray(values, dtype=np.float64)


def _drawn(entry: Mapping[str, Any]) -> Any:
    options = {k: v for k, v in entry.items() if k != "type"}
    return lambda rng, shape: initializers.initialize(entry["type"], shape, rng, **options)


def _linear_init(options: Mapping[str, Any], shapes: dict[str, Shape], in_features: int
                 ) -> dict[str, Any]:
    r"""Each parameter's init: explicit values, a spec ``init`` entry, or ``nn.Linear``'s own.

    ``nn.Linear.reset_parameters`` draws the weight with ``kaiming_uniform_(a=sqrt(5))``,
    which is :math:`U(-k, k)` with :math:`k = 1/\sqrt{D_{in}}`, and the bias from the same
    :math:`U(-k, k)`.
    """
    bound = 1 / math.sqrt(in_features)
    default = {"weight": {"type": "kaiming_uniform", "a": math.sqrt(5)},
               "bias": {"type": "uniform", "a": -bound, "b": bound}}
    raw_init = options.get("init", {})
    if not isinstance(raw_init, dict):
        raise ValueError(f"init must be an object with 'weight' and/or 'bias', got {raw_init!r}")
    unknown = sorted(set(raw_init) - {"weight", "bias"})
    if unknown:
        raise ValueError(f"init: unknown key {unknown[0]!r} (known: bias, weight)")
    for key in raw_init:
        explicit = options.get(key)
        if explicit is not None and explicit is not True:
            given_as = "bias=false" if explicit is False else f"explicit {key} values"
            raise ValueError(f"init.{key} conflicts with the layer's {given_as}")
    inits: dict[str, Any] = {}
    for key, shape in shapes.items():
        explicit = options.get(key)
        entry = raw_init.get(key)
        if entry is not None:
            if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
                raise ValueError(f"init.{key} must be an object with a string 'type', "
                                 f"got {entry!r}")
            try:
                initializers.check(entry["type"], shape, {k: v for k, v in entry.items()
                                                          if k != "type"})
            except ValueError as error:
                raise ValueError(f"init.{key}: {error}") from None
            inits[key] = _drawn(entry)
        elif isinstance(explicit, list):
            inits[key] = _given(explicit)
        else:
            inits[key] = _drawn(default[key])
    return inits


def _linear_signature(options: Mapping[str, Any], shapes: tuple[Shape, ...]) -> Signature:
    shape = one_input(shapes)
    out, in_features = options.get("out_features"), shape[-1]
    if isinstance(out, bool) or not isinstance(out, int) or out < 1:
        raise ValueError(f"out_features must be a positive integer, got {out!r}")
    if "in_features" in options and options["in_features"] != in_features:
        raise ValueError(f"in_features is {options['in_features']!r}, but the previous layer "
                         f"outputs {in_features} features")
    if "weight" in options:
        got = matrix_shape(options["weight"])
        if got != (out, in_features):
            what = "not a rectangular array of finite numbers" if got is None else got
            raise ValueError(f"weight must have shape (out_features, in_features) = "
                             f"{(out, in_features)}, got {what}")
    bias = options.get("bias", True)
    if isinstance(bias, list):
        got = matrix_shape(bias)
        if got != (out,):
            what = "not a list of finite numbers" if got is None else got
            raise ValueError(f"bias must have shape (out_features,) = ({out},), got {what}")
    elif not isinstance(bias, bool):
        raise ValueError(f"bias must be true, false or a list of {out} numbers, got {bias!r}")
    shapes_by_slot: dict[str, Shape] = {"weight": (out, in_features)}
    if bias is not False:
        shapes_by_slot["bias"] = (out,)
    inits = _linear_init(options, shapes_by_slot, in_features)
    params = {k: Slot(s, inits[k], torch=k) for k, s in shapes_by_slot.items()}
    return Signature((*shape[:-1], out), params=params)


class LinearNodeCache(NamedTuple):
    pair: LinearCache
    has_bias: bool


def _linear_pair(forward: Any, backward: Any) -> tuple[Any, Any]:
    """The layer convention's forward/backward over a ``(x, weight, bias)`` pair."""
    def layer_forward(inputs: tuple[Array, ...], params: Mapping[str, Array], state: Any,
                      noise: Any, *, training: bool, **options: Any) -> tuple[Any, Any, dict]:
        bias = params.get("bias")
        y, cache = forward(inputs[0], params["weight"], bias)
        return y, LinearNodeCache(cache, bias is not None), {}

    def layer_backward(dy: Array, cache: LinearNodeCache) -> tuple[tuple[Array, ...], dict]:
        dx, dweight, dbias = backward(dy, cache.pair)
        return (dx,), ({"weight": dweight, "bias": dbias} if cache.has_bias else
                       {"weight": dweight})

    return layer_forward, layer_backward


_FORWARD, _BACKWARD = _linear_pair(linear_forward, linear_backward)
LINEAR = LayerInfo(
    name="linear", forward=_FORWARD, backward=_BACKWARD, torch=B + "linear",
    options={"out_features": Given(), "in_features": Given(),
             "weight": Given(), "bias": Given(True), "init": Given()},
    signature=_linear_signature, structure="affine",
)


def linear_with(forward: Any = linear_forward, backward: Any = linear_backward) -> LayerInfo:
    """The ``linear`` entry over another pair (a mutant, or a pair that counts its work)."""
    layer_forward, layer_backward = _linear_pair(forward, backward)
    return dataclasses.replace(LINEAR, forward=layer_forward, backward=layer_backward)


# ---- activations -----------------------------------------------------------------------

def _same_shape(options: Mapping[str, Any], shapes: tuple[Shape, ...]) -> Signature:
    return Signature(one_input(shapes, rank=0))


def from_op(op: OpInfo) -> LayerInfo:
    """The layer entry of an activation: its OpInfo's pair, applied to the one input.

    The pair is looked up in :data:`ACTIVATIONS` at each call, so that an entry replaced
    there (a mutant of the bug zoo, a teacher's broken op) is the one every network runs.
    """
    name = op.name

    def layer_forward(inputs: tuple[Array, ...], params: Any, state: Any, noise: Any, *,
                      training: bool, **options: Any) -> tuple[Any, Any, dict]:
        y, cache = ACTIVATIONS.get(name, op).forward(inputs[0], **options)
        return y, cache, {}

    def layer_backward(dy: Array, cache: Any) -> tuple[tuple[Array, ...], dict[str, Array]]:
        return (ACTIVATIONS.get(name, op).backward(dy, cache),), {}

    structure: Structure = "rowwise" if op.structure == "rowwise" else "elementwise"
    return LayerInfo(name=op.name, forward=layer_forward, backward=layer_backward,
                     torch=B + "activation", options=op.options, signature=_same_shape,
                     structure=structure, op=op)


# ---- graph layers -----------------------------------------------------------------------

def _add_signature(options: Mapping[str, Any], shapes: tuple[Shape, ...]) -> Signature:
    if len(shapes) < 2:
        raise ValueError(f"takes two or more inputs, got {len(shapes)}")
    if len(set(shapes)) != 1:
        raise ValueError(f"inputs must have one shape, got {' and '.join(map(str, shapes))}")
    return Signature(shapes[0])


def batch_dim(dim: int, rank: int, what: str) -> int:
    """``dim`` of the batched tensor (rank ``rank + 1``) as a per-sample axis, or an error."""
    if not -(rank + 1) <= dim <= rank:
        raise ValueError(f"{what} {dim} is out of range for inputs of {rank + 1} dimensions "
                         f"(batch first)")
    axis = dim % (rank + 1)
    if axis == 0:
        raise ValueError(f"{what} {dim} is the batch dimension; the batch must stay whole")
    return axis - 1


def _concat_signature(options: Mapping[str, Any], shapes: tuple[Shape, ...]) -> Signature:
    if len(shapes) < 2:
        raise ValueError(f"takes two or more inputs, got {len(shapes)}")
    ranks = {len(s) for s in shapes}
    if len(ranks) != 1 or 0 in ranks:
        raise ValueError(f"inputs must have one rank of at least 1, got "
                         f"{' and '.join(map(str, shapes))}")
    axis = batch_dim(options.get("dim", 1), ranks.pop(), "dim")
    others = {s[:axis] + s[axis + 1:] for s in shapes}
    if len(others) != 1:
        raise ValueError(f"inputs must agree except along dim {options.get('dim', 1)}, got "
                         f"{' and '.join(map(str, shapes))}")
    first = shapes[0]
    return Signature((*first[:axis], sum(s[axis] for s in shapes), *first[axis + 1:]))


def _flatten_signature(options: Mapping[str, Any], shapes: tuple[Shape, ...]) -> Signature:
    shape = one_input(shapes, rank=0)
    rank = len(shape)
    start = batch_dim(options.get("start_dim", 1), rank, "start_dim") if rank else 0
    end = batch_dim(options.get("end_dim", -1), rank, "end_dim") if rank else 0
    if end < start:
        raise ValueError(f"end_dim {options.get('end_dim', -1)} comes before start_dim "
                         f"{options.get('start_dim', 1)}")
    if not rank:
        return Signature((1,))
    return Signature((*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:]))


GRAPH_LAYERS = (
    LayerInfo("add", *stateless(merge.add_forward, merge.add_backward), torch=B + "add",
              options=EMPTY, signature=_add_signature),
    LayerInfo("concat", *stateless(merge.concat_forward, merge.concat_backward),
              torch=B + "concat", options={"dim": Int(1, low=-(1 << 30))},
              signature=_concat_signature),
    LayerInfo("flatten", *stateless(merge.flatten_forward, merge.flatten_backward),
              torch=B + "flatten",
              options={"start_dim": Int(1, low=-(1 << 30)), "end_dim": Int(-1, low=-(1 << 30))},
              signature=_flatten_signature),
)

CORE_LAYERS = (LINEAR, *(from_op(op) for op in ACTIVATIONS.values()), *GRAPH_LAYERS)
