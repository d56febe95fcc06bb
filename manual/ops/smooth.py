"""Smooth elementwise activations (differentiable everywhere).

Exponentials are only ever taken of non-positive numbers (through
:mod:`manual.numerics`), so logits of +-1e4 in float64 and +-80 in float32 give
finite values and gradients, as PyTorch's do.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from manual import numerics
from manual.numerics import Array
from manual.ops.piecewise import InputCache, OutputCache


class SoftplusCache(NamedTuple):
    x: Array
    beta: float
    threshold: float


class GeluCache(NamedTuple):
    x: Array
    approximate: str


def sigmoid_forward(x: Array) -> tuple[Array, OutputCache]:
    r"""Logistic sigmoid.

    .. math::
        \sigma(x) = \frac{1}{1 + e^{-x}}, \qquad \sigma'(x) = \sigma(x)(1 - \sigma(x))
    """
    y = numerics.sigmoid(x)
    return y, OutputCache(y)


def sigmoid_backward(dy: Array, cache: OutputCache) -> Array:
    y = cache.y
    return dy * (1 - y) * y


def tanh_forward(x: Array) -> tuple[Array, OutputCache]:
    r"""Hyperbolic tangent: :math:`f'(x) = 1 - \tanh^2(x)`."""
    y = np.tanh(x)
    return y, OutputCache(y)


def tanh_backward(dy: Array, cache: OutputCache) -> Array:
    y = cache.y
    return dy * (1 - y * y)


def softplus_forward(
    x: Array, beta: float = 1.0, threshold: float = 20.0
) -> tuple[Array, SoftplusCache]:
    r"""Softplus, linear above the threshold as in PyTorch.

    .. math::
        f(x) = \begin{cases} \frac{1}{\beta}\log(1 + e^{\beta x}) & \beta x \le t \\
               x & \beta x > t \end{cases}, \qquad
        f'(x) = \begin{cases} \sigma(\beta x) & \beta x \le t \\ 1 & \beta x > t \end{cases}

    with :math:`t` = ``threshold``.
    """
    bx = x * beta
    y = np.where(bx > threshold, x, numerics.softplus(bx) / beta)
    return y, SoftplusCache(x, beta, threshold)


def softplus_backward(dy: Array, cache: SoftplusCache) -> Array:
    bx = cache.x * cache.beta
    return np.where(bx > cache.threshold, dy, dy * numerics.sigmoid(bx))


def silu_forward(x: Array) -> tuple[Array, InputCache]:
    r"""Sigmoid-weighted linear unit (swish).

    .. math::
        f(x) = x\,\sigma(x), \qquad f'(x) = \sigma(x)\,(1 + x (1 - \sigma(x)))
    """
    return x * numerics.sigmoid(x), InputCache(x)


def silu_backward(dy: Array, cache: InputCache) -> Array:
    x = cache.x
    s = numerics.sigmoid(x)
    return dy * s * (1 + x * (1 - s))


def mish_forward(x: Array) -> tuple[Array, InputCache]:
    r"""Mish.

    .. math::
        f(x) = x \tanh(\operatorname{softplus}(x)), \qquad
        f'(x) = \tanh(\operatorname{sp}(x)) + x\,\sigma(x)\,(1 - \tanh^2(\operatorname{sp}(x)))
    """
    return x * np.tanh(numerics.softplus(x)), InputCache(x)


def mish_backward(dy: Array, cache: InputCache) -> Array:
    x = cache.x
    t = np.tanh(numerics.softplus(x))
    return dy * (t + x * numerics.sigmoid(x) * (1 - t * t))


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_INV_SQRT_2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_KAPPA = 0.044715


def gelu_forward(x: Array, approximate: str = "none") -> tuple[Array, GeluCache]:
    r"""Gaussian error linear unit, exact or with the tanh approximation.

    Exact (``approximate="none"``), with :math:`\Phi` the standard normal CDF:

    .. math::
        f(x) = x\,\Phi(x), \qquad f'(x) = \Phi(x) + x\,\varphi(x)

    Tanh approximation, with :math:`u = \sqrt{2/\pi}\,(x + 0.044715 x^3)`:

    .. math::
        f(x) = \tfrac12 x (1 + \tanh u), \qquad
        f'(x) = \tfrac12 (1 + \tanh u) + \tfrac12 x (1 - \tanh^2 u)
                \sqrt{2/\pi}\,(1 + 3 \cdot 0.044715 x^2)
    """
    if approximate == "tanh":
        y = 0.5 * x * (1 + np.tanh(_SQRT_2_OVER_PI * (x + _KAPPA * x * x * x)))
    else:
        y = x * 0.5 * (1 + numerics.erf(x * _INV_SQRT_2))
    return y, GeluCache(x, approximate)


def gelu_backward(dy: Array, cache: GeluCache) -> Array:
    x = cache.x
    if cache.approximate == "tanh":
        x_sq = x * x
        t = np.tanh(_SQRT_2_OVER_PI * (x + _KAPPA * x_sq * x))
        du = _SQRT_2_OVER_PI * (1 + 3 * _KAPPA * x_sq)
        return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)
    cdf = 0.5 * (1 + numerics.erf(x * _INV_SQRT_2))
    pdf = np.exp(-0.5 * x * x) * _INV_SQRT_2PI
    return dy * (cdf + x * pdf)


def softsign_forward(x: Array) -> tuple[Array, InputCache]:
    r"""Softsign: :math:`f(x) = \frac{x}{1 + |x|}`, :math:`f'(x) = \frac{1}{(1 + |x|)^2}`."""
    return x / (1 + np.abs(x)), InputCache(x)


def softsign_backward(dy: Array, cache: InputCache) -> Array:
    d = 1 + np.abs(cache.x)
    return dy / (d * d)


def logsigmoid_forward(x: Array) -> tuple[Array, InputCache]:
    r"""Log-sigmoid, computed as :math:`\min(x, 0) - \log(1 + e^{-|x|})`.

    .. math::
        f(x) = \log \sigma(x) = -\operatorname{softplus}(-x), \qquad f'(x) = \sigma(-x)
    """
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x))), InputCache(x)


def logsigmoid_backward(dy: Array, cache: InputCache) -> Array:
    return dy * numerics.sigmoid(-cache.x)
