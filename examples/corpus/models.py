"""Whole models as users write them (written for this project's corpus).

- ``TwoLayerNet``: the course's convention, a ``params`` dict and ``loss(X, y) -> (loss,
  grads)`` (affine - ReLU - affine - softmax, L2 regularisation ``reg * sum(W**2)``);
  ``TwoLayerNetBug`` forgets to divide the score gradient by the batch size (every gradient
  is N times too large);
- ``seed_forward`` / ``seed_backward``: the seed tutorial's 2-layer network in its column
  layout (``z1 = W1 @ x + b1``, ReLU, sigmoid, binary cross-entropy); ``seed_backward_bug``
  takes ``a2 - y`` as dL/da2 and applies sigmoid' again.
"""

from __future__ import annotations

import numpy as np


class TwoLayerNet:
    def __init__(self, inputs=4, hidden=6, classes=3, reg=0.1, seed=0):
        rng = np.random.default_rng(seed)
        self.reg = reg
        self.params = {"W1": 0.5 * rng.standard_normal((inputs, hidden)), "b1": np.zeros(hidden),
                       "W2": 0.5 * rng.standard_normal((hidden, classes)),
                       "b2": 0.1 * rng.standard_normal(classes)}

    def scores_grad(self, probs, y):
        d = probs.copy()
        d[np.arange(len(y)), y] -= 1
        return d / len(y)

    def loss(self, X, y):
        W1, b1, W2, b2 = (self.params[k] for k in ("W1", "b1", "W2", "b2"))
        h = np.maximum(X @ W1 + b1, 0)
        scores = h @ W2 + b2
        shifted = scores - scores.max(axis=1, keepdims=True)
        probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        loss = -np.log(probs[np.arange(len(y)), y]).mean()
        loss += self.reg * (np.sum(W1 ** 2) + np.sum(W2 ** 2))
        dscores = self.scores_grad(probs, y)
        dh = (dscores @ W2.T) * (h > 0)
        grads = {"W1": X.T @ dh + 2 * self.reg * W1, "b1": dh.sum(axis=0),
                 "W2": h.T @ dscores + 2 * self.reg * W2, "b2": dscores.sum(axis=0)}
        return loss, grads


class TwoLayerNetBug(TwoLayerNet):
    def scores_grad(self, probs, y):
        d = probs.copy()
        d[np.arange(len(y)), y] -= 1
        return d  # BUG: the mean over the batch needs / N


def seed_forward(x, W1, b1, W2, b2, y):
    z1 = W1 @ x + b1
    a1 = np.maximum(z1, 0)
    a2 = 1 / (1 + np.exp(-(W2 @ a1 + b2)))
    loss = -np.mean(y * np.log(a2) + (1 - y) * np.log(1 - a2))
    return loss, (x, z1, a1, a2, y, W2)


def seed_backward(cache):
    x, z1, a1, a2, y, W2 = cache
    dz2 = (a2 - y) / y.shape[1]  # sigmoid and cross-entropy together
    dz1 = (W2.T @ dz2) * (z1 > 0)
    return {"W1": dz1 @ x.T, "b1": dz1.sum(axis=1, keepdims=True),
            "W2": dz2 @ a1.T, "b2": dz2.sum(axis=1, keepdims=True)}


def seed_backward_bug(cache):
    x, z1, a1, a2, y, W2 = cache
    dz2 = (a2 - y) * a2 * (1 - a2) / y.shape[1]  # BUG: a2 - y is dL/dz2 already
    dz1 = (W2.T @ dz2) * (z1 > 0)
    return {"W1": dz1 @ x.T, "b1": dz1.sum(axis=1, keepdims=True),
            "W2": dz2 @ a1.T, "b2": dz2.sum(axis=1, keepdims=True)}
