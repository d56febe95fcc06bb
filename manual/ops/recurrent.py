r"""Recurrent layers with PyTorch's semantics: ``rnn`` (tanh or relu), ``lstm`` and ``gru``.

One pure pair serves the three modes, as ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (unidirectional,
no dropout, no ``proj_size``):

.. code-block:: text

    recurrent_forward(x, params, h0=None, c0=None, *, mode, num_layers, batch_first)
        -> ((output, h_n, c_n), cache)
    recurrent_backward((d_output, d_h_n, d_c_n), cache) -> (dx, dh0, dc0, dparams)

Shapes as PyTorch: ``x`` is ``(L, N, H_in)``, or ``(N, L, H_in)`` when ``batch_first``;
``output`` has the same layout with ``H`` features; ``h0``, ``c0``, ``h_n``, ``c_n`` are
``(num_layers, N, H)`` whatever ``batch_first`` says. ``c0``/``c_n``/``dc0`` are ``None``
except for the LSTM. ``params`` holds ``weight_ih_l{k}`` ``(G H, H_in or H)``,
``weight_hh_l{k}`` ``(G H, H)`` and, with biases, ``bias_ih_l{k}``, ``bias_hh_l{k}``
``(G H,)``, gates stacked in PyTorch's order (``G`` = 1, 4, 3).

Each layer projects the whole input sequence at once, loops over time steps for the
recurrence, and in backward (backpropagation through time) collects every step's gate
gradient before forming the weight gradients as single products summed over time: a weight
shared by all steps receives the sum of its per-step gradients.

Module-level helpers (:func:`lstm_step_backward`, :func:`gru_new_gate`,
:func:`weight_gradients`, ...) are looked up at call time, so the bug zoo can swap one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple

import numpy as np

from manual.numerics import Array

Mode = Literal["rnn_tanh", "rnn_relu", "lstm", "gru"]
GATES: Mapping[str, int] = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def sigmoid(z: Array) -> Array:
    r""":math:`\sigma(z) = \tfrac12 (1 + \tanh(z/2))`: no overflow, dtype kept."""
    return 0.5 * (1 + np.tanh(0.5 * z))


# ---- one time step, forward ------------------------------------------------------------------

def lstm_gates(pre: Array) -> tuple[Array, Array, Array, Array]:
    r"""Split and activate the LSTM pre-activations in PyTorch's order :math:`i, f, g, o`.

    .. math::
        i = \sigma(\cdot), \quad f = \sigma(\cdot), \quad g = \tanh(\cdot), \quad
        o = \sigma(\cdot)
    """
    i, f, g, o = np.split(pre, 4, axis=-1)
    return sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)


def gru_new_gate(gi_n: Array, gh_n: Array, r: Array, h_prev: Array, w_hn: Array,
                 b_hn: Array | None) -> Array:
    r"""The GRU candidate's pre-activation, with PyTorch's reset gate *after* the product.

    .. math::
        n = \tanh\big(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})\big)

    ``gh_n`` is :math:`W_{hn} h + b_{hn}` already; ``h_prev``, ``w_hn`` and ``b_hn`` are
    there for the variant of Cho et al. (2014), :math:`W_{hn}(r \odot h)`, that PyTorch
    does not use.
    """
    return gi_n + r * gh_n


# ---- one time step, backward -----------------------------------------------------------------

def rnn_step_backward(dh: Array, h: Array, mode: Mode) -> Array:
    r"""Gradient of :math:`h = \phi(a)` w.r.t. :math:`a`: :math:`1 - h^2` for tanh,
    :math:`[h > 0]` for relu (PyTorch's convention at the kink: 0)."""
    if mode == "rnn_tanh":
        return dh * (1 - h * h)
    return dh * (h > 0)


def lstm_step_backward(dh: Array, dc: Array, gates: tuple[Array, Array, Array, Array],
                       c_prev: Array, tanh_c: Array) -> tuple[Array, Array]:
    r"""One LSTM step backward: the pre-activation gradient ``(N, 4H)`` and
    :math:`\partial L/\partial c_{t-1}`.

    .. math::
        c_t = f \odot c_{t-1} + i \odot g, \quad h_t = o \odot \tanh c_t, \quad
        \bar c = \bar c_t + \bar h_t \odot o \odot (1 - \tanh^2 c_t), \quad
        \bar c_{t-1} = \bar c \odot f
    """
    i, f, g, o = gates
    dc_total = dc + dh * o * (1 - tanh_c * tanh_c)
    d_pre = np.concatenate([dc_total * g * i * (1 - i), dc_total * c_prev * f * (1 - f),
                            dc_total * i * (1 - g * g), dh * tanh_c * o * (1 - o)], axis=-1)
    return d_pre, dc_total * f


def gru_step_backward(dh: Array, gates: tuple[Array, Array, Array], h_prev: Array,
                      gh_n: Array) -> tuple[Array, Array, Array]:
    r"""One GRU step backward: gradients of the input and hidden pre-activations
    ``(N, 3H)`` each, and the direct path :math:`z \odot \bar h` to :math:`h_{t-1}`.

    .. math::
        h_t = (1 - z) \odot n + z \odot h_{t-1}, \quad
        \bar a_n = \bar h (1 - z)(1 - n^2), \quad
        \bar r = \bar a_n \odot (W_{hn} h_{t-1} + b_{hn})

    The hidden side's :math:`n` block is :math:`\bar a_n \odot r` (the reset gate scales
    the recurrent product).
    """
    r, z, n = gates
    dn_pre = dh * (1 - z) * (1 - n * n)
    dr_pre = dn_pre * gh_n * r * (1 - r)
    dz_pre = dh * (h_prev - n) * z * (1 - z)
    d_input = np.concatenate([dr_pre, dz_pre, dn_pre], axis=-1)
    d_hidden = np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=-1)
    return d_input, d_hidden, dh * z


