"""Convolution and pooling as a course solution writes them: loops over output positions
(written for this project's corpus). ``conv_param = {"stride": s, "pad": p}``,
``pool_param = {"pool_height": ph, "pool_width": pw, "stride": s}``.

Planted bugs:

- ``conv_backward_crop`` crops the padding with ``dxpad[:, :, pad:-pad, pad:-pad]``: empty at
  pad 0;
- ``conv_backward_size`` rebuilds the input size from the output, ``(h_out - 1) * stride + HH
  - 2 pad``, which is short when the stride does not divide ``H + 2 pad - HH``;
- ``conv_forward_leak`` allocates its output with ``np.zeros`` (float64 in a float32 run);
- ``max_pool_backward_assign`` writes ``dx[window] = ...``: overlapping windows lose gradient.
"""

from __future__ import annotations

import numpy as np


def _out_size(size, k, stride, pad):
    return (size + 2 * pad - k) // stride + 1


def conv_forward(x, w, b, conv_param, dtype=None):
    stride, pad = conv_param["stride"], conv_param["pad"]
    n, _, height, width = x.shape
    f, _, hh, ww = w.shape
    h_out, w_out = _out_size(height, hh, stride, pad), _out_size(width, ww, stride, pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((n, f, h_out, w_out), dtype=x.dtype if dtype is None else dtype)
    for i in range(h_out):
        for j in range(w_out):
            patch = xp[:, :, i * stride:i * stride + hh, j * stride:j * stride + ww]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, conv_param)


def conv_forward_leak(x, w, b, conv_param):
    return conv_forward(x, w, b, conv_param, dtype=np.float64)  # BUG: float64 output


def _conv_grads(dout, x, w, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    _, _, hh, ww = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            rows, cols = slice(i * stride, i * stride + hh), slice(j * stride, j * stride + ww)
            dw += np.tensordot(dout[:, :, i, j], xp[:, :, rows, cols], axes=([0], [0]))
            dxp[:, :, rows, cols] += np.tensordot(dout[:, :, i, j], w, axes=([1], [0]))
    return dxp, dw, dout.sum(axis=(0, 2, 3))


def conv_backward(dout, cache):
    x, w, conv_param = cache
    pad = conv_param["pad"]
    dxp, dw, db = _conv_grads(dout, x, w, conv_param)
    return dxp[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]], dw, db


def conv_backward_crop(dout, cache):
    x, w, conv_param = cache
    pad = conv_param["pad"]
    dxp, dw, db = _conv_grads(dout, x, w, conv_param)
    return dxp[:, :, pad:-pad, pad:-pad], dw, db  # BUG: empty when pad == 0


def conv_backward_size(dout, cache):
    x, w, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    dxp, dw, db = _conv_grads(dout, x, w, conv_param)
    height = (dout.shape[2] - 1) * stride + w.shape[2] - 2 * pad  # BUG: short if not dividing
    width = (dout.shape[3] - 1) * stride + w.shape[3] - 2 * pad
    return dxp[:, :, pad:pad + height, pad:pad + width], dw, db


def max_pool_forward(x, pool_param):
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    n, c, height, width = x.shape
    out = np.zeros((n, c, (height - ph) // s + 1, (width - pw) // s + 1), dtype=x.dtype)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = x[:, :, i * s:i * s + ph, j * s:j * s + pw].max(axis=(2, 3))
    return out, (x, pool_param)


def _pool_grad(dout, x, pool_param, overlap_adds):
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    n, c = x.shape[:2]
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            window = x[:, :, i * s:i * s + ph, j * s:j * s + pw].reshape(n, c, -1)
            first = np.eye(ph * pw, dtype=x.dtype)[window.argmax(axis=2)]  # the first maximum
            grad = (first * dout[:, :, i, j][:, :, None]).reshape(n, c, ph, pw)
            if overlap_adds:
                dx[:, :, i * s:i * s + ph, j * s:j * s + pw] += grad
            else:
                dx[:, :, i * s:i * s + ph, j * s:j * s + pw] = grad  # BUG: = loses overlaps
    return dx


def max_pool_backward(dout, cache):
    return _pool_grad(dout, *cache, overlap_adds=True)


def max_pool_backward_assign(dout, cache):
    return _pool_grad(dout, *cache, overlap_adds=False)


def avg_pool_forward(x, pool_param):
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    n, c, height, width = x.shape
    out = np.zeros((n, c, (height - ph) // s + 1, (width - pw) // s + 1), dtype=x.dtype)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = x[:, :, i * s:i * s + ph, j * s:j * s + pw].mean(axis=(2, 3))
    return out, (x, pool_param)


def avg_pool_backward(dout, cache):
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dx[:, :, i * s:i * s + ph, j * s:j * s + pw] += dout[:, :, i, j][:, :, None, None] / (
                ph * pw)
    return dx
