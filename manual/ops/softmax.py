"""Softmax and log-softmax over the feature axis (``dim=-1``, rows are samples)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from manual import numerics
from manual.numerics import Array


class SoftmaxCache(NamedTuple):
    y: Array
    dim: int


def softmax_forward(x: Array, dim: int = -1) -> tuple[Array, SoftmaxCache]:
    r"""Softmax, shifted by the row maximum so that no exponential overflows.

    .. math::
        y_i = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}}, \qquad
        \frac{\partial L}{\partial x_i} = y_i \Big(g_i - \sum_j g_j y_j\Big)

    where :math:`g = \partial L / \partial y`. The Jacobian is
    :math:`\operatorname{diag}(y) - y y^\top`, never just its diagonal.
    """
    z = np.exp(x - np.max(x, axis=dim, keepdims=True))
    y = z / np.sum(z, axis=dim, keepdims=True)
    return y, SoftmaxCache(y, dim)


def softmax_backward(dy: Array, cache: SoftmaxCache) -> Array:
    y, dim = cache
    return y * (dy - np.sum(dy * y, axis=dim, keepdims=True))


def log_softmax_forward(x: Array, dim: int = -1) -> tuple[Array, SoftmaxCache]:
    r"""Log-softmax through log-sum-exp.

    .. math::
        y_i = x_i - \log \sum_j e^{x_j}, \qquad
        \frac{\partial L}{\partial x_i} = g_i - e^{y_i} \sum_j g_j
    """
    y = numerics.log_softmax(x, axis=dim)  # (x - max) - log-sum: no rounding of a large max
    return y, SoftmaxCache(y, dim)


def log_softmax_backward(dy: Array, cache: SoftmaxCache) -> Array:
    y, dim = cache
    return dy - np.exp(y) * np.sum(dy, axis=dim, keepdims=True)