def weight_gradients(d_input: Array, d_hidden: Array, x: Array, h_prev: Array
                     ) -> tuple[Array, Array, Array, Array]:
    r"""The shared weights' gradients, summed over every time step and sample.

    .. math::
        \bar W_{ih} = \sum_t \bar a_t^{\top} x_t, \quad
        \bar W_{hh} = \sum_t \bar a_t^{\top} h_{t-1}, \quad
        \bar b = \sum_t \textstyle\sum_n \bar a_{t,n}

    ``d_input``/``d_hidden`` ``(L, N, G H)``, ``x`` ``(L, N, H_in)``, ``h_prev`` ``(L, N, H)``.
    """
    flat_di = d_input.reshape(-1, d_input.shape[-1])
    flat_dh = d_hidden.reshape(-1, d_hidden.shape[-1])
    d_ih = flat_di.T @ x.reshape(-1, x.shape[-1])
    d_hh = flat_dh.T @ h_prev.reshape(-1, h_prev.shape[-1])
    return d_ih, d_hh, flat_di.sum(axis=0), flat_dh.sum(axis=0)


# ---- a whole layer -----------------------------------------------------------------------------

class LayerCache(NamedTuple):
    """What one layer's backward needs, every array time-major ``(L, N, .)``."""

    x: Array
    h_prev: Array
    h: Array
    gates: tuple[Array, ...]
    c_prev: Array | None
    tanh_c: Array | None
    gh_n: Array | None
    weight_ih: Array
    weight_hh: Array


class RecurrentCache(NamedTuple):
    mode: Mode
    layers: tuple[LayerCache, ...]
    batch_first: bool
    has_bias: bool
    has_h0: bool
    has_c0: bool


def _have(value: Array | None, what: str) -> Array:
    """``value``, which the mode in force always provides (an LSTM's cell state, a GRU's
    hidden-side new-gate term); ``None`` there means a cache built for another mode."""
    if value is None:
        raise ValueError(f"recurrent cache: {what} is missing (a cache of another mode?)")
    return value


