r"""Batch, layer and group normalisation, with PyTorch's semantics.

All three standardise :math:`x` over a set of axes :math:`A` (the *statistics axes*) with
the **biased** variance, then apply an optional per-feature affine map:

.. math::
    \mu = \frac{1}{n}\sum_{A} x, \qquad \sigma^2 = \frac{1}{n}\sum_{A} (x - \mu)^2, \qquad
    \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad y = \gamma \hat x + \beta

where :math:`n` is the number of elements each statistic is taken over. With
:math:`g = \gamma\,\partial L/\partial y` (the gradient that reaches :math:`\hat x`), the
gradient through batch statistics is

.. math::
    \frac{\partial L}{\partial x} = \frac{1}{\sqrt{\sigma^2 + \epsilon}}
        \Big(g - \overline{g} - \hat x\, \overline{g \hat x}\Big)

(bars are means over :math:`A`): the two mean terms are the paths through :math:`\mu` and
:math:`\sigma^2`. Forgetting them still passes a per-element gradient check of
:math:`\hat x` alone, which is why the harness compares against PyTorch.

============ ============================== =========================== ================
layer        input                          statistics over             affine per
============ ============================== =========================== ================
batch_norm   ``(N, C, *spatial)``           batch and spatial, per C    channel C
layer_norm   ``(N, *, *normalized_shape)``  the trailing normalized dims normalized_shape
group_norm   ``(N, C, *spatial)``           C/G channels and spatial    channel C
============ ============================== =========================== ================
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from manual.numerics import Array


def _channel_view(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape that broadcasts a per-channel ``(C,)`` vector against ``(N, C, *spatial)``."""
    return (1, shape[1]) + (1,) * (len(shape) - 2)


def statistics_count(shape: tuple[int, ...]) -> int:
    """Elements per channel of ``(N, C, *spatial)``: :math:`N \\cdot \\prod \\text{spatial}`."""
    return int(np.prod(shape)) // shape[1]


class BatchNormCache(NamedTuple):
    centred: Array          # x - mu (mu the batch mean, or the running mean in eval mode)
    inv_std: Array          # (C,)
    weight: Array | None    # (C,)
    batch_stats: bool       # the statistics came from this batch (gradient has mean terms)


class BatchNormStats(NamedTuple):
    running_mean: Array
    running_var: Array
    num_batches_tracked: NDArray[np.int64]


def batch_norm_forward(
    x: Array, weight: Array | None, bias: Array | None,
    running_mean: Array | None, running_var: Array | None,
    num_batches_tracked: NDArray[np.int64] | None, *, training: bool, momentum: float | None = 0.1,
    eps: float = 1e-5,
) -> tuple[Array, BatchNormCache, BatchNormStats | None]:
    r"""Batch normalisation of ``x`` ``(N, C, *spatial)`` per channel (``nn.BatchNorm{1,2,3}d``).

    Batch statistics are used in train mode and whenever there are no running statistics
    (``track_running_stats=False``); otherwise the running ones. In train mode with running
    statistics, the new statistics are (:math:`m` the momentum, or :math:`1/t` with
    :math:`t` the updated ``num_batches_tracked`` when ``momentum`` is ``None``):

    .. math::
        \hat\mu \leftarrow (1 - m)\hat\mu + m\,\mu, \qquad
        \hat\sigma^2 \leftarrow (1 - m)\hat\sigma^2 + m\,\frac{n}{n - 1}\sigma^2

    The running variance takes the **unbiased** batch variance while the normalisation
    uses the biased one, as PyTorch does. Returns ``(y, cache, new_stats)``;
    ``new_stats`` is ``None`` when nothing is updated. Nothing given is written.
    """
    dtype = x.dtype
    axes = (0, *range(2, x.ndim))
    view = _channel_view(x.shape)
    batch_stats = training or running_mean is None or running_var is None
    n = statistics_count(x.shape)
    if training and n <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                         f"got input of shape {x.shape}")
    new_stats = None
    if batch_stats:
        mean = np.mean(x, axis=axes)
        centred = x - mean.reshape(view)
        var = np.mean(np.square(centred), axis=axes)
        if training and running_mean is not None and running_var is not None:
            count = np.asarray(num_batches_tracked if num_batches_tracked is not None else 0,
                               dtype=np.int64) + 1
            factor = 1.0 / float(count) if momentum is None else momentum
            keep, take = dtype.type(1 - factor), dtype.type(factor)
            unbiased = var * dtype.type(n / (n - 1))
            new_stats = BatchNormStats(keep * running_mean + take * mean,
                                       keep * running_var + take * unbiased, count)
    else:  # running statistics exist here: batch_stats is False
        centred = x - np.asarray(running_mean).reshape(view)
        var = np.asarray(running_var)
    inv_std = (1 / np.sqrt(var + dtype.type(eps))).astype(dtype, copy=False)
    scale = inv_std if weight is None else inv_std * weight
    # y is a new array, never the cache's: a caller that writes into y cannot corrupt it.
    y = centred * scale.reshape(view)
    if bias is not None:
        y += bias.reshape(view)
    return y, BatchNormCache(centred, inv_std, weight, batch_stats), new_stats


