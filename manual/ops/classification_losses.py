r"""Classification losses: binary and categorical cross-entropy, NLL and KL divergence.

``cross_entropy`` and ``nll`` put the classes on dim 1, as PyTorch: input ``(N, C, d1,
...)`` (or unbatched ``(C,)``) with class-index targets ``(N, d1, ...)`` (``()``), or, for
``cross_entropy``, probability targets of the input's shape. Both take a class ``weight``
``(C,)`` and ``ignore_index``; ``mean`` divides by the summed weights of the targets kept
(index targets) or by the number of positions :math:`N d_1 \cdots` (probability targets).
The binary losses act elementwise on any shape, with a ``weight`` (and, on logits, a
``pos_weight``) that broadcasts against the input; ``mean`` divides by the element count.
Array-valued options arrive as nested lists (from a JSON spec) or arrays.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from manual import numerics, targets
from manual.numerics import Array
from manual.ops.reduction import reduce, upstream

# PyTorch clamps log(p) at -100 in binary_cross_entropy and bounds the
# denominator of its gradient below by 1e-12.
BCE_LOG_FLOOR = -100.0
_BCE_EPSILON = 1e-12


class BinaryCache(NamedTuple):
    x: Array
    target: Array
    reduction: str
    weight: Array | None = None       # broadcasts against x
    pos_weight: Array | None = None   # bce_with_logits only


class CrossEntropyCache(NamedTuple):
    probabilities: Array     # (M, C): one row per position, classes last
    smoothed_target: Array   # (M, C): the effective target A (weights and smoothing folded in)
    reduction: str
    denominator: Any = None  # of the mean; None: the number of rows M
    shape: tuple[int, ...] = ()  # of the input; () = already (M, C)


class NllCache(NamedTuple):
    shape: tuple[int, ...]
    target: Array            # flat class indices, ignored positions set to 0
    reduction: str
    dtype: np.dtype
    row_weight: Array | None = None  # flat w[t] (0 where ignored); None: all ones
    denominator: Any = None


class KlCache(NamedTuple):
    target: Array
    reduction: str
    log_target: bool


def _option_array(value: Any, dtype: np.dtype) -> Array | None:
    return None if value is None else np.asarray(value, dtype=dtype)


def _binary_weights(loss: str, x: Array, weight: Any, pos_weight: Any = None
                    ) -> tuple[Array | None, Array | None]:
    targets.check_input(loss, x.shape)
    w, pw = _option_array(weight, x.dtype), _option_array(pos_weight, x.dtype)
    targets.check_broadcast(loss, "weight", w, x.shape)
    targets.check_broadcast(loss, "pos_weight", pw, x.shape)
    return w, pw


def bce_forward(x: Array, target: Array, reduction: str = "mean", weight: Any = None
                ) -> tuple[Array, BinaryCache]:
    r"""Binary cross-entropy on probabilities :math:`x \in [0, 1]`, with element weights.

    .. math::
        \ell = -w\big(t \log x + (1 - t) \log(1 - x)\big), \qquad
        \ell' = w\,\frac{x - t}{x (1 - x)}

    Each log is clamped at :math:`-100` and the denominator of :math:`\ell'` is
    bounded below by :math:`10^{-12}`, as in PyTorch, so :math:`x \in \{0, 1\}`
    gives finite values.
    """
    w, _ = _binary_weights("bce", x, weight)
    # A float64 target must not promote a float32 run's gradient. (PyTorch promotes the loss
    # value to float64 but keeps the gradient float32; the harness casts targets anyway.)
    target = np.asarray(target).astype(x.dtype, copy=False)
    with np.errstate(divide="ignore"):  # log(0) = -inf is intended: it is clamped next
        log_x = np.maximum(np.log(x), BCE_LOG_FLOOR)
        log_1mx = np.maximum(np.log1p(-x), BCE_LOG_FLOOR)
    loss = (target - 1) * log_1mx - target * log_x
    if w is not None:
        loss = loss * w
    return reduce(loss, reduction), BinaryCache(x, target, reduction, w)


def bce_backward(dloss: Array, cache: BinaryCache) -> Array:
    x, t, reduction, w = cache.x, cache.target, cache.reduction, cache.weight
    g = upstream(dloss, reduction, x.size, x.dtype)
    if w is not None:
        g = g * w
    return g * (x - t) / np.maximum((1 - x) * x, x.dtype.type(_BCE_EPSILON))


def bce_with_logits_forward(
    x: Array, target: Array, reduction: str = "mean", weight: Any = None, pos_weight: Any = None
) -> tuple[Array, BinaryCache]:
    r"""Binary cross-entropy on logits, through log-sigmoid (never :math:`\log \sigma(x)`).

    With :math:`q = 1 + (p_w - 1)\,t` (:math:`p_w` = ``pos_weight``, 1 by default):

    .. math::
        \ell = w\big((1 - t)\,x - q \log \sigma(x)\big), \qquad
        \ell' = w\big(q\,\sigma(x) - p_w t\big)

    (:math:`\ell' = \sigma(x) - t` without weights).
    """
    w, pw = _binary_weights("bce_with_logits", x, weight, pos_weight)
    target = np.asarray(target).astype(x.dtype, copy=False)
    log_sigmoid = np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))
    if pw is None:
        loss = (1 - target) * x - log_sigmoid
    else:
        loss = (1 - target) * x - (1 + (pw - 1) * target) * log_sigmoid
    if w is not None:
        loss = loss * w
    return reduce(loss, reduction), BinaryCache(x, target, reduction, w, pw)


def bce_with_logits_backward(dloss: Array, cache: BinaryCache) -> Array:
    x, t, w, pw = cache.x, cache.target, cache.weight, cache.pos_weight
    g = upstream(dloss, cache.reduction, x.size, x.dtype)
    if w is not None:
        g = g * w
    if pw is None:
        return g * (numerics.sigmoid(x) - t)
    return g * ((1 + (pw - 1) * t) * numerics.sigmoid(x) - pw * t)


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


def classes_last(x: Array) -> Array:
    """``(N, C, d1, ...)`` (or ``(C,)``) as rows ``(N d1 ..., C)``, one per position."""
    if x.ndim == 1:
        return x[None]
    if x.ndim == 2:
        return x
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def classes_back(rows: Array, shape: tuple[int, ...]) -> Array:
    """The inverse of :func:`classes_last`."""
    if len(shape) <= 2:
        return rows.reshape(shape)
    moved = (shape[0], *shape[2:], shape[1])
    return np.moveaxis(rows.reshape(moved), -1, 1)


def _per_position(loss: Array, reduction: str, shape: tuple[int, ...]) -> Array:
    """A ``none``-reduced per-row loss in the target's shape (``()`` when unbatched)."""
    return loss.reshape(targets.index_target_shape(shape)) if reduction == "none" else loss


