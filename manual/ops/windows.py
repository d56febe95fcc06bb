r"""Sliding-window arithmetic shared by convolution and pooling, on ``(N, C, *spatial)``.

A window of kernel size :math:`k` and dilation :math:`d` spans :math:`d(k - 1) + 1`
positions; output position :math:`o` reads the (padded) input at :math:`o s + j d` for kernel
offset :math:`j = 0, \dots, k-1`. So the input positions that kernel offset :math:`j` reads for
every output position are one strided slice, :func:`offset_slices`, and convolution and
pooling loop over the (few) kernel offsets, never over pixels.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from manual.numerics import Array

Ints = tuple[int, ...]
Pads = tuple[tuple[int, int], ...]


def ntuple(value: object, n: int, name: str, low: int = 1) -> Ints:
    """``value`` (an int, or a list/tuple of ``n`` ints) as ``n`` ints, each at least ``low``."""
    items = [value] * n if isinstance(value, int) and not isinstance(value, bool) else value
    if (not isinstance(items, list | tuple) or len(items) != n
            or any(isinstance(v, bool) or not isinstance(v, int) for v in items)):
        raise ValueError(f"{name} must be an integer or a list of {n} integers, got {value!r}")
    if any(v < low for v in items):
        raise ValueError(f"{name} must be at least {low}, got {value!r}")
    return tuple(items)


def window_span(kernel: Ints, dilation: Ints) -> Ints:
    """The number of input positions one window covers, per spatial dimension."""
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))


def kernel_offsets(kernel: Ints) -> Iterator[Ints]:
    """Every kernel offset, in PyTorch's scan order (row-major: the last dimension fastest)."""
    return itertools.product(*(range(k) for k in kernel))


def offset_slices(offset: Ints, stride: Ints, dilation: Ints, out: Ints
                  ) -> tuple[slice, ...]:
    """Index of the padded input that kernel ``offset`` reads for every output position.

    Leading ``(slice(None), slice(None))`` covers the batch and channel axes.
    """
    spatial = tuple(slice(j * d, j * d + s * (n - 1) + 1, s)
                    for j, s, d, n in zip(offset, stride, dilation, out, strict=True))
    return (slice(None), slice(None), *spatial)


def window_view(padded: Array, kernel: Ints, stride: Ints, dilation: Ints, out: Ints) -> Array:
    """A read-only view ``(N, C, *out, *kernel)`` of every window of ``padded`` (no copy)."""
    n_dims = len(kernel)
    spans = window_span(kernel, dilation)
    view = np.lib.stride_tricks.sliding_window_view(padded, spans, axis=tuple(range(2, 2 + n_dims)))
    index = (slice(None), slice(None), *(slice(0, s * (n - 1) + 1, s) for s, n in zip(
        stride, out, strict=True)), *(slice(None, None, d) for d in dilation))
    return view[index]


def pad_spatial(x: Array, pads: Pads, value: float = 0.0) -> Array:
    """``x`` with ``pads[i] = (before, after)`` positions of ``value`` around spatial axis i."""
    if not any(lo or hi for lo, hi in pads):
        return x
    return np.pad(x, ((0, 0), (0, 0), *pads), constant_values=value)


def crop_spatial(padded: Array, pads: Pads, shape: Ints) -> Array:
    """The part of ``padded`` that was the input of ``shape`` before :func:`pad_spatial`."""
    spatial = tuple(slice(lo, lo + n) for (lo, _), n in zip(pads, shape[2:], strict=True))
    return padded[(slice(None), slice(None), *spatial)]


def scatter_windows(parts: Array, padded_shape: Ints, kernel: Ints, stride: Ints,
                    dilation: Ints, out: Ints) -> Array:
    r"""Sum ``parts[:, :, *offset]`` back onto the padded input positions each offset read.

    ``parts`` has shape ``(N, C, *kernel, *out)``. Windows overlap when the stride is smaller
    than the span, so contributions *accumulate* (``+=``): this is the adjoint of reading
    every window, :math:`\partial x_p = \sum_{(o, j):\, o s + j d = p} \partial w_{o, j}`.
    """
    grad = np.zeros(padded_shape, dtype=parts.dtype)
    for offset in kernel_offsets(kernel):
        index: tuple[Any, ...] = (slice(None), slice(None), *offset)
        grad[offset_slices(offset, stride, dilation, out)] += parts[index]
    return grad