def batch_norm_backward(
    dy: Array, cache: BatchNormCache
) -> tuple[Array, Array | None, Array | None]:
    r"""``(dx, dweight, dbias)``; ``dweight`` and ``dbias`` have shape ``(C,)`` (``None``
    without affine).

    .. math::
        \frac{\partial L}{\partial \gamma_c} = \sum_{A} \frac{\partial L}{\partial y}\hat x
            = \frac{D_c}{\sqrt{\sigma^2 + \epsilon}}, \quad
            D_c = \sum_{A} \frac{\partial L}{\partial y}(x - \mu), \qquad
        \frac{\partial L}{\partial \beta_c} = \sum_{A} \frac{\partial L}{\partial y}

    and, through the batch statistics, :math:`\partial L/\partial x = \gamma
    (\delta - \overline{\delta} - (x - \mu) D_c / (n(\sigma^2 + \epsilon))) /
    \sqrt{\sigma^2 + \epsilon}` with :math:`\delta = \partial L/\partial y`. The sums run
    over :math:`x - \mu`, not :math:`\hat x`, as PyTorch's CPU kernel does: in eval mode
    :math:`|\hat x|` can be large (inputs far from the running mean) and rounding each
    :math:`\hat x` first costs float32 digits in a cancelling sum. With running statistics
    (eval mode) :math:`\mu, \sigma^2` are constants and :math:`\partial L/\partial x =
    \gamma\, \partial L/\partial y / \sqrt{\hat\sigma^2 + \epsilon}`.
    """
    centred, inv_std, weight, batch_stats = cache
    axes = (0, *range(2, dy.ndim))
    view = _channel_view(dy.shape)
    sum_dy = np.sum(dy, axis=axes)
    dot = np.sum(dy * centred, axis=axes)
    sum_dy_xhat = dot * inv_std
    scale = inv_std if weight is None else inv_std * weight
    if batch_stats:
        n = dy.dtype.type(statistics_count(dy.shape))
        dx = scale.reshape(view) * (dy - (sum_dy / n).reshape(view)
                                    - centred * (sum_dy_xhat * inv_std / n).reshape(view))
    else:
        dx = dy * scale.reshape(view)
    if weight is None:
        return dx, None, None
    return dx, sum_dy_xhat, sum_dy


class GroupNormCache(NamedTuple):
    x_hat: Array            # (N, G, K): K = C/G * prod(spatial)
    inv_std: Array          # (N, G, 1)
    weight: Array | None    # (C,)
    shape: tuple[int, ...]  # of x


def _row_sums(rows: Array) -> Array:
    """Sums over the last axis as a matrix-vector product (one fast pass, no temporaries)."""
    return rows @ np.ones(rows.shape[-1], dtype=rows.dtype)


def _row_dots(a: Array, b: Array) -> Array:
    return np.einsum("...i,...i->...", a, b)


def _standardise_rows(rows: Array, eps: float) -> tuple[Array, Array]:
    """``(x_hat, inv_std)`` of ``rows`` standardised over the last axis (biased variance).

    Written for speed (these are the hot loops of layer and group norm): reductions as
    BLAS/einsum dot products, and one new array, scaled in place.
    """
    count = rows.dtype.type(rows.shape[-1])
    mean = _row_sums(rows) / count
    x_hat = rows - mean[..., None]
    inv_std = (1 / np.sqrt(_row_dots(x_hat, x_hat) / count + rows.dtype.type(eps)))[..., None]
    x_hat *= inv_std
    return x_hat, inv_std


