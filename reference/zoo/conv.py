"""The bug zoo for convolution and pooling: the mistakes of hand-written CNN backprop.

The bug classes come from public solutions of a well-known course's convolution assignment
(``review/users-own-code.md``): padding 0 sliced as ``x[:, :, p:-p]`` (an empty gradient), a
stride that does not divide the padded size, overlapping pooling windows written with ``=``,
ties sending the gradient to every maximum, the weight gradient not summed over the batch,
convolution instead of cross-correlation, a kernel not flipped in the input gradient, groups
mixing channels, a stride ignored in backward. Each :class:`~reference.zoo.core.Mutant` swaps one
entry of :data:`manual.layers.LAYERS` (``dataclasses.replace(entry, backward=...)``); the
engine's source is never edited. ``ops`` names the layer it touches.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from manual.layers import LAYERS
from manual.ops import conv, pooling
from manual.ops.windows import crop_spatial, kernel_offsets, offset_slices, pad_spatial
from manual.ops.windows import scatter_windows as scatter
from reference.zoo.core import Mutant, Patch

Array = np.ndarray


class Wrapped(NamedTuple):
    """A mutant's cache: the real one plus what the mistaken backward needs."""

    inner: Any
    extra: Any


def _swap(name: str, **changes: Any) -> Callable[[], list[Patch]]:
    return lambda: [(LAYERS, name, dataclasses.replace(LAYERS[name], **changes))]


def _dcols(dy: Array, cache: conv.ConvCache) -> Array:
    """The column gradient :math:`W^T G`, shaped ``(N, C, *kernel, *out)`` (as conv_backward)."""
    batch, groups, _, positions = cache.cols.shape
    dy_g = dy.reshape(batch, groups, cache.weight.shape[1], positions)
    dcols = np.matmul(cache.weight.swapaxes(-1, -2), dy_g)
    return dcols.reshape(batch, cache.x_shape[1], *cache.kernel, *cache.out)


def _conv_params(cache: conv.ConvCache, dweight: Array, dbias: Array | None
                 ) -> dict[str, Array]:
    return {"weight": dweight} if dbias is None else {"weight": dweight, "bias": dbias}


def _correct(dy: Array, cache: conv.ConvCache) -> tuple[Array, dict[str, Array]]:
    dx, dweight, dbias = conv.conv_backward(dy, cache)
    return dx, _conv_params(cache, dweight, dbias)


def _slice_p_to_minus_p(dy: Array, cache: conv.ConvCache) -> tuple:
    _, dparams = _correct(dy, cache)
    dpadded = scatter(_dcols(dy, cache), cache.padded_shape, cache.kernel, cache.stride,
                      cache.dilation, cache.out)
    index = (slice(None), slice(None), *(slice(lo, -lo) for lo, _ in cache.pads))
    return (dpadded[index],), dparams


def _dx_sized_from_output(dy: Array, cache: conv.ConvCache) -> tuple:
    _, dparams = _correct(dy, cache)
    # the buffer holds only what the windows cover: (out - 1) * stride + span per dimension
    covered = tuple(s * (o - 1) + d * (k - 1) + 1 for s, o, d, k in
                    zip(cache.stride, cache.out, cache.dilation, cache.kernel, strict=True))
    dpadded = scatter(_dcols(dy, cache), (*cache.x_shape[:2], *covered), cache.kernel,
                      cache.stride, cache.dilation, cache.out)
    return (crop_spatial(dpadded, cache.pads, cache.x_shape),), dparams


def _stride_ignored(dy: Array, cache: conv.ConvCache) -> tuple:
    _, dparams = _correct(dy, cache)
    ones = (1,) * len(cache.kernel)
    dpadded = scatter(_dcols(dy, cache), cache.padded_shape, cache.kernel, ones,
                      cache.dilation, cache.out)
    return (crop_spatial(dpadded, cache.pads, cache.x_shape),), dparams


def _weight_grad_last_sample(dy: Array, cache: conv.ConvCache) -> tuple:
    dx, dparams = _correct(dy, cache)
    batch, groups, _, positions = cache.cols.shape
    dy_g = dy.reshape(batch, groups, cache.weight.shape[1], positions)
    last = np.matmul(dy_g[-1], cache.cols[-1].swapaxes(-1, -2))  # `dw = ...` inside the loop
    return (dx,), {**dparams, "weight": last.reshape(dparams["weight"].shape)}


