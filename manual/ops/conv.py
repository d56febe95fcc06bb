r"""Convolution over 1 or 2 spatial dimensions (``F.conv1d`` / ``F.conv2d``), by im2col.

Like PyTorch, "convolution" here is *cross-correlation*: the kernel is not flipped.

.. math::
    y_{n,o,p} = b_o + \sum_{c \in G(o)} \sum_{j} W_{o,\,c - c_0(o),\,j}\;
        \tilde x_{n,c,\,p s + j d}

for output position :math:`p`, kernel offset :math:`j` (both multi-indices), stride
:math:`s`, dilation :math:`d`, zero-padded input :math:`\tilde x`, and :math:`G(o)` the
``C / groups`` input channels of output channel :math:`o`'s group (starting at
:math:`c_0(o)`). Shapes: ``x (N, C, *L)``, ``weight (O, C / groups, *k)``, ``bias (O,)``,
``y (N, O, *L_out)`` with :math:`L_{out} = \lfloor (L + p_{lo} + p_{hi} - d(k-1) - 1) / s
\rfloor + 1`.

The forward copies every window once into a column buffer ``cols (N, groups, C/groups·∏k,
∏L_out)`` (one copy of a strided view of the padded input), so that the layer is one batched matrix
product per group; backward reuses the buffer for the weight gradient and scatters the column
gradient back over the kernel offsets (the adjoint of the copy) for the input gradient.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from manual.numerics import Array
from manual.ops.windows import (
    Ints,
    Pads,
    crop_spatial,
    ntuple,
    pad_spatial,
    scatter_windows,
    window_span,
    window_view,
)


class ConvCache(NamedTuple):
    cols: Array           # (N, groups, C/groups * prod(kernel), prod(out))
    weight: Array         # (groups, O/groups, C/groups * prod(kernel))
    x_shape: Ints
    padded_shape: Ints
    pads: Pads
    kernel: Ints
    stride: Ints
    dilation: Ints
    out: Ints
    has_bias: bool


class ConvGeometry(NamedTuple):
    """Where a convolution's windows lie, for one input size: resolved once (a spec node's
    signature stores it, so that no forward derives it again)."""

    kernel: Ints
    stride: Ints
    dilation: Ints
    pads: Pads            # (before, after) per spatial dimension
    out: Ints             # the output size per spatial dimension


def conv_geometry(size: Ints, kernel_size: object, stride: object = 1, padding: object = 0,
                  dilation: object = 1) -> ConvGeometry:
    """The geometry for input lengths ``size``, each option as PyTorch takes it (an int or one
    per dimension; ``padding`` also ``"same"`` / ``"valid"``); ``ValueError`` naming the
    option or the numbers when none fits."""
    n = len(size)
    kernel = ntuple(kernel_size, n, "kernel_size")
    strides = ntuple(stride, n, "stride")
    dilations = ntuple(dilation, n, "dilation")
    pads = conv_padding(padding, kernel, strides, dilations)
    out = conv_output_size(tuple(size), pads, kernel, strides, dilations)
    return ConvGeometry(kernel, strides, dilations, pads, out)


def torch_padding(geometry: ConvGeometry) -> tuple[int, ...] | str:
    """``padding`` as ``nn.Conv*`` takes it: one int per dimension, or ``"same"`` for the
    uneven padding of an even kernel (only ``"same"`` makes it)."""
    if all(lo == hi for lo, hi in geometry.pads):
        return tuple(lo for lo, _ in geometry.pads)
    return "same"


def conv_padding(padding: object, kernel: Ints, stride: Ints, dilation: Ints) -> Pads:
    """``(before, after)`` zero padding per spatial dimension for PyTorch's ``padding``.

    ``"valid"`` is no padding; ``"same"`` pads :math:`d(k-1)` in total, the odd one after
    (as ``F.conv2d`` does for an even kernel), and needs stride 1.
    """
    n = len(kernel)
    if padding == "valid":
        return ((0, 0),) * n
    if padding == "same":
        if any(s != 1 for s in stride):
            raise ValueError(f"padding 'same' needs stride 1, got stride {stride}")
        totals = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
        return tuple((t // 2, t - t // 2) for t in totals)
    if isinstance(padding, str):
        raise ValueError(f"padding must be an integer, a list of {n} integers, 'same' or "
                         f"'valid', got {padding!r}")
    return tuple((p, p) for p in ntuple(padding, n, "padding", low=0))


def conv_output_size(size: Ints, pads: Pads, kernel: Ints, stride: Ints, dilation: Ints
                     ) -> Ints:
    """Output length per spatial dimension; raises if a window does not fit the padded input."""
    spans = window_span(kernel, dilation)
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(size, pads, strict=True))
    if any(span > p for span, p in zip(spans, padded, strict=True)):
        raise ValueError(f"kernel span {spans} (kernel_size {kernel}, dilation {dilation}) is "
                         f"larger than the padded input {padded}")
    return tuple((p - span) // s + 1 for p, span, s in zip(padded, spans, stride, strict=True))


def conv_forward(x: Array, weight: Array, bias: Array | None, *, stride: object = 1,
                 padding: object = 0, dilation: object = 1, groups: int = 1,
                 geometry: ConvGeometry | None = None) -> tuple[Array, ConvCache]:
    """Cross-correlation of ``x (N, C, *L)`` with ``weight (O, C/groups, *k)`` (see module).

    ``geometry`` (a node's, resolved when its spec was loaded) replaces ``stride``,
    ``padding`` and ``dilation``; without it they are resolved here, for ``x``'s size.
    """
    n_dims = weight.ndim - 2
    if x.ndim != n_dims + 2:
        raise ValueError(f"conv{n_dims}d needs an input (N, C, {n_dims} spatial), got shape "
                         f"{x.shape}")
    batch, channels = x.shape[:2]
    out_channels, kernel = weight.shape[0], tuple(weight.shape[2:])
    if channels % groups or out_channels % groups or weight.shape[1] * groups != channels:
        raise ValueError(f"groups {groups}: input channels {channels} and weight "
                         f"{weight.shape} do not agree")
    if geometry is None:
        geometry = conv_geometry(x.shape[2:], kernel, stride, padding, dilation)
    _, strides, dilations, pads, out = geometry
    padded = pad_spatial(x, pads)
    cols = np.ascontiguousarray(window_view(padded, kernel, strides, dilations, out)
                                .transpose(0, 1, *range(2 + n_dims, 2 + 2 * n_dims),
                                           *range(2, 2 + n_dims)))
    per_group = channels // groups * math.prod(kernel)
    cols_g = cols.reshape(batch, groups, per_group, math.prod(out))
    weight_g = weight.reshape(groups, out_channels // groups, per_group)
    y = np.matmul(weight_g, cols_g).reshape(batch, out_channels, *out)
    if bias is not None:
        y += bias.reshape(out_channels, *(1,) * n_dims)  # y is fresh: no extra copy
    return y, ConvCache(cols_g, weight_g, x.shape, padded.shape, pads, kernel, strides,
                        dilations, out, bias is not None)


def conv_backward(dy: Array, cache: ConvCache) -> tuple[Array, Array, Array | None]:
    r"""Gradients ``(dx, dweight, dbias)`` given :math:`G = \partial L / \partial y`.

    .. math::
        \frac{\partial L}{\partial W_{o,c,j}} = \sum_{n,p} G_{n,o,p}\, \tilde x_{n,c,ps+jd},
        \qquad \frac{\partial L}{\partial b_o} = \sum_{n,p} G_{n,o,p},

        \frac{\partial L}{\partial \tilde x_{n,c,q}} = \sum_{o \in G(c)} \sum_{(p, j):\,
        ps + jd = q} G_{n,o,p}\, W_{o,c,j}

    Every sum runs over the whole batch and every output position; the input gradient is the
    column gradient :math:`W^\top G` scattered back over the kernel offsets with ``+=``
    (overlapping windows add), then cropped to the unpadded input.
    """
    cols, weight_g, x_shape = cache.cols, cache.weight, cache.x_shape
    batch, groups, _, positions = cols.shape
    dy_g = dy.reshape(batch, groups, weight_g.shape[1], positions)
    dweight = np.matmul(dy_g, cols.swapaxes(-1, -2)).sum(axis=0)
    dweight = dweight.reshape(weight_g.shape[0] * weight_g.shape[1], x_shape[1] // groups,
                              *cache.kernel)
    dbias = dy.sum(axis=(0, *range(2, dy.ndim))) if cache.has_bias else None
    dcols = np.matmul(weight_g.swapaxes(-1, -2), dy_g)
    dcols = dcols.reshape(batch, x_shape[1], *cache.kernel, *cache.out)
    dpadded = scatter_windows(dcols, cache.padded_shape, cache.kernel, cache.stride,
                              cache.dilation, cache.out)
    return crop_spatial(dpadded, cache.pads, x_shape), dweight, dbias


def conv1d_forward(x: Array, weight: Array, bias: Array | None, **options: object
                   ) -> tuple[Array, ConvCache]:
    """``F.conv1d``: ``x (N, C, L)``, ``weight (O, C/groups, k)`` (options as conv_forward)."""
    if weight.ndim != 3:
        raise ValueError(f"conv1d needs a weight (O, C/groups, k), got shape {weight.shape}")
    return conv_forward(x, weight, bias, **options)  # type: ignore[arg-type]


def conv2d_forward(x: Array, weight: Array, bias: Array | None, **options: object
                   ) -> tuple[Array, ConvCache]:
    """``F.conv2d``: ``x (N, C, H, W)``, ``weight (O, C/groups, kH, kW)``."""
    if weight.ndim != 4:
        raise ValueError(f"conv2d needs a weight (O, C/groups, kH, kW), got shape "
                         f"{weight.shape}")
    return conv_forward(x, weight, bias, **options)  # type: ignore[arg-type]
