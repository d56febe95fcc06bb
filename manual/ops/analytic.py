r"""Complex-safe forwards: each op entry's ``calculus.complex_forward`` (manual.registry).

The manual forwards are written for real input (``np.abs``, ``np.maximum`` and ``x >= 0`` are
not analytic), so the complex step evaluates these instead. Each is analytic in :math:`z` on
the checked path; where a stable form switches formulas it does so on :math:`\operatorname{Re}
z`, between two expressions of the same analytic function, so the switch is invisible to the
derivative. On real input each agrees with the manual forward to rounding (a test checks it).

Losses return the per-element loss (``reduction="none"``) and take the loss's options but
``reduction``: the caller reduces. An op without such a form is not analytic, and the complex
step refuses it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from manual.ops.classification_losses import BCE_LOG_FLOOR, smoothed_target

Z = np.ndarray


def _sign(z: Z) -> Z:
    return np.where(np.real(z) >= 0, 1.0, -1.0)


def sigmoid(z: Z) -> Z:
    r""":math:`\sigma(z)`, from :math:`w = e^{-s z}` with :math:`s = \operatorname{sign} \operatorname{Re} z` (so :math:`|w| \le 1`)."""  # noqa: E501
    s = _sign(z)
    w = np.exp(-s * z)
    return np.where(s > 0, 1 / (1 + w), w / (1 + w))


def softplus(z: Z) -> Z:
    r""":math:`\log(1 + e^{z})` as :math:`[s > 0]\,z + \log(1 + e^{-s z})`."""
    s = _sign(z)
    return np.where(s > 0, z, 0) + np.log1p(np.exp(-s * z))


def logsumexp(z: Z, dim: int = -1) -> Z:
    m = np.max(np.real(z), axis=dim, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    return m + np.log(np.sum(np.exp(z - m), axis=dim, keepdims=True))


def softmax(z: Z, dim: int = -1) -> Z:
    e = np.exp(z - np.max(np.real(z), axis=dim, keepdims=True))
    return e / np.sum(e, axis=dim, keepdims=True)


def identity(z: Z) -> Z:
    return z


def silu(z: Z) -> Z:
    return z * sigmoid(z)


def mish(z: Z) -> Z:
    return z * np.tanh(softplus(z))


def logsigmoid(z: Z) -> Z:
    return -softplus(-z)


def log_softmax(z: Z, dim: int = -1) -> Z:
    return z - logsumexp(z, dim)


def _clamped_log(z: Z) -> Z:
    log = np.log(z)
    return np.where(np.real(log) < BCE_LOG_FLOOR, BCE_LOG_FLOOR, log)


def _unweighted(name: str, weight: Any = None, pos_weight: Any = None,
                ignore_index: int = -100) -> None:
    """The complex-step forms have no class weights: refuse rather than check the wrong loss."""
    if weight is not None or pos_weight is not None or ignore_index != -100:
        raise ValueError(f"complex step: {name} with weight, pos_weight or ignore_index is not "
                         f"supported")


def bce(z: Z, t: Z, **weights: Any) -> Z:
    _unweighted("bce", **weights)
    return (t - 1) * _clamped_log(1 - z) - t * _clamped_log(z)


def bce_with_logits(z: Z, t: Z, **weights: Any) -> Z:
    _unweighted("bce_with_logits", **weights)
    return (1 - t) * z + softplus(-z)


def cross_entropy(z: Z, t: Z, label_smoothing: float = 0.0, **weights: Any) -> Z:
    _unweighted("cross_entropy", **weights)
    smoothed = smoothed_target(t, z.shape[-1], np.dtype(np.float64), label_smoothing)
    return -np.sum(smoothed * (z - logsumexp(z)), axis=-1)


def nll(z: Z, t: Z, **weights: Any) -> Z:
    _unweighted("nll", **weights)
    return -z[np.arange(z.shape[0]), t]


def kl_div(z: Z, t: Z, log_target: bool = False) -> Z:
    if log_target:
        return np.exp(t) * (t - z)
    return t * np.log(np.where(t > 0, t, 1)) - t * z


def mse(z: Z, t: Z) -> Z:
    return (z - t) ** 2