def cross_entropy_forward(
    x: Array, target: Array, reduction: str = "mean", label_smoothing: float = 0.0,
    weight: Any = None, ignore_index: int = targets.DEFAULT_IGNORE_INDEX,
) -> tuple[Array, CrossEntropyCache]:
    r"""Softmax cross-entropy over dim 1 of ``x``, targets as indices or probabilities.

    Every case is one effective target :math:`A` per position :math:`n` (a row of classes):
    with :math:`p = \operatorname{softmax}(x_n)`,

    .. math::
        \ell_n = -\sum_c A_{nc} \log p_{nc}, \qquad
        \frac{\partial \ell_n}{\partial x_{nc}} = p_{nc} \sum_k A_{nk} - A_{nc}

    Index targets :math:`t_n` kept (:math:`k_n = [t_n \ne` ``ignore_index``:math:`]`):
    :math:`A_{nc} = k_n\big((1 - \varepsilon) w_{t_n} [c = t_n] + \varepsilon w_c / C\big)`,
    and ``mean`` divides by :math:`\sum_n k_n w_{t_n}` (when every target is ignored the
    loss is NaN and the gradient 0, as PyTorch). Probability targets :math:`t`:
    :math:`A = w_c\big((1 - \varepsilon) t_{nc} + \varepsilon / C\big)` and ``mean`` divides
    by the number of positions. Rows of :math:`t`
    need not sum to one: the gradient keeps the :math:`\sum_k A_{nk}` factor.
    """
    targets.check_input("cross_entropy", x.shape, classes=True)
    classes = targets.num_classes(x.shape)
    w = _option_array(weight, x.dtype)
    targets.check_class_weight("cross_entropy", w, classes)
    is_index = targets.check_class_target("cross_entropy", x.shape, target, ignore_index, True)
    rows = classes_last(x)
    log_p = numerics.log_softmax(rows, axis=-1)
    eps = x.dtype.type(label_smoothing)
    if is_index:
        flat = target.reshape(-1)
        kept = flat != ignore_index
        safe = np.where(kept, flat, 0)
        row_weight = (kept if w is None else np.where(kept, w[safe], 0)).astype(x.dtype)
        effective = np.zeros(rows.shape, dtype=x.dtype)
        effective[np.arange(rows.shape[0]), safe] = (1 - eps) * row_weight
        if label_smoothing:
            spread = kept.astype(x.dtype)[:, None] * (eps / classes)
            effective += spread if w is None else spread * w
        denominator = np.sum(row_weight)
    else:
        effective = classes_last(target.astype(x.dtype, copy=False))
        if label_smoothing:
            effective = effective * (1 - eps) + eps / classes
        if w is not None:
            effective = effective * w
        denominator = None
    loss = -np.sum(effective * log_p, axis=-1)
    if reduction == "mean":
        count = rows.shape[0] if denominator is None else denominator
        with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 = NaN: all ignored
            value = np.asarray(np.sum(loss) / count, dtype=x.dtype)
    else:
        value = _per_position(reduce(loss, reduction), reduction, x.shape)
    shape = x.shape if x.ndim != 2 else ()
    return value, CrossEntropyCache(np.exp(log_p), effective, reduction, denominator, shape)


