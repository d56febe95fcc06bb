"""Affine layers, activations and losses as a course solution writes them (written for this
project's corpus). Convention: ``out, cache = f_forward(x, ...)``, ``dx, ... =
f_backward(dout, cache)``; a loss returns ``(loss, dx)``.

Planted bugs: ``relu_backward_inplace`` zeroes the caller's ``dout``; ``affine_forward_leak``
allocates its output with ``np.zeros`` (float64 in a float32 run); ``softmax_loss_naive``
exponentiates without subtracting the row maximum (inf / inf = nan at large scores).
"""

from __future__ import annotations

import math

import numpy as np


def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w)


def affine_backward(dout, cache):
    x, w = cache
    return (dout @ w.T).reshape(x.shape), x.reshape(len(x), -1).T @ dout, dout.sum(axis=0)


def affine_forward_leak(x, w, b):
    out = np.zeros((x.shape[0], w.shape[1]))  # BUG: float64 whatever x's dtype
    out[:] = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w)


def relu_forward(x):
    return np.maximum(x, 0), x


def relu_backward(dout, x):
    return dout * (x > 0)


def relu_backward_inplace(dout, x):
    dout[x <= 0] = 0  # BUG: overwrites the caller's upstream gradient
    return dout


def affine_relu_forward(x, w, b):
    a, affine_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (affine_cache, relu_cache)


def affine_relu_backward(dout, cache):
    affine_cache, relu_cache = cache
    return affine_backward(relu_backward(dout, relu_cache), affine_cache)


def leaky_relu_forward(x, slope):
    return np.where(x > 0, x, slope * x), (x, slope)


def leaky_relu_backward(dout, cache):
    x, slope = cache
    return dout * np.where(x > 0, 1, slope).astype(dout.dtype)


def sigmoid_forward(x):
    out = 0.5 * (1 + np.tanh(0.5 * x))
    return out, out


def sigmoid_backward(dout, out):
    return dout * out * (1 - out)


def tanh_forward(x):
    out = np.tanh(x)
    return out, out


def tanh_backward(dout, out):
    return dout * (1 - out ** 2)


def softplus_forward(x):
    return np.logaddexp(0, x).astype(x.dtype), x  # log(1 + e^x) without overflow


def softplus_backward(dout, x):
    return dout * (0.5 * (1 + np.tanh(0.5 * x)))


def elu_forward(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))), (x, alpha)


def elu_backward(dout, cache):
    x, alpha = cache
    return dout * np.where(x > 0, 1, alpha * np.exp(np.minimum(x, 0))).astype(dout.dtype)


def gelu_forward(x):
    c = x.dtype.type(math.sqrt(2 / math.pi))
    t = np.tanh(c * (x + x.dtype.type(0.044715) * x ** 3))
    return 0.5 * x * (1 + t), (x, t, c)


def gelu_backward(dout, cache):
    x, t, c = cache
    dt = (1 - t ** 2) * c * (1 + x.dtype.type(3 * 0.044715) * x ** 2)
    return dout * (0.5 * (1 + t) + 0.5 * x * dt)


def reciprocal_forward(x):
    return 1 / x, x  # a pole at 0: the reference is infinite there too


def reciprocal_backward(dout, x):
    return -dout / x ** 2


def temporal_affine_forward(x, w, b):
    n, t, d = x.shape
    return (x.reshape(n * t, d) @ w + b).reshape(n, t, -1), (x, w)


def temporal_affine_backward(dout, cache):
    x, w = cache
    n, t, d = x.shape
    flat = dout.reshape(n * t, -1)
    return (flat @ w.T).reshape(x.shape), x.reshape(n * t, d).T @ flat, flat.sum(axis=0)


# --- losses: (loss, dx) ---------------------------------------------------------------------


def softmax_loss(x, y):
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = len(x)
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1
    return -log_probs[np.arange(n), y].mean(), dx / n


def softmax_loss_naive(x, y):
    probs = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)  # BUG: overflows at large x
    n = len(x)
    dx = probs.copy()
    dx[np.arange(n), y] -= 1
    return -np.log(probs[np.arange(n), y]).mean(), dx / n


def svm_loss(x, y):
    n = len(x)
    correct = x[np.arange(n), y][:, None]
    margins = np.maximum(0, x - correct + 1)
    margins[np.arange(n), y] = 0
    dx = (margins > 0).astype(x.dtype)
    dx[np.arange(n), y] -= dx.sum(axis=1)
    return margins.sum() / n, dx / n


def mse_loss(x, target):
    diff = x - target
    return (diff ** 2).mean(), 2 * diff / diff.size


def bce_with_logits_loss(x, target):
    loss = np.logaddexp(0, x) - target * x  # log(1 + e^x) - t x, stable
    probs = 0.5 * (1 + np.tanh(0.5 * x))
    return loss.mean(), (probs - target) / x.size