def _flip(weight: Array) -> Array:
    return np.flip(weight, axis=tuple(range(2, weight.ndim))).copy()


def _kernel_not_flipped_in_dx(dy: Array, cache: conv.ConvCache) -> tuple:
    _, dparams = _correct(dy, cache)
    groups, out_g, _ = cache.weight.shape
    weight = cache.weight.reshape(groups * out_g, cache.x_shape[1] // groups, *cache.kernel)
    flipped = _flip(weight).reshape(cache.weight.shape)
    dx, _, _ = conv.conv_backward(dy, cache._replace(weight=flipped))
    return (dx,), dparams


def _convolution_forward(inputs: tuple, params: dict, state: Any, noise: Any, *,
                         training: bool, **options: Any) -> tuple:
    flipped = {**params, "weight": _flip(params["weight"])}
    return LAYERS_ORIGINAL["conv2d"].forward(inputs, flipped, state, noise, training=training,
                                             **options)


def _convolution_backward(dy: Array, cache: conv.ConvCache) -> tuple:
    dx, dparams = _correct(dy, cache)
    return (dx,), {**dparams, "weight": _flip(dparams["weight"])}


def _interleaved_groups_forward(inputs: tuple, params: dict, state: Any, noise: Any, *,
                                training: bool, **options: Any) -> tuple:
    x = inputs[0]
    groups = options.get("groups", 1)
    order = np.array([c for j in range(groups) for c in range(j, x.shape[1], groups)])
    y, cache, new_state = LAYERS_ORIGINAL["conv2d"].forward(
        (x[:, order],), params, state, noise, training=training, **options)
    return y, Wrapped(cache, order), new_state


def _interleaved_groups_backward(dy: Array, cache: Wrapped) -> tuple:
    dx_ordered, dparams = _correct(dy, cache.inner)
    dx = np.empty_like(dx_ordered)
    dx[:, cache.extra] = dx_ordered
    return (dx,), dparams


def _max_pool_assign(dy: Array, cache: pooling.MaxPoolCache) -> tuple:
    """``dx[window] = onehot * dy`` per window in raster order: overlaps keep only the last."""
    g = cache.geometry
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(cache.x_shape[2:], g.pads, strict=True))
    grad = np.zeros((*cache.x_shape[:2], *padded), dtype=dy.dtype)
    for position in itertools.product(*(range(n) for n in g.out)):
        window = tuple(slice(o * s, o * s + d * (k - 1) + 1, d) for o, s, d, k in
                       zip(position, g.stride, g.dilation, g.kernel, strict=True))
        at: tuple[Any, ...] = (Ellipsis, *position)
        won = cache.argmax[at]
        hot = (won[..., None] == np.arange(int(np.prod(g.kernel)))).reshape(
            *won.shape, *g.kernel)
        grad[(slice(None), slice(None), *window)] = hot * dy[at][
            (Ellipsis, *(None,) * len(g.kernel))]
    return (crop_spatial(grad, g.pads, cache.x_shape),), {}


def _ties_forward(inputs: tuple, params: dict, state: Any, noise: Any, *, training: bool,
                  **options: Any) -> tuple:
    y, cache, new_state = LAYERS_ORIGINAL["max_pool2d"].forward(
        inputs, params, state, noise, training=training, **options)
    return y, Wrapped(cache, (inputs[0], y)), new_state


def _ties_backward(dy: Array, cache: Wrapped) -> tuple:
    """``mask = window == window.max()``: every tied maximum gets the whole gradient."""
    x, y = cache.extra
    g = cache.inner.geometry
    padded = pad_spatial(x, g.pads, value=-np.inf)
    grad = np.zeros_like(padded)
    for offset in kernel_offsets(g.kernel):
        index = offset_slices(offset, g.stride, g.dilation, g.out)
        grad[index] += np.where(padded[index] == y, dy, 0)
    return (crop_spatial(grad, g.pads, x.shape),), {}


def _avg_divisor_always_k(inputs: tuple, params: dict, state: Any, noise: Any, *,
                          training: bool, **options: Any) -> tuple:
    y, cache, new_state = LAYERS_ORIGINAL["avg_pool2d"].forward(
        inputs, params, state, noise, training=training, **options)
    full = np.full_like(cache.divisor, np.prod(cache.geometry.kernel))
    return y * cache.divisor / full, cache._replace(divisor=full), new_state


