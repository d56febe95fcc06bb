"""Inverted dropout as a course solution writes it, and two planted bugs (written for this
project's corpus). ``dropout_param = {"p": keep probability, "mode": "train" | "test",
"seed": s}`` (the seed makes the student's mask repeatable, as the course's is).

- ``dropout_forward_per_feature`` draws one mask of shape (D,) for the whole batch;
- ``dropout_forward_not_inverted`` forgets to divide the kept values by p.
"""

from __future__ import annotations

import numpy as np


def dropout_forward(x, dropout_param):
    p, mode = dropout_param["p"], dropout_param["mode"]
    if mode == "train":
        rng = np.random.default_rng(dropout_param.get("seed"))
        mask = (rng.random(x.shape) < p) / p
        out = (x * mask).astype(x.dtype)
    else:
        mask, out = None, x.copy()
    return out, (dropout_param, mask)


def dropout_backward(dout, cache):
    dropout_param, mask = cache
    if dropout_param["mode"] == "train":
        return (dout * mask).astype(dout.dtype)
    return dout


def dropout_forward_per_feature(x, dropout_param):
    p, mode = dropout_param["p"], dropout_param["mode"]
    if mode == "train":
        rng = np.random.default_rng(dropout_param.get("seed"))
        mask = (rng.random(x.shape[1:]) < p) / p  # BUG: one mask shared by every row
        return (x * mask).astype(x.dtype), (dropout_param, mask)
    return x.copy(), (dropout_param, None)


def dropout_forward_not_inverted(x, dropout_param):
    p, mode = dropout_param["p"], dropout_param["mode"]
    if mode == "train":
        rng = np.random.default_rng(dropout_param.get("seed"))
        mask = rng.random(x.shape) < p  # BUG: kept values are not divided by p
        return (x * mask).astype(x.dtype), (dropout_param, mask)
    return x.copy(), (dropout_param, None)


def dropout_backward_any_mask(dout, cache):
    dropout_param, mask = cache
    return (dout * mask).astype(dout.dtype) if dropout_param["mode"] == "train" else dout
