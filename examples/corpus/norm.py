"""Normalisation layers as a course solution writes them (written for this project's corpus).
``bn_param = {"mode": "train" | "test", "momentum": m, "eps": e}`` holds the running
statistics, which the forward updates in place (``running = m running + (1 - m) batch``).

Planted bugs: ``batchnorm_forward_biased`` keeps the biased batch variance (divides by N)
as its running variance, where PyTorch keeps the unbiased one; ``spatial_batchnorm_per_pixel``
normalises each pixel over the batch alone instead of each channel over (N, H, W).
"""

from __future__ import annotations

import numpy as np


def batchnorm_forward(x, gamma, beta, bn_param, unbiased=True):
    eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    running_mean = bn_param.get("running_mean", np.zeros(x.shape[1], dtype=x.dtype))
    running_var = bn_param.get("running_var", np.ones(x.shape[1], dtype=x.dtype))
    if bn_param["mode"] == "train":
        mean, var = x.mean(axis=0), x.var(axis=0)
        std = np.sqrt(var + eps)
        xhat = (x - mean) / std
        n = len(x)
        kept = var * n / (n - 1) if unbiased else var
        bn_param["running_mean"] = momentum * running_mean + (1 - momentum) * mean
        bn_param["running_var"] = momentum * running_var + (1 - momentum) * kept
        cache = (xhat, gamma, std)
    else:
        xhat, cache = (x - running_mean) / np.sqrt(running_var + eps), None
    return gamma * xhat + beta, cache


def batchnorm_forward_biased(x, gamma, beta, bn_param):
    return batchnorm_forward(x, gamma, beta, bn_param, unbiased=False)  # BUG: biased


def batchnorm_backward(dout, cache):
    xhat, gamma, std = cache
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0)) / std
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    std = np.sqrt(x.var(axis=1, keepdims=True) + x.dtype.type(eps))
    xhat = (x - mean) / std
    return gamma * xhat + beta, (xhat, gamma, std)


def layernorm_backward(dout, cache):
    xhat, gamma, std = cache
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(axis=1, keepdims=True)
          - xhat * (dxhat * xhat).mean(axis=1, keepdims=True)) / std
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def _channels_last(x):
    return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])


def _channels_first(flat, shape):
    n, c, h, w = shape
    return flat.reshape(n, h, w, c).transpose(0, 3, 1, 2)


def spatial_batchnorm_forward(x, gamma, beta, eps=1e-5):
    flat = _channels_last(x)
    mean, std = flat.mean(axis=0), np.sqrt(flat.var(axis=0) + x.dtype.type(eps))
    xhat = (flat - mean) / std
    return _channels_first(gamma * xhat + beta, x.shape), (xhat, gamma, std, x.shape)


def spatial_batchnorm_backward(dout, cache):
    xhat, gamma, std, shape = cache
    flat = _channels_last(dout)
    dxhat = flat * gamma
    dx = (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0)) / std
    return _channels_first(dx, shape), (flat * xhat).sum(axis=0), flat.sum(axis=0)


def spatial_batchnorm_per_pixel(x, gamma, beta, eps=1e-5):
    mean, std = x.mean(axis=0), np.sqrt(x.var(axis=0) + x.dtype.type(eps))  # BUG: over N only
    xhat = (x - mean) / std
    g, b = gamma[None, :, None, None], beta[None, :, None, None]
    return g * xhat + b, (_channels_last(xhat), gamma, _channels_last(std[None]), x.shape)


def groupnorm_forward(x, gamma, beta, groups, eps=1e-5):
    grouped = x.reshape(len(x), groups, -1)
    mean = grouped.mean(axis=2, keepdims=True)
    std = np.sqrt(grouped.var(axis=2, keepdims=True) + x.dtype.type(eps))
    xhat = ((grouped - mean) / std).reshape(x.shape)
    out = gamma[None, :, None, None] * xhat + beta[None, :, None, None]
    return out, (xhat, gamma, std, groups)


def groupnorm_backward(dout, cache):
    xhat, gamma, std, groups = cache
    n = len(dout)
    dgamma, dbeta = (dout * xhat).sum(axis=(0, 2, 3)), dout.sum(axis=(0, 2, 3))
    dxhat = (dout * gamma[None, :, None, None]).reshape(n, groups, -1)
    xg = xhat.reshape(n, groups, -1)
    dx = (dxhat - dxhat.mean(axis=2, keepdims=True)
          - xg * (dxhat * xg).mean(axis=2, keepdims=True)) / std
    return dx.reshape(dout.shape), dgamma, dbeta