def _rows_backward(g: Array, x_hat: Array, inv_std: Array) -> Array:
    r"""The gradient through standardisation over the last axis, given :math:`g = \partial L /
    \partial \hat x`: :math:`(g - \overline{g} - \hat x\,\overline{g \hat x}) /
    \sqrt{\sigma^2 + \epsilon}` (one new array, updated in place; ``g`` is not written)."""
    count = g.dtype.type(g.shape[-1])
    mean_g = _row_sums(g) / count
    mean_gx = _row_dots(g, x_hat) / count
    dx = x_hat * -mean_gx[..., None]
    dx += g
    dx -= mean_g[..., None]
    dx *= inv_std
    return dx


def group_norm_forward(
    x: Array, weight: Array | None, bias: Array | None, *, num_groups: int, eps: float = 1e-5
) -> tuple[Array, GroupNormCache]:
    r"""Group normalisation of ``x`` ``(N, C, *spatial)`` (``nn.GroupNorm``).

    The channels split into ``num_groups`` groups of :math:`C/G` consecutive channels; each
    sample's group is standardised over its channels **and** spatial positions together
    (never per pixel), then :math:`\gamma, \beta` of shape ``(C,)`` apply per channel.
    """
    rows = x.reshape(x.shape[0], num_groups, -1)
    x_hat, inv_std = _standardise_rows(rows, eps)
    y = x_hat.reshape(x.shape).copy()  # never shares memory with the cache
    view = _channel_view(x.shape)
    if weight is not None:
        y = y * weight.reshape(view)
    if bias is not None:
        y = y + bias.reshape(view)
    return y, GroupNormCache(x_hat, inv_std, weight, x.shape)


def group_norm_backward(
    dy: Array, cache: GroupNormCache
) -> tuple[Array, Array | None, Array | None]:
    """``(dx, dweight, dbias)``, the parameter gradients of shape ``(C,)``."""
    x_hat, inv_std, weight, shape = cache
    view = _channel_view(shape)
    axes = (0, *range(2, len(shape)))
    g = dy if weight is None else dy * weight.reshape(view)
    dx = _rows_backward(g.reshape(x_hat.shape), x_hat, inv_std).reshape(shape)
    if weight is None:
        return dx, None, None
    return dx, np.sum(dy * x_hat.reshape(shape), axis=axes), np.sum(dy, axis=axes)


class LayerNormCache(NamedTuple):
    x_hat: Array            # (R, M): M = prod(normalized_shape)
    inv_std: Array          # (R, 1)
    weight: Array | None    # normalized_shape
    shape: tuple[int, ...]  # of x


def layer_norm_forward(
    x: Array, weight: Array | None, bias: Array | None, *, normalized_dims: int,
    eps: float = 1e-5,
) -> tuple[Array, LayerNormCache]:
    r"""Layer normalisation over the last ``normalized_dims`` axes of ``x`` (``nn.LayerNorm``).

    Each sample (and each leading position) is standardised over the trailing
    ``normalized_shape``; :math:`\gamma, \beta` have that shape and apply elementwise.
    """
    features = int(np.prod(x.shape[x.ndim - normalized_dims:]))
    x_hat, inv_std = _standardise_rows(x.reshape(-1, features), eps)
    # y never shares memory with the cache: a caller that writes into y cannot corrupt it.
    y = x_hat.copy() if weight is None else x_hat * weight.reshape(-1)
    if bias is not None:
        y += bias.reshape(-1)
    return y.reshape(x.shape), LayerNormCache(x_hat, inv_std, weight, x.shape)


def layer_norm_backward(
    dy: Array, cache: LayerNormCache
) -> tuple[Array, Array | None, Array | None]:
    """``(dx, dweight, dbias)``, the parameter gradients of ``normalized_shape``."""
    x_hat, inv_std, weight, shape = cache
    rows = dy.reshape(x_hat.shape)
    g = rows if weight is None else rows * weight.reshape(1, -1)
    dx = _rows_backward(g, x_hat, inv_std).reshape(shape)
    if weight is None:
        return dx, None, None
    param_shape = weight.shape
    dweight = np.einsum("ij,ij->j", rows, x_hat).reshape(param_shape)
    count = int(np.prod(rows.shape[:-1]))
    dbias = (np.ones(count, dtype=rows.dtype) @ rows).reshape(param_shape)
    return dx, dweight, dbias