def _layer_forward(x: Array, h: Array, c: Array | None, mode: Mode, w_ih: Array, w_hh: Array,
                   b_ih: Array | None, b_hh: Array | None) -> LayerCache:
    length, hidden = x.shape[0], w_hh.shape[1]
    projected = x @ w_ih.T
    if b_ih is not None:
        projected = projected + b_ih
    h_prev, hs = np.empty((length, *h.shape), x.dtype), np.empty((length, *h.shape), x.dtype)
    gate_steps: list[tuple[Array, ...]] = []
    c_prev = np.empty_like(h_prev) if mode == "lstm" else None
    tanh_c = np.empty_like(h_prev) if mode == "lstm" else None
    gh_n = np.empty_like(h_prev) if mode == "gru" else None
    for t in range(length):
        h_prev[t] = h
        recurrent = h @ w_hh.T
        if b_hh is not None:
            recurrent = recurrent + b_hh
        if mode == "lstm":
            i, f, g, o = lstm_gates(projected[t] + recurrent)
            _have(c_prev, "c_prev")[t] = c = _have(c, "the cell state")
            c = f * c + i * g
            _have(tanh_c, "tanh_c")[t] = tanh = np.tanh(c)
            h = o * tanh
            gate_steps.append((i, f, g, o))
        elif mode == "gru":
            gh = _have(gh_n, "gh_n")
            gi_r, gi_z, gi_n = np.split(projected[t], 3, axis=-1)
            gh_r, gh_z, gh[t] = np.split(recurrent, 3, axis=-1)
            r, z = sigmoid(gi_r + gh_r), sigmoid(gi_z + gh_z)
            b_hn = None if b_hh is None else b_hh[2 * hidden:]
            n = np.tanh(gru_new_gate(gi_n, gh[t], r, h, w_hh[2 * hidden:], b_hn))
            h = (1 - z) * n + z * h
            gate_steps.append((r, z, n))
        else:
            pre = projected[t] + recurrent
            h = np.tanh(pre) if mode == "rnn_tanh" else np.maximum(pre, 0)
        hs[t] = h
    gates = tuple(np.stack(parts) for parts in zip(*gate_steps, strict=True)) if gate_steps else ()
    return LayerCache(x, h_prev, hs, gates, c_prev, tanh_c, gh_n, w_ih, w_hh)


def recurrent_forward(x: Array, params: Mapping[str, Array], h0: Array | None = None,
                      c0: Array | None = None, *, mode: Mode, num_layers: int = 1,
                      batch_first: bool = False
                      ) -> tuple[tuple[Array, Array, Array | None], RecurrentCache]:
    r"""``nn.RNN``/``nn.LSTM``/``nn.GRU`` forward; zero initial states when not given.

    .. math::
        \text{rnn: } h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}) \\
        \text{lstm: } (i, f, g, o) = \text{act}(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}),
        \; c_t = f c_{t-1} + i g, \; h_t = o \tanh c_t \\
        \text{gru: } r, z = \sigma(\cdot), \; n = \tanh(W_{in} x_t + b_{in} +
        r (W_{hn} h_{t-1} + b_{hn})), \; h_t = (1 - z) n + z h_{t-1}

    Layer :math:`k > 0` reads the hidden states of layer :math:`k - 1`.
    """
    seq = np.swapaxes(x, 0, 1) if batch_first else x
    hidden = params["weight_hh_l0"].shape[1]
    batch = seq.shape[1]
    zeros = np.zeros((num_layers, batch, hidden), x.dtype)
    h_init = zeros if h0 is None else h0
    c_init = (zeros if c0 is None else c0) if mode == "lstm" else None
    has_bias = "bias_ih_l0" in params
    layers, h_n, c_n = [], [], []
    layer_input = seq
    for k in range(num_layers):
        cache = _layer_forward(layer_input, h_init[k], None if c_init is None else c_init[k],
                               mode, params[f"weight_ih_l{k}"], params[f"weight_hh_l{k}"],
                               params.get(f"bias_ih_l{k}"), params.get(f"bias_hh_l{k}"))
        layers.append(cache)
        layer_input = cache.h
        h_n.append(cache.h[-1])
        if mode == "lstm":
            i, f, g, _ = (gate[-1] for gate in cache.gates)
            c_n.append(f * _have(cache.c_prev, "c_prev")[-1] + i * g)
    output = np.swapaxes(layer_input, 0, 1) if batch_first else layer_input
    outputs = (output, np.stack(h_n), np.stack(c_n) if mode == "lstm" else None)
    return outputs, RecurrentCache(mode, tuple(layers), batch_first, has_bias, h0 is not None,
                                   c0 is not None)


