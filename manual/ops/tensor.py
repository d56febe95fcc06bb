r"""Graph ops that index, reorder or multiply whole tensors, as PyTorch's:
``select``, ``transpose``, ``permute``, ``reshape`` and ``matmul``.

Dims are the tensor's own (the batch is dim 0); the layer entries refuse a dim that would
move or cut the batch. Their backward passes route or reshape the upstream gradient.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from manual.numerics import Array


class SelectCache(NamedTuple):
    shape: tuple[int, ...]
    axis: int
    position: int


def select_forward(x: Array, dim: int, index: int) -> tuple[Array, SelectCache]:
    r"""``torch.select(x, dim, index)`` (``x[:, -1]`` is ``dim=1, index=-1``): one slice.

    .. math::
        y = x_{[\dots, i, \dots]}, \qquad \bar x_{[\dots, j, \dots]} = [j = i]\, \bar y
    """
    axis = dim % x.ndim
    return np.take(x, index, axis=axis), SelectCache(x.shape, axis, index % x.shape[axis])


def select_backward(dy: Array, cache: SelectCache) -> Array:
    dx = np.zeros(cache.shape, dy.dtype)
    where: list[slice | int] = [slice(None)] * len(cache.shape)
    where[cache.axis] = cache.position
    dx[tuple(where)] = dy
    return dx


class PermuteCache(NamedTuple):
    inverse: tuple[int, ...]


def permute_forward(x: Array, dims: tuple[int, ...]) -> tuple[Array, PermuteCache]:
    r"""``x.permute(dims)``; backward applies the inverse permutation :math:`\pi^{-1}`."""
    axes = tuple(d % x.ndim for d in dims)
    return np.transpose(x, axes), PermuteCache(tuple(int(i) for i in np.argsort(axes)))


def permute_backward(dy: Array, cache: PermuteCache) -> Array:
    return np.transpose(dy, cache.inverse)


def transpose_forward(x: Array, dim0: int, dim1: int) -> tuple[Array, PermuteCache]:
    """``torch.transpose(x, dim0, dim1)``: its own inverse."""
    axes = list(range(x.ndim))
    axes[dim0 % x.ndim], axes[dim1 % x.ndim] = axes[dim1 % x.ndim], axes[dim0 % x.ndim]
    return permute_forward(x, tuple(axes))


class ReshapeCache(NamedTuple):
    shape: tuple[int, ...]


def reshape_forward(x: Array, shape: tuple[int, ...]) -> tuple[Array, ReshapeCache]:
    """``x.reshape(shape)`` (one ``-1`` allowed), C order as PyTorch."""
    return x.reshape(shape), ReshapeCache(x.shape)


def reshape_backward(dy: Array, cache: ReshapeCache) -> Array:
    return dy.reshape(cache.shape)


class MatmulCache(NamedTuple):
    a: Array
    b: Array


def _sum_to(grad: Array, shape: tuple[int, ...]) -> Array:
    """Undo broadcasting: sum ``grad`` over the leading and stretched dims to ``shape``."""
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra))) if extra else grad
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True) if stretched else grad


def matmul_forward(a: Array, b: Array) -> tuple[Array, MatmulCache]:
    r"""``torch.matmul(a, b)`` for operands of rank :math:`\ge 2` (leading dims broadcast).

    .. math::
        Y = A B, \qquad \bar A = \bar Y B^\top, \qquad \bar B = A^\top \bar Y

    each summed over the dims that broadcasting stretched.
    """
    return a @ b, MatmulCache(a, b)


def matmul_backward(dy: Array, cache: MatmulCache) -> tuple[Array, Array]:
    da = dy @ np.swapaxes(cache.b, -1, -2)
    db = np.swapaxes(cache.a, -1, -2) @ dy
    return _sum_to(da, cache.a.shape), _sum_to(db, cache.b.shape)
