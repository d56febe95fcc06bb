"""Numerically stable building blocks shared by activations and losses.

Every function here preserves the dtype of its input (a float32 array stays
float32) and never overflows for finite input: the naive forms
``1 / (1 + exp(-x))`` and ``log(1 + exp(x))`` overflow for ``|x|`` beyond about
88 in float32 and 709 in float64.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]


def sigmoid(x: Array) -> Array:
    r"""Logistic sigmoid without overflow.

    .. math::
        \sigma(x) = \frac{1}{1 + e^{-x}} = \frac{e^{x}}{1 + e^{x}}

    The first form is used for ``x >= 0`` and the second for ``x < 0``, so the
    exponential is only ever taken of a non-positive number.
    """
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


def softplus(x: Array) -> Array:
    r"""``log(1 + exp(x))`` without overflow: :math:`\max(x, 0) + \log(1 + e^{-|x|})`."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def logsumexp(x: Array, axis: int = -1) -> Array:
    r"""Log-sum-exp along ``axis``, kept as a size-1 axis.

    .. math::
        \operatorname{lse}(x) = m + \log \sum_j e^{x_j - m}, \qquad m = \max_j x_j

    A row whose maximum is infinite uses ``m = 0`` so that ``x - m`` is not NaN.
    """
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    return m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def log_softmax(x: Array, axis: int = -1) -> Array:
    r"""``x - lse(x)`` along ``axis``, computed as PyTorch does.

    .. math::
        \log \operatorname{softmax}(x)_i = (x_i - m) - \log \sum_j e^{x_j - m},
        \qquad m = \max_j x_j

    Subtracting ``m`` first matters in float32: ``x - (m + log s)`` rounds ``m + log s`` to
    the ulp of ``m`` (6e-5 at ``m = 1000``), an error ``x - m`` does not have. A row whose
    maximum is infinite uses ``m = 0``, as :func:`logsumexp`.
    """
    m = np.max(x, axis=axis, keepdims=True)
    shifted = x - np.where(np.isfinite(m), m, 0)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


_erf = np.vectorize(math.erf, otypes=[np.float64])


def erf(x: Array) -> Array:
    """The error function, elementwise, in the dtype of ``x``.

    NumPy has no ``erf``; the C library's (through :func:`math.erf`) is accurate
    to an ulp in float64, which is what PyTorch's own kernels reach.
    """
    return _erf(x).astype(x.dtype, copy=False)
