r"""Vanishing and exploding gradients through time, measured in both engines.

For an ``rnn`` (tanh) with input weights :math:`W_{ih} = I` and zero input bias, the
pre-activation is :math:`a_t = x_t + W_{hh} h_{t-1} + b_{hh}`, so the input gradient is
:math:`\bar x_t = \bar a_t` and, with :math:`L = \langle u, h_T \rangle`,

.. math::
    \bar x_{t} = D_t W_{hh}^\top \bar x_{t+1}, \quad D_t = \operatorname{diag}\phi'(a_t),
    \qquad \|\bar x_t\| \le (\gamma\, \sigma_{\max}(W_{hh}))^{T-t} \|\bar x_T\|

with :math:`\gamma = \sup|\phi'| = 1` for tanh: Pascanu, Mikolov and Bengio (2013), eq. 7.
:math:`W_{hh} = \rho Q` with :math:`Q` orthogonal has every singular value :math:`\rho`, so
:math:`\rho < 1` is sufficient for the gradient to vanish at least as fast as
:math:`\rho^{T-t}`, and :math:`\rho > 1` necessary for it to explode. ``lstm`` and ``gru``
(PyTorch's default initialisation) are measured on the same task for comparison: at that
init the forget gate sits near :math:`\sigma(0) = 1/2`, so the cell state, and with it the
gradient, still shrinks by about half a step; a forget-gate bias (Jozefowicz et al. 2015)
is what lets the gate keep the gradient (``forget_bias``).

:func:`gradient_through_time` gives :math:`\|\bar x_t\|` (mean over the batch) for
:math:`t = 0 \dots T-1`; :func:`decay_rate` the fitted per-step factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from manual import init as initializers
from manual.layers import LAYERS
from manual.ops.recurrent import recurrent_backward, recurrent_forward

Engine = Literal["manual", "torch"]


@dataclass(frozen=True)
class ThroughTime:
    """One measured curve: ``norms[t]`` = mean over the batch of :math:`\\|\\bar x_t\\|`."""

    layer: str
    engine: str
    spectral_norm: float | None
    norms: tuple[float, ...]
    rate: float
    bound: float | None


def rnn_parameters(hidden: int, spectral_norm: float, rng: np.random.Generator
                   ) -> dict[str, np.ndarray]:
    """``W_ih = I``, ``W_hh = rho Q`` (``Q`` orthogonal), zero biases."""
    return {"weight_ih_l0": np.eye(hidden),
            "weight_hh_l0": initializers.orthogonal((hidden, hidden), rng, gain=spectral_norm),
            "bias_ih_l0": np.zeros(hidden), "bias_hh_l0": np.zeros(hidden)}


def _default_parameters(layer: str, hidden: int, rng: np.random.Generator
                        ) -> dict[str, np.ndarray]:
    signature = LAYERS[layer].signature({"hidden_size": hidden}, ((1, hidden),))
    return {name: slot.init(rng, slot.shape) for name, slot in signature.params.items()}


def _input_gradients(mode: str, params: dict[str, np.ndarray], x: np.ndarray,
                     upstream: np.ndarray, engine: Engine) -> np.ndarray:
    """:math:`\\bar x` (batch first) for :math:`L = \\langle u, h_T\\rangle`, in one engine:
    the one place to rewire to ``reference.run``."""
    d_output = np.zeros((*x.shape[:2], upstream.shape[-1]), x.dtype)
    d_output[:, -1] = upstream
    if engine == "manual":
        _, cache = recurrent_forward(x, params, mode=mode, batch_first=True)  # type: ignore[arg-type]
        d_h_n = np.zeros((1, *upstream.shape), x.dtype)
        dx, _, _, _ = recurrent_backward((d_output, d_h_n, None), cache)
        return dx
    import torch

    hidden = params["weight_hh_l0"].shape[1]
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(mode, torch.nn.RNN)
    kwargs = {"nonlinearity": "tanh"} if mode == "rnn_tanh" else {}
    module = cls(x.shape[-1], hidden, batch_first=True, dtype=torch.float64, **kwargs)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.from_numpy(params[name]))
    tx = torch.tensor(x, requires_grad=True)
    module(tx)[0].backward(torch.from_numpy(d_output))
    assert tx.grad is not None
    return tx.grad.numpy()


def decay_rate(norms: np.ndarray) -> float:
    r"""The per-step factor :math:`r` of :math:`\|\bar x_t\| \approx c\, r^{T-t}`: a
    least-squares line through :math:`\log\|\bar x_t\|` against :math:`T - t`."""
    steps = np.arange(len(norms))[::-1]
    slope = np.polyfit(steps, np.log(norms), 1)[0]
    return float(math.exp(slope))


def gradient_through_time(layer: str, *, engine: Engine, spectral_norm: float | None = None,
                          length: int = 40, hidden: int = 32, batch: int = 8,
                          input_scale: float = 0.1, forget_bias: float = 0.0, seed: int = 0
                          ) -> ThroughTime:
    """Measure :math:`\\|\\bar x_t\\|` for ``rnn`` (tanh, ``spectral_norm`` required) or
    ``lstm``/``gru`` (default init; ``forget_bias`` added to the LSTM's forget-gate
    ``bias_ih_l0`` block) on small random inputs, in float64."""
    rng = np.random.default_rng(seed)
    if layer == "rnn":
        if spectral_norm is None:
            raise ValueError("gradient_through_time: rnn needs a spectral_norm")
        params, mode = rnn_parameters(hidden, spectral_norm, rng), "rnn_tanh"
    elif layer in ("lstm", "gru"):
        params, mode = _default_parameters(layer, hidden, rng), layer
        if layer == "lstm":
            params["bias_ih_l0"][hidden:2 * hidden] += forget_bias
    else:
        raise ValueError(f"gradient_through_time: layer must be rnn, lstm or gru, got {layer!r}")
    x = input_scale * rng.normal(size=(batch, length, hidden))
    upstream = rng.normal(size=(batch, hidden))
    dx = _input_gradients(mode, params, x, upstream, engine)
    norms = np.linalg.norm(dx, axis=-1).mean(axis=0)
    bound = spectral_norm if layer == "rnn" else None
    return ThroughTime(layer, engine, spectral_norm, tuple(float(n) for n in norms),
                       decay_rate(norms), bound)
