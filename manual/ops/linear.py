"""The fully connected layer, with PyTorch's parameter layout."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from manual.numerics import Array


class LinearCache(NamedTuple):
    x: Array
    weight: Array


def linear_forward(x: Array, weight: Array, bias: Array | None) -> tuple[Array, LinearCache]:
    r"""Affine map of a batch of rows.

    .. math::
        Y = X W^\top + b, \qquad X: (N, *, D_{in}),\; W: (D_{out}, D_{in}),\; b: (D_{out},)

    which is the seed's :math:`z = W x + b` applied to every row :math:`x` of :math:`X`
    (as ``nn.Linear``, any leading dimensions ``*`` are batch-like).
    """
    y = x @ weight.T
    if bias is not None:
        y += bias  # in place: y is the fresh matmul result, so no extra allocation
    return y, LinearCache(x, weight)


def linear_backward(dy: Array, cache: LinearCache) -> tuple[Array, Array, Array]:
    r"""Gradients of the affine map, given :math:`G = \partial L / \partial Y`.

    .. math::
        \frac{\partial L}{\partial X} = G W, \qquad
        \frac{\partial L}{\partial W} = G^\top X, \qquad
        \frac{\partial L}{\partial b} = \sum_n G_n

    The bias gradient sums over the batch because :math:`b` is broadcast to every row; with
    leading dimensions ``*`` the rows are all of :math:`X`'s rows, flattened.
    """
    x, weight = cache
    if x.ndim != 2:  # (N, *, D): the same sums over every leading index
        rows, drows = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
        return dy @ weight, drows.T @ rows, np.sum(drows, axis=0)
    return dy @ weight, dy.T @ x, np.sum(dy, axis=0)
