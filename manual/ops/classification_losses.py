"""Classification losses: binary and categorical cross-entropy, NLL and KL divergence.

Inputs are rows of scores (``(N, C)``, one row per sample). The categorical
losses reduce ``mean`` over the batch ``N`` (``kl_div`` over all elements, with
``batchmean`` over ``N``), as PyTorch does.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from manual import numerics
from manual.numerics import Array
from manual.ops.reduction import reduce, upstream

# PyTorch clamps log(p) at -100 in binary_cross_entropy and bounds the
# denominator of its gradient below by 1e-12.
_BCE_LOG_FLOOR = -100.0
_BCE_EPSILON = 1e-12


class BinaryCache(NamedTuple):
    x: Array
    target: Array
    reduction: str


class CrossEntropyCache(NamedTuple):
    probabilities: Array
    smoothed_target: Array
    reduction: str


class NllCache(NamedTuple):
    shape: tuple[int, ...]
    target: Array
    reduction: str
    dtype: np.dtype


class KlCache(NamedTuple):
    target: Array
    reduction: str
    log_target: bool


def bce_forward(x: Array, target: Array, reduction: str = "mean") -> tuple[Array, BinaryCache]:
    r"""Binary cross-entropy on probabilities :math:`x \in [0, 1]`.

    .. math::
        \ell = -\big(t \log x + (1 - t) \log(1 - x)\big), \qquad
        \ell' = \frac{x - t}{x (1 - x)}

    Each log is clamped at :math:`-100` and the denominator of :math:`\ell'` is
    bounded below by :math:`10^{-12}`, as in PyTorch, so :math:`x \in \{0, 1\}`
    gives finite values.
    """
    with np.errstate(divide="ignore"):  # log(0) = -inf is intended: it is clamped next
        log_x = np.maximum(np.log(x), _BCE_LOG_FLOOR)
        log_1mx = np.maximum(np.log1p(-x), _BCE_LOG_FLOOR)
    loss = (target - 1) * log_1mx - target * log_x
    return reduce(loss, reduction), BinaryCache(x, target, reduction)


def bce_backward(dloss: Array, cache: BinaryCache) -> Array:
    x, t, reduction = cache
    g = upstream(dloss, reduction, x.size, x.dtype)
    return g * (x - t) / np.maximum((1 - x) * x, x.dtype.type(_BCE_EPSILON))


def bce_with_logits_forward(
    x: Array, target: Array, reduction: str = "mean"
) -> tuple[Array, BinaryCache]:
    r"""Binary cross-entropy on logits, through log-sigmoid (never :math:`\log \sigma(x)`).

    .. math::
        \ell = (1 - t)\,x - \log \sigma(x), \qquad \ell' = \sigma(x) - t
    """
    log_sigmoid = np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))
    loss = (1 - target) * x - log_sigmoid
    return reduce(loss, reduction), BinaryCache(x, target, reduction)


def bce_with_logits_backward(dloss: Array, cache: BinaryCache) -> Array:
    x, t, reduction = cache
    return upstream(dloss, reduction, x.size, x.dtype) * (numerics.sigmoid(x) - t)


def smoothed_target(
    target: Array, num_classes: int, dtype: np.dtype, label_smoothing: float
) -> Array:
    r"""Class indices (``(N,)``) or probabilities (``(N, C)``) as smoothed probabilities.

    .. math:: t' = (1 - \varepsilon)\, t + \varepsilon / C
    """
    if target.ndim == 1:
        probabilities = np.zeros((target.shape[0], num_classes), dtype=dtype)
        probabilities[np.arange(target.shape[0]), target] = 1
    else:
        probabilities = target.astype(dtype, copy=False)
    if label_smoothing == 0:
        return probabilities
    return probabilities * (1 - label_smoothing) + label_smoothing / num_classes


def cross_entropy_forward(
    x: Array, target: Array, reduction: str = "mean", label_smoothing: float = 0.0
) -> tuple[Array, CrossEntropyCache]:
    r"""Softmax cross-entropy on logits ``(N, C)``, targets as indices or probabilities.

    With :math:`p = \operatorname{softmax}(x)` and smoothed targets :math:`t'`:

    .. math::
        \ell_n = -\sum_c t'_{nc} \log p_{nc}, \qquad
        \frac{\partial \ell_n}{\partial x_{nc}} = p_{nc} \sum_k t'_{nk} - t'_{nc}

    (:math:`p - t'` when the targets sum to one). ``mean`` divides by :math:`N`.
    """
    log_p = x - numerics.logsumexp(x, axis=-1)
    t = smoothed_target(target, x.shape[-1], x.dtype, label_smoothing)
    loss = -np.sum(t * log_p, axis=-1)
    return reduce(loss, reduction), CrossEntropyCache(np.exp(log_p), t, reduction)


def cross_entropy_backward(dloss: Array, cache: CrossEntropyCache) -> Array:
    p, t, reduction = cache
    g = upstream(dloss, reduction, p.shape[0], p.dtype)
    if reduction == "none":
        g = g[:, None]
    return g * (p * np.sum(t, axis=-1, keepdims=True) - t)


def nll_forward(x: Array, target: Array, reduction: str = "mean") -> tuple[Array, NllCache]:
    r"""Negative log-likelihood of log-probabilities ``(N, C)`` at class indices ``(N,)``.

    .. math::
        \ell_n = -x_{n, t_n}, \qquad
        \frac{\partial \ell_n}{\partial x_{nc}} = -[c = t_n]
    """
    loss = -x[np.arange(x.shape[0]), target]
    return reduce(loss, reduction), NllCache(x.shape, target, reduction, x.dtype)


def nll_backward(dloss: Array, cache: NllCache) -> Array:
    shape, target, reduction, dtype = cache
    g = upstream(dloss, reduction, shape[0], dtype)
    dx = np.zeros(shape, dtype=dtype)
    dx[np.arange(shape[0]), target] = -g
    return dx


def kl_div_forward(
    x: Array, target: Array, reduction: str = "mean", log_target: bool = False
) -> tuple[Array, KlCache]:
    r"""Kullback-Leibler divergence of log-probabilities ``x`` from ``target``.

    .. math::
        \ell = t (\log t - x) \;\;(\ell = 0 \text{ where } t = 0), \qquad \ell' = -t

    or, with ``log_target``, :math:`\ell = e^{t}(t - x)` and :math:`\ell' = -e^{t}`.
    ``mean`` divides by the number of elements and ``batchmean`` by :math:`N`.
    """
    if log_target:
        weight = np.exp(target)
        loss = weight * (target - x)
    else:
        weight = target
        safe_log = np.log(np.where(target > 0, target, 1))
        loss = target * safe_log - target * x
    if reduction == "batchmean":
        value = reduce(loss, "mean", count=x.shape[0])
    else:
        value = reduce(loss, reduction)
    return value, KlCache(weight, reduction, log_target)


def kl_div_backward(dloss: Array, cache: KlCache) -> Array:
    weight, reduction, _ = cache
    if reduction == "batchmean":
        g = upstream(dloss, "mean", weight.shape[0], weight.dtype)
    else:
        g = upstream(dloss, reduction, weight.size, weight.dtype)
    return -g * weight
