r"""Max, average and adaptive average pooling over 1 or 2 spatial dimensions, as PyTorch.

Inputs are ``(N, C, *L)``; every channel is pooled on its own. Window geometry follows
``aten/src/ATen/native/Pool.h``: output length

.. math::
    L_{out} = \left\lfloor \frac{L + 2p - d(k-1) - 1 + (s - 1)[\text{ceil}]}{s} \right\rfloor
    + 1,

less one in ceil mode when the last window would start at or past :math:`L + p` (every window
must start inside the input or its left padding); padding is at most half the kernel. Loops
run over the kernel offsets only (a few), each a strided slice over every output position.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from manual.numerics import Array
from manual.ops.windows import Ints, Pads, crop_spatial, kernel_offsets, ntuple, offset_slices


class PoolGeometry(NamedTuple):
    kernel: Ints
    stride: Ints
    dilation: Ints
    pads: Pads            # (left, right): right is what the last window needs (ceil mode)
    out: Ints


def pool_geometry(size: Ints, kernel_size: object, stride: object, padding: object,
                  dilation: object, ceil_mode: bool) -> PoolGeometry:
    """Window geometry for input lengths ``size``; ``ValueError`` naming the numbers if none."""
    n = len(size)
    kernel = ntuple(kernel_size, n, "kernel_size")
    strides = kernel if stride is None or stride == [] else ntuple(stride, n, "stride")
    pads = ntuple(padding, n, "padding", low=0)
    dilations = ntuple(dilation, n, "dilation")
    if any(p > k // 2 for p, k in zip(pads, kernel, strict=True)):
        raise ValueError(f"padding {pads} must be at most half of kernel_size {kernel}")
    out = []
    for length, k, s, p, d in zip(size, kernel, strides, pads, dilations, strict=True):
        extra = s - 1 if ceil_mode else 0
        count = (length + 2 * p - d * (k - 1) - 1 + extra) // s + 1
        if ceil_mode and (count - 1) * s >= length + p:
            count -= 1
        out.append(count)
    if any(o < 1 for o in out):
        raise ValueError(f"input size {tuple(size)} with kernel_size {kernel}, stride "
                         f"{strides}, padding {pads}, dilation {dilations} gives output size "
                         f"{tuple(out)}: too small")
    for length, k, s, p, d, n_out in zip(size, kernel, strides, pads, dilations, out,
                                         strict=True):
        reads = np.arange(n_out)[:, None] * s + np.arange(k) * d - p
        if not ((reads >= 0) & (reads < length)).any(axis=1).all():
            # PyTorch returns -inf there and sends the gradient to an unrelated position
            raise ValueError(f"dilation {dilations} with padding {pads} leaves a window of "
                             f"input size {tuple(size)} with no input position in it")
    needed = tuple((o - 1) * s + d * (k - 1) + 1 for o, s, d, k in
                   zip(out, strides, dilations, kernel, strict=True))
    full = tuple((p, max(0, need - length - p)) for p, need, length in
                 zip(pads, needed, size, strict=True))
    return PoolGeometry(kernel, strides, dilations, full, tuple(out))


def _valid(geometry: PoolGeometry, size: Ints, offset: Ints) -> NDArray[np.bool_]:
    """Which output positions read a real (not padded) input position at kernel ``offset``."""
    masks = []
    for i, (j, s, d, (lo, _), n, length) in enumerate(zip(
            offset, geometry.stride, geometry.dilation, geometry.pads, geometry.out, size,
            strict=True)):
        position = np.arange(n) * s + j * d - lo
        shape = [1] * len(size)
        shape[i] = n
        masks.append(((position >= 0) & (position < length)).reshape(shape))
    valid = masks[0]
    for mask in masks[1:]:
        valid = valid & mask
    return valid


def _padded(x: Array, pads: Pads, value: float = 0.0) -> Array:
    if not any(lo or hi for lo, hi in pads):
        return x
    return np.pad(x, ((0, 0), (0, 0), *pads), constant_values=value)


class MaxPoolCache(NamedTuple):
    argmax: NDArray[np.integer]  # (N, C, *out): the kernel offset (scan order) that won
    x_shape: Ints
    geometry: PoolGeometry


def max_pool_forward(x: Array, kernel_size: object = None, stride: object = None,
                     padding: object = 0, dilation: object = 1, ceil_mode: bool = False, *,
                     geometry: PoolGeometry | None = None) -> tuple[Array, MaxPoolCache]:
    r"""Maximum over each window; padded positions never win.

    .. math::
        y_{n,c,o} = \max_j x_{n,c,\,os + jd - p}, \qquad
        \frac{\partial y_{n,c,o}}{\partial x_{n,c,q}} = [q = os + j^*d - p]

    with :math:`j^*` PyTorch's winner: scanning the window in row-major order, a value
    replaces the current one when it is greater *or NaN*. So among equal maxima the FIRST gets
    the gradient (never all of them), a NaN propagates and the LAST NaN wins, and a window of
    only ``-inf`` gives its first real position. The argmax is cached, not the input.
    ``geometry`` (a node's, resolved at load) replaces the window options.
    """
    size = x.shape[2:]
    if geometry is None:
        geometry = pool_geometry(size, kernel_size, stride, padding, dilation, ceil_mode)
    offsets = list(kernel_offsets(geometry.kernel))
    index_type = np.int8 if len(offsets) < 128 else np.int32
    # Before any comparison each window points at its first real position (all -inf windows
    # keep it); padding is -inf, so it never wins a strict comparison.
    first = np.zeros(geometry.out, dtype=index_type)
    for k in reversed(range(len(offsets))):
        first = np.where(_valid(geometry, size, offsets[k]), index_type(k), first)
    argmax = np.broadcast_to(first, (*x.shape[:2], *geometry.out)).copy()
    best = np.full(argmax.shape, -np.inf, dtype=x.dtype)
    padded = _padded(x, geometry.pads, -np.inf)
    has_nan = bool(np.isnan(x).any())  # one pass, so that NaN-free inputs skip the NaN rule
    for k, offset in enumerate(offsets):
        value = padded[offset_slices(offset, geometry.stride, geometry.dilation, geometry.out)]
        wins = value > best
        if has_nan:
            wins |= np.isnan(value)
        # arithmetic, not np.where (several times slower): argmax <- k where it wins
        argmax += wins * (index_type(k) - argmax)
        np.maximum(best, value, out=best)  # NaN propagates, as the rule above
    return best, MaxPoolCache(argmax, x.shape, geometry)


def max_pool_backward(dy: Array, cache: MaxPoolCache) -> Array:
    """Route each window's upstream gradient to its winner; overlapping windows add (``+=``)."""
    geometry = cache.geometry
    padded_shape = tuple(n + lo + hi for n, (lo, hi) in zip(cache.x_shape[2:], geometry.pads,
                                                            strict=True))
    grad = np.zeros((*cache.x_shape[:2], *padded_shape), dtype=dy.dtype)
    # multiplying by the mask is much faster than np.where, but spreads a non-finite upstream
    finite = bool(np.isfinite(dy).all())
    for k, offset in enumerate(kernel_offsets(geometry.kernel)):
        won = cache.argmax == k
        grad[offset_slices(offset, geometry.stride, geometry.dilation, geometry.out)] += (
            dy * won if finite else np.where(won, dy, 0))
    return crop_spatial(grad, geometry.pads, cache.x_shape)


class AvgPoolCache(NamedTuple):
    divisor: Array        # (*out), broadcast over batch and channels
    x_shape: Ints
    geometry: PoolGeometry


def _divisors(geometry: PoolGeometry, size: Ints, count_include_pad: bool, dtype: np.dtype
              ) -> Array:
    """Per output position, the count ``avg_pool2d`` divides by (``Pool`` CPU kernel)."""
    divisor = np.ones((), dtype=np.int64)
    for i, (k, s, (lo, _), n, length) in enumerate(zip(
            geometry.kernel, geometry.stride, geometry.pads, geometry.out, size, strict=True)):
        start = np.arange(n) * s - lo
        end = np.minimum(start + k, length + lo)
        count = end - start if count_include_pad else (np.minimum(end, length)
                                                       - np.maximum(start, 0))
        shape = [1] * len(size)
        shape[i] = n
        divisor = divisor * count.reshape(shape)
    return divisor.astype(dtype)


def avg_pool_forward(x: Array, kernel_size: object = None, stride: object = None,
                     padding: object = 0, ceil_mode: bool = False,
                     count_include_pad: bool = True, divisor_override: int | None = None, *,
                     geometry: PoolGeometry | None = None) -> tuple[Array, AvgPoolCache]:
    r"""Mean over each window, with PyTorch's divisor.

    .. math::
        y_{n,c,o} = \frac{1}{D_o} \sum_{q \in w(o)} \tilde x_{n,c,q}, \qquad
        \frac{\partial L}{\partial x_{n,c,q}} = \sum_{o:\, q \in w(o)} \frac{G_{n,c,o}}{D_o}

    :math:`D_o` is ``divisor_override`` if given; otherwise the window's size after clipping
    its end to :math:`L + p` (``count_include_pad``), or its number of real input positions.
    Per spatial dimension these counts multiply. A ceil-mode window that runs past the
    padding therefore divides by fewer than :math:`k` even with ``count_include_pad``.
    ``geometry`` (a node's, resolved at load) replaces the window options.
    """
    size = x.shape[2:]
    if geometry is None:
        geometry = pool_geometry(size, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None:
        if divisor_override == 0:
            raise ValueError("divisor_override must not be zero")
        divisor = np.full(geometry.out, divisor_override, dtype=x.dtype)
    else:
        divisor = _divisors(geometry, size, count_include_pad, x.dtype)
    padded = _padded(x, geometry.pads)
    offsets = kernel_offsets(geometry.kernel)
    total = padded[offset_slices(next(offsets), geometry.stride, geometry.dilation,
                                 geometry.out)].copy()
    for offset in offsets:
        total += padded[offset_slices(offset, geometry.stride, geometry.dilation, geometry.out)]
    return total / divisor, AvgPoolCache(divisor, x.shape, geometry)


def avg_pool_backward(dy: Array, cache: AvgPoolCache) -> Array:
    """Spread each window's :math:`G / D` over its positions; overlapping windows add."""
    geometry = cache.geometry
    padded_shape = tuple(n + lo + hi for n, (lo, hi) in zip(cache.x_shape[2:], geometry.pads,
                                                            strict=True))
    grad = np.zeros((*cache.x_shape[:2], *padded_shape), dtype=dy.dtype)
    share = dy / cache.divisor
    for offset in kernel_offsets(geometry.kernel):
        grad[offset_slices(offset, geometry.stride, geometry.dilation, geometry.out)] += share
    return crop_spatial(grad, geometry.pads, cache.x_shape)


def adaptive_windows(size: int, out: int, dtype: np.dtype) -> Array:
    r"""The ``(out, size)`` averaging matrix of ``adaptive_avg_pool`` along one dimension.

    Row :math:`i` averages :math:`[\lfloor i L / L_{out} \rfloor, \lceil (i+1) L / L_{out}
    \rceil)`, PyTorch's ``start_index`` / ``end_index``; windows may overlap by one.
    """
    i = np.arange(out)
    start = (i * size) // out
    end = -((-(i + 1) * size) // out)
    q = np.arange(size)
    inside = (q >= start[:, None]) & (q < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)


class AdaptiveAvgPoolCache(NamedTuple):
    rows: Array           # (H_out, H)
    cols: Array           # (W_out, W)


def adaptive_avg_pool2d_forward(x: Array, output_size: Ints
                                ) -> tuple[Array, AdaptiveAvgPoolCache]:
    r"""``F.adaptive_avg_pool2d`` on ``(N, C, H, W)`` to ``(N, C, *output_size)``.

    The windows are separable, so with the averaging matrices :math:`A_H, A_W` of
    :func:`adaptive_windows`:

    .. math::
        y = A_H\, x\, A_W^\top, \qquad \frac{\partial L}{\partial x} = A_H^\top G A_W
    """
    if x.ndim != 4 or len(output_size) != 2 or math.prod(output_size) < 1:
        raise ValueError(f"adaptive_avg_pool2d needs (N, C, H, W) and two output sizes, got "
                         f"shape {x.shape} and output_size {output_size}")
    rows = adaptive_windows(x.shape[2], output_size[0], x.dtype)
    cols = adaptive_windows(x.shape[3], output_size[1], x.dtype)
    return rows @ x @ cols.T, AdaptiveAvgPoolCache(rows, cols)


def adaptive_avg_pool2d_backward(dy: Array, cache: AdaptiveAvgPoolCache) -> Array:
    """The adjoint of both averaging matrices (see the forward)."""
    return cache.rows.T @ dy @ cache.cols
