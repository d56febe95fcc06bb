"""Registry entries for the tensor helpers of sequence graphs: ``select``, ``transpose``,
``permute``, ``reshape`` and ``matmul``.

Dims are written as in PyTorch, on the whole tensor (dim 0 is the batch), and refused when
they would move or cut the batch. ``reshape``'s ``shape`` is the per-sample shape (the batch
is kept in front: ``x.reshape(N, *shape)``), with at most one ``-1``. ``matmul`` takes two
inputs of one rank (at least 2 per sample) whose leading per-sample dims broadcast.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from manual.layers.core import batch_dim, one_input
from manual.layers.info import Array, LayerInfo, Sample, Shape, Signature, stateless
from manual.ops import tensor as ops
from manual.options import Given, Int

B = "reference.builders.tensor."
ANY_INT = -(1 << 30)


def _select_signature(options: Mapping[str, Any], shapes: tuple[Shape, ...]) -> Signature:
    shape = one_input(shapes)
    axis = batch_dim(options.get("dim", 1), len(shape), "dim")
    index = options.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or \
            not -shape[axis] <= index < shape[axis]:
        raise ValueError(f"index must be an integer in [{-shape[axis]}, {shape[axis]}) for "
                         f"dim {options.get('dim', 1)} of size {shape[axis]}, got {index!r}")
    return Signature(shape[:axis] + shape[axis + 1:])


def _select_forward(inputs: tuple[Array, ...], params: Any, state: Any, noise: Any, *,
                    training: bool, index: int, dim: int = 1) -> tuple[Any, Any, dict]:
    y, cache = ops.select_forward(inputs[0], dim, index)
    return y, cache, {}


def _select_backward(dy: Array, cache: ops.SelectCache) -> tuple[tuple[Array, ...], dict]:
    return (ops.select_backward(dy, cache),), {}


def _axes(dims: Any, rank: int) -> tuple[int, ...]:
    """``dims`` (whole-tensor, batch first) as a permutation that keeps the batch in front."""
    if not isinstance(dims, list) or len(dims) != rank + 1 or any(
            isinstance(d, bool) or not isinstance(d, int) for d in dims):
        raise ValueError(f"dims must be a list of {rank + 1} integers (batch first), got "
                         f"{dims!r}")
    if any(not -(rank + 1) <= d <= rank for d in dims):
        raise ValueError(f"dims {dims} out of range for inputs of {rank + 1} dimensions")
    axes = tuple(d % (rank + 1) for d in dims)
    if sorted(axes) != list(range(rank + 1)):
        raise ValueError(f"dims must be a permutation, got {dims}")
    if axes[0] != 0:
        raise ValueError(f"dims {dims} moves the batch dimension; it must stay first")
    return axes


def _permute_signature(options: Mapping[str, Any], shapes: tuple[Shape, ...]) -> Signature:
    shape = one_input(shapes)
    axes = _axes(options.get("dims"), len(shape))
    return Signature(tuple(shape[a - 1] for a in axes[1:]))


def _permute_forward(inputs: tuple[Array, ...], params: Any, state: Any, noise: Any, *,
                     training: bool, dims: list[int]) -> tuple[Any, Any, dict]:
    y, cache = ops.permute_forward(inputs[0], tuple(dims))
    return y, cache, {}


def _permute_backward(dy: Array, cache: ops.PermuteCache) -> tuple[tuple[Array, ...], dict]:
    return (ops.permute_backward(dy, cache),), {}


def _transpose_signature(options: Mapping[str, Any], shapes: tuple[Shape, ...]) -> Signature:
    shape = list(one_input(shapes))
    a = batch_dim(options.get("dim0", 1), len(shape), "dim0")
    b = batch_dim(options.get("dim1", 2), len(shape), "dim1")
    shape[a], shape[b] = shape[b], shape[a]
    return Signature(tuple(shape))


def _transpose_forward(inputs: tuple[Array, ...], params: Any, state: Any, noise: Any, *,
                       training: bool, dim0: int = 1, dim1: int = 2) -> tuple[Any, Any, dict]:
    y, cache = ops.transpose_forward(inputs[0], dim0, dim1)
    return y, cache, {}


def _reshape_signature(options: Mapping[str, Any], shapes: tuple[Shape, ...]) -> Signature:
    shape = one_input(shapes, rank=0)
    target = options.get("shape")
    if not isinstance(target, list) or any(isinstance(d, bool) or not isinstance(d, int)
                                           or (d < 1 and d != -1) for d in target):
        raise ValueError(f"shape must be a list of positive integers (one -1 allowed), per "
                         f"sample, got {target!r}")
    size, known = math.prod(shape), math.prod(d for d in target if d != -1)
    if target.count(-1) > 1:
        raise ValueError(f"shape may have one -1, got {target}")
    if (size % known if -1 in target else size != known):
        raise ValueError(f"cannot reshape a per-sample shape {shape} ({size} entries) to "
                         f"{tuple(target)}")
    return Signature(tuple(size // known if d == -1 else d for d in target))


def _reshape_forward(inputs: tuple[Array, ...], params: Any, state: Any, noise: Any, *,
                     training: bool, shape: list[int]) -> tuple[Any, Any, dict]:
    y, cache = ops.reshape_forward(inputs[0], (inputs[0].shape[0], *shape))
    return y, cache, {}


def _reshape_backward(dy: Array, cache: ops.ReshapeCache) -> tuple[tuple[Array, ...], dict]:
    return (ops.reshape_backward(dy, cache),), {}


def _matmul_signature(options: Mapping[str, Any], shapes: tuple[Shape, ...]) -> Signature:
    if len(shapes) != 2:
        raise ValueError(f"takes two inputs, got {len(shapes)}")
    a, b = shapes
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"needs two inputs of one rank, at least 2 per sample, got {a} and {b}")
    if a[-1] != b[-2]:
        raise ValueError(f"inner dims differ: {a} @ {b}")
    lead = []
    for m, n in zip(a[:-2], b[:-2], strict=True):
        if m != n and 1 not in (m, n):
            raise ValueError(f"leading dims do not broadcast: {a} @ {b}")
        lead.append(max(m, n))
    return Signature((*lead, a[-2], b[-1]))


def _one(draw: Any, options: dict[str, Any], shape: tuple[int, ...], name: str) -> Sample:
    return Sample(options, (draw(*shape),), name)


def _samples(layer: str) -> Any:
    def samples(rng: np.random.Generator, dtype: str) -> Iterator[Sample]:
        def draw(*shape: int) -> Array:
            return rng.normal(size=shape).astype(dtype)
        if layer == "select":
            yield _one(draw, {"dim": 1, "index": -1}, (2, 4, 3), "last_step")
            yield _one(draw, {"dim": -1, "index": 0}, (2, 4, 3), "first_feature")
            yield _one(draw, {"dim": 1, "index": 0}, (1, 1, 3), "length_1")
        elif layer == "transpose":
            yield _one(draw, {"dim0": 1, "dim1": 2}, (2, 4, 3), "default")
            yield _one(draw, {"dim0": -1, "dim1": 1}, (2, 4, 3, 5), "negative")
        elif layer == "permute":
            yield _one(draw, {"dims": [0, 2, 3, 1]}, (2, 4, 3, 5), "rotate")
        elif layer == "reshape":
            yield _one(draw, {"shape": [2, -1]}, (2, 4, 3), "split_heads")
            yield _one(draw, {"shape": [12]}, (2, 4, 3), "flat")
        else:
            yield Sample({}, (draw(2, 4, 3), draw(2, 3, 5)), "default")
            yield Sample({}, (draw(2, 1, 4, 3), draw(2, 2, 3, 5)), "broadcast")
    return samples


_DIM = Int(1, low=ANY_INT)
TENSOR_LAYERS = (
    LayerInfo(name="select", forward=_select_forward, backward=_select_backward,
              torch=B + "select", options={"dim": _DIM, "index": Int(None, ANY_INT, True)},
              signature=_select_signature, samples=_samples("select")),
    LayerInfo(name="transpose", forward=_transpose_forward, backward=_permute_backward,
              torch=B + "transpose", options={"dim0": _DIM, "dim1": Int(2, low=ANY_INT)},
              signature=_transpose_signature, samples=_samples("transpose")),
    LayerInfo(name="permute", forward=_permute_forward, backward=_permute_backward,
              torch=B + "permute", options={"dims": Given(required=True)},
              signature=_permute_signature, samples=_samples("permute")),
    LayerInfo(name="reshape", forward=_reshape_forward, backward=_reshape_backward,
              torch=B + "reshape", options={"shape": Given(required=True)},
              signature=_reshape_signature, samples=_samples("reshape")),
    LayerInfo("matmul", *stateless(ops.matmul_forward, ops.matmul_backward),
              torch=B + "matmul", options={}, signature=_matmul_signature,
              samples=_samples("matmul")),
)
