"""Piecewise activations: those with a kink or a switch between two formulas.

At every switch point the derivative follows PyTorch's convention, stated in
each docstring (for example relu'(0) = 0 and elu'(0) = alpha).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from manual.numerics import Array


class InputCache(NamedTuple):
    x: Array


class OutputCache(NamedTuple):
    y: Array


class SlopeCache(NamedTuple):
    x: Array
    negative_slope: float


class BoundsCache(NamedTuple):
    x: Array
    min_val: float
    max_val: float


class EluCache(NamedTuple):
    x: Array
    alpha: float
    scale: float
    input_scale: float


def identity_forward(x: Array) -> tuple[Array, None]:
    r""":math:`f(x) = x`, :math:`f'(x) = 1`."""
    return x, None


def identity_backward(dy: Array, cache: None) -> Array:
    return dy


def relu_forward(x: Array) -> tuple[Array, OutputCache]:
    r"""Rectified linear unit.

    .. math::
        f(x) = \max(x, 0), \qquad f'(x) = [x > 0]

    Kink at 0, where PyTorch takes :math:`f'(0) = 0`.
    """
    y = np.maximum(x, 0)
    return y, OutputCache(y)


def relu_backward(dy: Array, cache: OutputCache) -> Array:
    # Written as "zero where y <= 0" (PyTorch's threshold_backward), not "dy where y > 0",
    # so that a NaN input passes its gradient through as PyTorch's does.
    return np.where(cache.y <= 0, 0, dy).astype(dy.dtype, copy=False)


def leaky_relu_forward(x: Array, negative_slope: float = 0.01) -> tuple[Array, SlopeCache]:
    r"""Leaky ReLU.

    .. math::
        f(x) = \begin{cases} x & x > 0 \\ s x & x \le 0 \end{cases}, \qquad
        f'(x) = \begin{cases} 1 & x > 0 \\ s & x \le 0 \end{cases}

    with :math:`s` = ``negative_slope``; kink at 0, where :math:`f'(0) = s`.
    """
    y = np.where(x > 0, x, x * negative_slope)
    return y, SlopeCache(x, negative_slope)


def leaky_relu_backward(dy: Array, cache: SlopeCache) -> Array:
    return np.where(cache.x > 0, dy, dy * cache.negative_slope)


def _elu_forward(x: Array, alpha: float, scale: float, input_scale: float) -> Array:
    negative = np.expm1(np.minimum(x, 0) * input_scale) * (alpha * scale)
    return np.where(x > 0, x * scale, negative)


def elu_forward(x: Array, alpha: float = 1.0) -> tuple[Array, EluCache]:
    r"""Exponential linear unit.

    .. math::
        f(x) = \begin{cases} x & x > 0 \\ \alpha (e^{x} - 1) & x \le 0 \end{cases}, \qquad
        f'(x) = \begin{cases} 1 & x > 0 \\ \alpha e^{x} & x \le 0 \end{cases}

    At 0 PyTorch takes the left branch, :math:`f'(0) = \alpha` (a kink unless
    :math:`\alpha = 1`).
    """
    return _elu_forward(x, alpha, 1.0, 1.0), EluCache(x, alpha, 1.0, 1.0)


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def selu_forward(x: Array) -> tuple[Array, EluCache]:
    r"""Scaled ELU with the self-normalising constants of Klambauer et al. (2017).

    .. math::
        f(x) = \lambda \begin{cases} x & x > 0 \\ \alpha (e^{x} - 1) & x \le 0 \end{cases},
        \qquad
        f'(x) = \lambda \begin{cases} 1 & x > 0 \\ \alpha e^{x} & x \le 0 \end{cases}

    with :math:`\alpha \approx 1.6733`, :math:`\lambda \approx 1.0507`; kink at 0,
    where :math:`f'(0) = \lambda\alpha`.
    """
    cache = EluCache(x, SELU_ALPHA, SELU_SCALE, 1.0)
    return _elu_forward(x, SELU_ALPHA, SELU_SCALE, 1.0), cache


def celu_forward(x: Array, alpha: float = 1.0) -> tuple[Array, EluCache]:
    r"""Continuously differentiable ELU.

    .. math::
        f(x) = \max(0, x) + \min(0, \alpha (e^{x/\alpha} - 1)), \qquad
        f'(x) = \begin{cases} 1 & x > 0 \\ e^{x/\alpha} & x \le 0 \end{cases}

    Smooth at 0 (:math:`f'(0) = 1` from both sides).
    """
    cache = EluCache(x, alpha, 1.0, 1.0 / alpha)
    return _elu_forward(x, alpha, 1.0, 1.0 / alpha), cache


def elu_backward(dy: Array, cache: EluCache) -> Array:
    x, alpha, scale, input_scale = cache
    negative = np.exp(np.minimum(x, 0) * input_scale) * (alpha * scale * input_scale)
    # At a NaN input PyTorch's vectorised kernel gives NaN and its scalar tail ``scale``; this
    # gives NaN, what the body of any tensor longer than a vector register gets.
    return dy * np.where(x > 0, scale, negative).astype(dy.dtype, copy=False)


selu_backward = elu_backward
celu_backward = elu_backward


def hardtanh_forward(
    x: Array, min_val: float = -1.0, max_val: float = 1.0
) -> tuple[Array, BoundsCache]:
    r"""Hard tanh: a clamp.

    .. math::
        f(x) = \min(\max(x, a), b), \qquad f'(x) = [a < x < b]

    with :math:`a` = ``min_val`` and :math:`b` = ``max_val``; kinks at both
    bounds, where PyTorch takes :math:`f' = 0`.
    """
    return np.clip(x, min_val, max_val), BoundsCache(x, min_val, max_val)


def hardtanh_backward(dy: Array, cache: BoundsCache) -> Array:
    # At a NaN input PyTorch's vectorised kernel gives 0 and its scalar tail dy; this gives
    # 0, what the body of any tensor longer than a vector register gets.
    inside = (cache.x > cache.min_val) & (cache.x < cache.max_val)
    return np.where(inside, dy, 0).astype(dy.dtype, copy=False)


def hardsigmoid_forward(x: Array) -> tuple[Array, InputCache]:
    r"""Hard sigmoid.

    .. math::
        f(x) = \frac{\min(\max(x + 3, 0), 6)}{6}, \qquad f'(x) = \frac{[-3 < x < 3]}{6}

    Kinks at :math:`\pm 3`, where PyTorch takes :math:`f' = 0`.
    """
    return np.clip(x + 3, 0, 6) / 6, InputCache(x)


def hardsigmoid_backward(dy: Array, cache: InputCache) -> Array:
    inside = (cache.x > -3) & (cache.x < 3)
    return np.where(inside, dy / 6, 0).astype(dy.dtype, copy=False)


def hardswish_forward(x: Array) -> tuple[Array, InputCache]:
    r"""Hard swish.

    .. math::
        f(x) = x \frac{\min(\max(x + 3, 0), 6)}{6}, \qquad
        f'(x) = \begin{cases} 0 & x \le -3 \\ \frac{x}{3} + \frac12 & -3 < x < 3
                \\ 1 & x \ge 3 \end{cases}

    Kinks at :math:`\pm 3`; PyTorch takes :math:`f'(-3) = 0` and :math:`f'(3) = 1`.
    """
    return x * np.clip(x + 3, 0, 6) / 6, InputCache(x)


def hardswish_backward(dy: Array, cache: InputCache) -> Array:
    x = cache.x
    middle = dy * (x / 3 + 0.5)
    # The middle branch unless x <= -3 or x >= 3: NaN there gives NaN, as PyTorch's kernel.
    return np.where(x <= -3, 0, np.where(x >= 3, dy, middle)).astype(dy.dtype, copy=False)