def _over(dloss: Array, denominator: Any, dtype: np.dtype) -> Array:
    r"""The mean's upstream :math:`g / \sum k_n w_{t_n}`; 0 when every target is ignored (the
    loss is then NaN, and PyTorch's gradient 0, not NaN)."""
    g = np.asarray(dloss, dtype=dtype)
    return g / denominator if denominator != 0 else np.zeros_like(g)


def cross_entropy_backward(dloss: Array, cache: CrossEntropyCache) -> Array:
    p, a, reduction, denominator, shape = cache
    if reduction == "mean" and denominator is not None:
        g = _over(dloss, denominator, p.dtype)
    else:
        g = upstream(dloss, reduction, p.shape[0], p.dtype)
    if reduction == "none":
        g = np.reshape(g, (-1, 1))
    rows = g * (p * np.sum(a, axis=-1, keepdims=True) - a)
    return classes_back(rows, shape) if shape else rows


def nll_forward(
    x: Array, target: Array, reduction: str = "mean", weight: Any = None,
    ignore_index: int = targets.DEFAULT_IGNORE_INDEX,
) -> tuple[Array, NllCache]:
    r"""Negative log-likelihood of log-probabilities over dim 1 at class indices.

    .. math::
        \ell_n = -k_n w_{t_n} x_{n, t_n}, \qquad
        \frac{\partial \ell_n}{\partial x_{nc}} = -k_n w_{t_n} [c = t_n]

    with :math:`k_n = [t_n \ne` ``ignore_index``:math:`]`; ``mean`` divides by
    :math:`\sum_n k_n w_{t_n}`.
    """
    targets.check_input("nll", x.shape, classes=True)
    w = _option_array(weight, x.dtype)
    targets.check_class_weight("nll", w, targets.num_classes(x.shape))
    targets.check_class_target("nll", x.shape, target, ignore_index, False)
    rows = classes_last(x)
    flat = target.reshape(-1)
    kept = flat != ignore_index
    safe = np.where(kept, flat, 0)
    plain = w is None and bool(kept.all())
    row_weight = None if plain else (kept if w is None else np.where(kept, w[safe], 0)
                                     ).astype(x.dtype)
    picked = rows[np.arange(rows.shape[0]), safe]
    loss = -picked if row_weight is None else -picked * row_weight
    denominator = None if row_weight is None else np.sum(row_weight)
    if reduction == "mean" and denominator is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.asarray(np.sum(loss) / denominator, dtype=x.dtype)
    else:
        value = _per_position(reduce(loss, reduction), reduction, x.shape)
    return value, NllCache(x.shape, safe, reduction, x.dtype, row_weight, denominator)


def nll_backward(dloss: Array, cache: NllCache) -> Array:
    shape, target, reduction, dtype, row_weight, denominator = cache
    count = target.shape[0]
    if reduction == "mean" and denominator is not None:
        g = _over(dloss, denominator, dtype)
    else:
        g = upstream(dloss, reduction, count, dtype)
    g = np.broadcast_to(np.reshape(g, -1) if reduction == "none" else g, (count,))
    if row_weight is not None:
        g = g * row_weight
    rows = np.zeros((count, targets.num_classes(shape)), dtype=dtype)
    rows[np.arange(count), target] = -g
    return classes_back(rows, shape)


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