def _layer_backward(d_h_seq: Array, dh: Array, dc: Array | None, cache: LayerCache, mode: Mode
                    ) -> tuple[Array, Array, Array | None, tuple[Array, Array, Array, Array]]:
    length = d_h_seq.shape[0]
    d_input = np.empty((*d_h_seq.shape[:2], cache.weight_ih.shape[0]), d_h_seq.dtype)
    d_hidden = d_input if mode != "gru" else np.empty_like(d_input)
    for t in reversed(range(length)):
        dh = dh + d_h_seq[t]
        direct: Array | None = None
        if mode == "lstm":
            gates = tuple(gate[t] for gate in cache.gates)
            d_input[t], dc = lstm_step_backward(dh, _have(dc, "the cell gradient"), gates,
                                                _have(cache.c_prev, "c_prev")[t],
                                                _have(cache.tanh_c, "tanh_c")[t])
        elif mode == "gru":
            gates3 = tuple(gate[t] for gate in cache.gates)
            d_input[t], d_hidden[t], direct = gru_step_backward(
                dh, gates3, cache.h_prev[t], _have(cache.gh_n, "gh_n")[t])
        else:
            d_input[t] = rnn_step_backward(dh, cache.h[t], mode)
        dh = d_hidden[t] @ cache.weight_hh
        if direct is not None:
            dh = dh + direct
    grads = weight_gradients(d_input, d_hidden, cache.x, cache.h_prev)
    return d_input @ cache.weight_ih, dh, dc, grads


def recurrent_backward(dys: tuple[Array, Array, Array | None], cache: RecurrentCache
                       ) -> tuple[Array, Array | None, Array | None, dict[str, Array]]:
    r"""Backpropagation through time: ``(dx, dh0, dc0, dparams)``.

    ``dys`` = (:math:`\bar y` of ``output``, :math:`\bar h_n`, :math:`\bar c_n` or ``None``).
    ``dh0``/``dc0`` are ``None`` when the forward made zero initial states.
    """
    d_output, d_h_n, d_c_n = dys
    d_seq = np.swapaxes(d_output, 0, 1) if cache.batch_first else d_output
    dparams: dict[str, Array] = {}
    dh0, dc0 = [], []
    for k in reversed(range(len(cache.layers))):
        layer = cache.layers[k]
        dc = None
        if cache.mode == "lstm":
            dc = np.zeros_like(d_h_n[k]) if d_c_n is None else d_c_n[k]
        d_seq, dh, dc, (dw_ih, dw_hh, db_ih, db_hh) = _layer_backward(
            d_seq, d_h_n[k], dc, layer, cache.mode)
        dparams[f"weight_ih_l{k}"], dparams[f"weight_hh_l{k}"] = dw_ih, dw_hh
        if cache.has_bias:
            dparams[f"bias_ih_l{k}"], dparams[f"bias_hh_l{k}"] = db_ih, db_hh
        dh0.append(dh)
        dc0.append(dc)
    dx = np.swapaxes(d_seq, 0, 1) if cache.batch_first else d_seq
    d_h0 = np.stack(dh0[::-1]) if cache.has_h0 else None
    d_c0 = np.stack(dc0[::-1]) if cache.has_c0 and cache.mode == "lstm" else None  # type: ignore[arg-type]
    return dx, d_h0, d_c0, dparams
