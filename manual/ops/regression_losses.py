"""Regression losses on an input ``x`` and a real target ``t`` of the same shape.

With :math:`d = x - t`, each loss is a per-element :math:`\\ell(d)` followed by
a reduction (``mean`` over all elements, ``sum`` or ``none``), and
:math:`\\partial L / \\partial x = \\ell'(d)` times the reduction's factor.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from manual.numerics import Array
from manual.ops.reduction import reduce, upstream


class DiffCache(NamedTuple):
    d: Array
    reduction: str
    width: float


def mse_forward(x: Array, target: Array, reduction: str = "mean") -> tuple[Array, DiffCache]:
    r"""Mean squared error: :math:`\ell = d^2`, :math:`\ell' = 2d`."""
    d = x - target
    return reduce(d * d, reduction), DiffCache(d, reduction, 0.0)


def mse_backward(dloss: Array, cache: DiffCache) -> Array:
    d = cache.d
    return upstream(dloss, cache.reduction, d.size, d.dtype) * 2 * d


def l1_forward(x: Array, target: Array, reduction: str = "mean") -> tuple[Array, DiffCache]:
    r"""Mean absolute error: :math:`\ell = |d|`, :math:`\ell' = \operatorname{sign}(d)`.

    Kink at :math:`d = 0`, where PyTorch takes :math:`\ell'(0) = 0`.
    """
    d = x - target
    return reduce(np.abs(d), reduction), DiffCache(d, reduction, 0.0)


def l1_backward(dloss: Array, cache: DiffCache) -> Array:
    d = cache.d
    return upstream(dloss, cache.reduction, d.size, d.dtype) * np.sign(d)


def smooth_l1_forward(
    x: Array, target: Array, reduction: str = "mean", beta: float = 1.0
) -> tuple[Array, DiffCache]:
    r"""Smooth L1: quadratic inside :math:`|d| < \beta`, linear outside.

    .. math::
        \ell = \begin{cases} \frac{d^2}{2\beta} & |d| < \beta \\
               |d| - \frac{\beta}{2} & \text{otherwise} \end{cases}, \qquad
        \ell' = \operatorname{clip}(d / \beta, -1, 1)

    With :math:`\beta = 0` it is the L1 loss, with its kink at :math:`d = 0`.
    """
    d = x - target
    ad = np.abs(d)
    if beta == 0:
        return reduce(ad, reduction), DiffCache(d, reduction, 0.0)
    loss = np.where(ad < beta, 0.5 * d * d / beta, ad - 0.5 * beta)
    return reduce(loss, reduction), DiffCache(d, reduction, beta)


def smooth_l1_backward(dloss: Array, cache: DiffCache) -> Array:
    d, reduction, beta = cache
    g = upstream(dloss, reduction, d.size, d.dtype)
    if beta == 0:
        return g * np.sign(d)
    return np.where(d <= -beta, -g, np.where(d >= beta, g, g * d / beta))


def huber_forward(
    x: Array, target: Array, reduction: str = "mean", delta: float = 1.0
) -> tuple[Array, DiffCache]:
    r"""Huber loss: quadratic inside :math:`|d| < \delta`, linear (slope :math:`\delta`) outside.

    .. math::
        \ell = \begin{cases} \frac12 d^2 & |d| < \delta \\
               \delta (|d| - \frac{\delta}{2}) & \text{otherwise} \end{cases}, \qquad
        \ell' = \operatorname{clip}(d, -\delta, \delta)
    """
    d = x - target
    ad = np.abs(d)
    loss = np.where(ad < delta, 0.5 * d * d, delta * (ad - 0.5 * delta))
    return reduce(loss, reduction), DiffCache(d, reduction, delta)


def huber_backward(dloss: Array, cache: DiffCache) -> Array:
    d, reduction, delta = cache
    g = upstream(dloss, reduction, d.size, d.dtype)
    return np.where(d <= -delta, -g * delta, np.where(d >= delta, g * delta, g * d))
