"""Graph ops that join or reshape tensors: ``add``, ``concat`` and ``flatten``.

They have no parameters; their backward passes only route the upstream gradient, which is
where hand-written graph code goes wrong (a skip connection's gradient dropped, a concat
gradient split at the wrong offset).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from manual.numerics import Array


class AddCache(NamedTuple):
    arity: int


def add_forward(*xs: Array) -> tuple[Array, AddCache]:
    r"""Sum of :math:`n` tensors of one shape.

    .. math::
        y = \sum_i x_i, \qquad \frac{\partial L}{\partial x_i} = \frac{\partial L}{\partial y}

    Every input receives the whole upstream gradient: a residual connection
    :math:`y = f(x) + x` passes :math:`\partial L/\partial y` to :math:`x` unchanged.
    """
    y = xs[0] + xs[1] if len(xs) > 1 else xs[0].copy()
    for x in xs[2:]:
        y += x  # y is a fresh array: summing in place saves an allocation per input
    return y, AddCache(len(xs))


def add_backward(dy: Array, cache: AddCache) -> tuple[Array, ...]:
    return (dy,) * cache.arity


class ConcatCache(NamedTuple):
    axis: int
    sizes: tuple[int, ...]


def concat_forward(*xs: Array, dim: int = 1) -> tuple[Array, ConcatCache]:
    r"""``torch.cat(xs, dim)``: inputs side by side along ``dim`` (the batch is dim 0).

    .. math::
        y = [x_1, \dots, x_n]_{\text{dim}}, \qquad
        \frac{\partial L}{\partial x_i} = (\partial L/\partial y)_{[o_i,\, o_i + d_i)}

    where :math:`o_i = \sum_{j<i} d_j` is the offset of input :math:`i` along ``dim``.
    """
    axis = dim % xs[0].ndim
    return np.concatenate(xs, axis=axis), ConcatCache(axis, tuple(x.shape[axis] for x in xs))


def concat_backward(dy: Array, cache: ConcatCache) -> tuple[Array, ...]:
    cuts = np.cumsum(cache.sizes)[:-1]
    return tuple(np.split(dy, cuts, axis=cache.axis))


class FlattenCache(NamedTuple):
    shape: tuple[int, ...]


def flatten_forward(x: Array, start_dim: int = 1, end_dim: int = -1
                    ) -> tuple[Array, FlattenCache]:
    r"""``torch.flatten(x, start_dim, end_dim)``: dims ``start_dim..end_dim`` merged into one.

    A reshape: the backward reshapes the upstream gradient back to the input's shape.
    """
    start, end = start_dim % max(x.ndim, 1), end_dim % max(x.ndim, 1)
    shape = (*x.shape[:start], -1, *x.shape[end + 1:]) if x.ndim else (1,)
    return x.reshape(shape), FlattenCache(x.shape)


def flatten_backward(dy: Array, cache: FlattenCache) -> Array:
    return dy.reshape(cache.shape)