def _floor_windows(size: int, out: int, dtype: Any) -> Array:
    i = np.arange(out)
    start, end = (i * size) // out, ((i + 1) * size) // out  # floor: drops the straddlers
    q = np.arange(size)
    inside = (q >= start[:, None]) & (q < end[:, None])
    return (inside / np.maximum(end - start, 1)[:, None]).astype(dtype)


def _adaptive_floor_end(inputs: tuple, params: dict, state: Any, noise: Any, *,
                        training: bool, **options: Any) -> tuple:
    y, _, new_state = LAYERS_ORIGINAL["adaptive_avg_pool2d"].forward(
        inputs, params, state, noise, training=training, **options)
    x = inputs[0]
    rows = _floor_windows(x.shape[2], y.shape[2], x.dtype)
    cols = _floor_windows(x.shape[3], y.shape[3], x.dtype)
    return rows @ x @ cols.T, pooling.AdaptiveAvgPoolCache(rows, cols), new_state


def _bias_grad_mean(dy: Array, cache: conv.ConvCache) -> tuple:
    dx, dparams = _correct(dy, cache)
    if "bias" in dparams:
        dparams["bias"] = dy.mean(axis=(0, *range(2, dy.ndim)))
    return (dx,), dparams


# The entries as registered, so that a mutant's forward can call the real one while the
# registry holds the mutant.
LAYERS_ORIGINAL = {name: LAYERS[name] for name in
                   ("conv1d", "conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d")}

CONV_MUTANTS = (
    Mutant("conv2d_pad_slice_p_to_minus_p",
           "conv2d backward crops the padding as dx[:, :, p:-p], empty when p = 0",
           _swap("conv2d", backward=_slice_p_to_minus_p), ("conv2d",)),
    Mutant("conv2d_dx_sized_from_output",
           "conv2d backward sizes dx from the output, (out-1)*stride + span, losing the rows a "
           "stride that does not divide leaves unread",
           _swap("conv2d", backward=_dx_sized_from_output), ("conv2d",)),
    Mutant("conv2d_stride_ignored_in_backward",
           "conv2d backward scatters the column gradient with stride 1",
           _swap("conv2d", backward=_stride_ignored), ("conv2d",)),
    Mutant("conv2d_weight_grad_last_sample",
           "conv2d weight gradient assigned inside the batch loop: only the last sample's",
           _swap("conv2d", backward=_weight_grad_last_sample), ("conv2d",)),
    Mutant("conv2d_true_convolution",
           "conv2d flips the kernel (convolution, not PyTorch's cross-correlation), "
           "consistently in forward and backward",
           _swap("conv2d", forward=_convolution_forward, backward=_convolution_backward),
           ("conv2d",)),
    Mutant("conv2d_kernel_not_flipped_in_dx",
           "conv2d input gradient correlates the upstream with the kernel instead of the "
           "flipped kernel",
           _swap("conv2d", backward=_kernel_not_flipped_in_dx), ("conv2d",)),
    Mutant("conv2d_groups_interleaved",
           "conv2d groups take every groups-th channel instead of a contiguous block",
           _swap("conv2d", forward=_interleaved_groups_forward,
                 backward=_interleaved_groups_backward), ("conv2d",)),
    Mutant("conv1d_bias_grad_mean",
           "conv1d bias gradient averaged over batch and positions instead of summed",
           _swap("conv1d", backward=_bias_grad_mean), ("conv1d",)),
    Mutant("max_pool2d_overlap_assign",
           "max_pool2d backward writes each window with = instead of +=",
           _swap("max_pool2d", backward=_max_pool_assign), ("max_pool2d",)),
    Mutant("max_pool2d_ties_to_every_max",
           "max_pool2d backward sends the gradient to every tied maximum",
           _swap("max_pool2d", forward=_ties_forward, backward=_ties_backward),
           ("max_pool2d",)),
    Mutant("avg_pool2d_divisor_always_kernel",
           "avg_pool2d divides by kernel area at clipped windows and with "
           "count_include_pad=false",
           _swap("avg_pool2d", forward=_avg_divisor_always_k), ("avg_pool2d",)),
    Mutant("adaptive_avg_pool2d_floor_end",
           "adaptive_avg_pool2d ends windows at floor((i+1)*in/out) instead of ceil",
           _swap("adaptive_avg_pool2d", forward=_adaptive_floor_end),
           ("adaptive_avg_pool2d",)),
)
