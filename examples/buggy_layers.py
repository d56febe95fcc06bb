"""Hand-written layers as a student writes them, four with a planted bug, checked against PyTorch.

Written for this project (not copied from any course): the conventions are the well-known
course's, ``out, cache = f_forward(x, ..., param)`` and ``dx, ... = f_backward(dout, cache)``.

Correct: ``affine``, ``relu``, ``softmax_loss``. Planted bugs:

- ``conv_backward`` crops the padding with ``dxpad[:, :, pad:-pad, pad:-pad]``, which is
  empty when ``pad == 0``;
- ``batchnorm_forward`` updates the running variance with the biased batch variance (divides
  by N) where PyTorch uses the unbiased one (N - 1), so the eval output differs;
- ``max_pool_backward`` writes ``dx[window] = ...`` instead of ``+=``, so overlapping windows
  (stride < pool size) lose gradient;
- ``seed_backward`` (the seed tutorial's 2-3-1 network, column vectors) takes ``a2 - y`` as
  dL/da2 and then multiplies by sigmoid' again: every gradient is a2 (1 - a2) = 0.056 x the
  true one.

Check them all: ``backprop-harness check examples/buggy_layers.py`` (it runs ``CASES``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import manual
from reference.checks import Labels, LayerCase, NetworkCase, from_loss

# --- correct layers ---------------------------------------------------------------------


def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w)


def affine_backward(dout, cache):
    x, w = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def relu_forward(x):
    return np.maximum(x, 0), x


def relu_backward(dout, x):
    return dout * (x > 0)


def softmax_loss(x, y):
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = x.shape[0]
    loss = -log_probs[np.arange(n), y].mean()
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1
    return loss, dx / n


# --- conv: padding 0 ----------------------------------------------------------------------


def conv_forward(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    n, _, height, width = x.shape
    f, _, hh, ww = w.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    h_out = (height + 2 * pad - hh) // stride + 1
    w_out = (width + 2 * pad - ww) // stride + 1
    out = np.zeros((n, f, h_out, w_out), dtype=x.dtype)
    for i in range(hh):
        for j in range(ww):
            patch = xpad[:, :, i:i + stride * h_out:stride, j:j + stride * w_out:stride]
            out += np.einsum("nchw,fc->nfhw", patch, w[:, :, i, j])
    out += b[None, :, None, None]
    return out, (x, w, conv_param)


def conv_backward(dout, cache):
    x, w, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    _, _, hh, ww = w.shape
    h_out, w_out = dout.shape[2:]
    xpad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxpad = np.zeros_like(xpad)
    dw = np.zeros_like(w)
    for i in range(hh):
        for j in range(ww):
            rows = slice(i, i + stride * h_out, stride)
            cols = slice(j, j + stride * w_out, stride)
            dw[:, :, i, j] = np.einsum("nfhw,nchw->fc", dout, xpad[:, :, rows, cols])
            dxpad[:, :, rows, cols] += np.einsum("nfhw,fc->nchw", dout, w[:, :, i, j])
    dx = dxpad[:, :, pad:-pad, pad:-pad]  # BUG: empty when pad == 0
    db = dout.sum(axis=(0, 2, 3))
    return dx, dw, db


def torch_conv(x, w, b, conv_param):
    return F.conv2d(x, w, b, stride=conv_param["stride"], padding=conv_param["pad"])


# --- batch norm: biased running variance --------------------------------------------------


def batchnorm_forward(x, gamma, beta, bn_param):
    eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    running_mean = bn_param.get("running_mean", np.zeros(x.shape[1], dtype=x.dtype))
    running_var = bn_param.get("running_var", np.zeros(x.shape[1], dtype=x.dtype))
    if bn_param["mode"] == "train":
        mean, var = x.mean(axis=0), x.var(axis=0)
        xhat = (x - mean) / np.sqrt(var + eps)
        running_mean = momentum * running_mean + (1 - momentum) * mean
        running_var = momentum * running_var + (1 - momentum) * var  # BUG: biased (N)
        cache = (xhat, gamma, np.sqrt(var + eps))
    else:
        xhat = (x - running_mean) / np.sqrt(running_var + eps)
        cache = None
    bn_param["running_mean"], bn_param["running_var"] = running_mean, running_var
    return gamma * xhat + beta, cache


def batchnorm_backward(dout, cache):
    xhat, gamma, std = cache
    dgamma = (dout * xhat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0)) / std
    return dx, dgamma, dbeta


# --- max pool: `=` in overlapping windows -------------------------------------------------


def max_pool_forward(x, pool_param):
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    n, c, height, width = x.shape
    h_out, w_out = (height - ph) // s + 1, (width - pw) // s + 1
    out = np.zeros((n, c, h_out, w_out), dtype=x.dtype)
    for i in range(h_out):
        for j in range(w_out):
            out[:, :, i, j] = x[:, :, i * s:i * s + ph, j * s:j * s + pw].max(axis=(2, 3))
    return out, (x, pool_param)


def max_pool_backward(dout, cache):
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    n, c = x.shape[:2]
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            window = x[:, :, i * s:i * s + ph, j * s:j * s + pw].reshape(n, c, -1)
            first = np.eye(ph * pw, dtype=x.dtype)[window.argmax(axis=2)]  # first max, as torch
            grad = first * dout[:, :, i, j][:, :, None]
            dx[:, :, i * s:i * s + ph, j * s:j * s + pw] = grad.reshape(n, c, ph, pw)  # BUG: =
    return dx


def torch_max_pool(x, pool_param):
    return F.max_pool2d(x, (pool_param["pool_height"], pool_param["pool_width"]),
                        stride=pool_param["stride"])


# --- the seed tutorial's network: sigmoid' twice (column vectors, as the tutorial) ----------


def seed_forward(x, w1, b1, w2, b2, y):
    z1 = w1 @ x + b1
    a1 = np.maximum(z1, 0)
    z2 = w2 @ a1 + b2
    a2 = 1 / (1 + np.exp(-z2))
    loss = -np.mean(y * np.log(a2) + (1 - y) * np.log(1 - a2))
    return loss, (x, z1, a1, z2, a2, y, w2)


def seed_backward(cache):
    x, z1, a1, _, a2, y, w2 = cache
    da2 = a2 - y                       # BUG: this is already dL/dz2 (sigmoid and BCE together)
    dz2 = da2 * a2 * (1 - a2)          # ... and sigmoid' is applied a second time
    dw2, db2 = dz2 @ a1.T, dz2.sum(axis=1, keepdims=True)
    da1 = w2.T @ dz2
    dz1 = da1 * (z1 > 0)
    dw1, db1 = dz1 @ x.T, dz1.sum(axis=1, keepdims=True)
    return {"da2": da2, "dz2": dz2, "dw2": dw2, "db2": db2, "da1": da1, "dz1": dz1,
            "dw1": dw1, "db1": db1}


HERE = Path(__file__).parent
SEED_SPEC = manual.load_spec(HERE / "seed_example.json")
SEED_DATA = manual.load_data(HERE / "seed_example_data.json", SEED_SPEC)


def seed_values():
    """The user's own run of the seed network, with the spec's weights, by tensor name."""
    p = manual.initial_parameters(SEED_SPEC)
    w1, b1 = p["layers.0.weight"], p["layers.0.bias"][:, None]
    w2, b2 = p["layers.2.weight"], p["layers.2.bias"][:, None]
    loss, cache = seed_forward(SEED_DATA.x.T, w1, b1, w2, b2, SEED_DATA.y.T)
    d = seed_backward(cache)
    _, z1, a1, z2, a2, _, _ = cache
    return {
        "forward: layers.0": z1, "forward: layers.1": a1, "forward: layers.2": z2,
        "forward: layers.3": a2, "forward: loss": loss,
        "backward: output": d["da2"], "backward: layers.2": d["dz2"],
        "backward: layers.2.weight": d["dw2"], "backward: layers.2.bias": d["db2"],
        "backward: layers.1": d["da1"], "backward: layers.0": d["dz1"],
        "backward: layers.0.weight": d["dw1"], "backward: layers.0.bias": d["db1"],
    }


CONV_SWEEP = {"H": [5, 6], "conv_param": [{"stride": s, "pad": p} for s in (1, 2)
                                          for p in (0, 1)]}
POOL_SWEEP = {"pool_param": [{"pool_height": 2, "pool_width": 2, "stride": 2},
                             {"pool_height": 3, "pool_width": 3, "stride": 2}]}

CASES = [
    LayerCase("affine", affine_forward, affine_backward,
              torch=lambda x, w, b: x.reshape(len(x), -1) @ w + b,
              inputs={"x": (4, 3, 2), "w": (6, 5), "b": (5,)}),
    LayerCase("relu", relu_forward, relu_backward, torch=torch.relu, inputs={"x": (4, 5)}),
    LayerCase("softmax_loss", *from_loss(softmax_loss), torch=F.cross_entropy,
              inputs={"x": (5, 10), "y": Labels((5,), classes=10)}),
    LayerCase("conv", conv_forward, conv_backward, torch=torch_conv,
              inputs={"x": (2, 3, "H", "H"), "w": (4, 3, 3, 3), "b": (4,)}, sweep=CONV_SWEEP),
    LayerCase("batchnorm", batchnorm_forward, batchnorm_backward,
              torch=torch.nn.BatchNorm1d(5, momentum=0.1), inputs={"x": (8, 5)},
              params={"gamma": "weight", "beta": "bias"},
              options={"bn_param": {"mode": "train", "momentum": 0.9}},
              state={"running_mean": "running_mean", "running_var": "running_var"},
              steps=3, then={"bn_param": {"mode": "test"}}),
    LayerCase("max_pool", max_pool_forward, max_pool_backward, torch=torch_max_pool,
              inputs={"x": (2, 3, 7, 7)}, sweep=POOL_SWEEP),
    NetworkCase("seed", SEED_SPEC, SEED_DATA, seed_values, layout="columns"),
]
