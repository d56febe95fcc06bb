"""Recurrent layers as a course solution writes them: a vanilla RNN and an LSTM, one step and a
whole sequence (written for this project's corpus).

Shapes: x (N, D) for a step, (N, T, D) for a sequence; hidden states (N, H); Wx (D, H) and
Wh (H, H) for the RNN, (D, 4H) and (H, 4H) for the LSTM, whose gates are stacked in the
order input, forget, output, candidate (i, f, o, g). Planted bugs: ``rnn_step_backward_bug``
forgets tanh' on the hidden path; ``lstm_step_backward_bug`` drops the cell path through the
next hidden state (``dnext_c`` alone reaches the cell).
"""

from __future__ import annotations

import numpy as np


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow at large |z|


# --- vanilla RNN --------------------------------------------------------------------------


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h ** 2)
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_step_backward_bug(dnext_h, cache):
    x, prev_h, Wx, Wh, _ = cache
    da = dnext_h  # BUG: tanh' is missing
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    n, steps, _ = x.shape
    h = np.zeros((n, steps, h0.shape[1]), dtype=x.dtype)
    caches, prev = [], h0
    for t in range(steps):
        prev, cache = rnn_step_forward(x[:, t], prev, Wx, Wh, b)
        h[:, t] = prev
        caches.append(cache)
    return h, caches


def rnn_backward(dh, caches):
    n, steps, _ = dh.shape
    x0, _, Wx, Wh, _ = caches[0]
    dx = np.zeros((n, steps, x0.shape[1]), dtype=dh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wh.shape[0], dtype=dh.dtype)
    dprev = np.zeros_like(dh[:, 0])
    for t in reversed(range(steps)):
        dx[:, t], dprev, dwx, dwh, dbt = rnn_step_backward(dh[:, t] + dprev, caches[t])
        dWx, dWh, db = dWx + dwx, dWh + dwh, db + dbt
    return dx, dprev, dWx, dWh, db


# --- LSTM ---------------------------------------------------------------------------------


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    a = x @ Wx + prev_h @ Wh + b
    size = prev_h.shape[1]
    i, f, o = (sigmoid(a[:, k * size:(k + 1) * size]) for k in range(3))
    g = np.tanh(a[:, 3 * size:])
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tc = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tc ** 2)
    da = np.concatenate([dc * g * i * (1 - i), dc * prev_c * f * (1 - f),
                         dnext_h * tc * o * (1 - o), dc * i * (1 - g ** 2)], axis=1)
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_step_backward_bug(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tc = np.tanh(next_c)
    dc = dnext_c  # BUG: the path through next_h = o * tanh(next_c) is dropped
    da = np.concatenate([dc * g * i * (1 - i), dc * prev_c * f * (1 - f),
                         dnext_h * tc * o * (1 - o), dc * i * (1 - g ** 2)], axis=1)
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b):
    n, steps, _ = x.shape
    h = np.zeros((n, steps, h0.shape[1]), dtype=x.dtype)
    prev_h, prev_c, caches = h0, np.zeros_like(h0), []
    for t in range(steps):
        prev_h, prev_c, cache = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        h[:, t] = prev_h
        caches.append(cache)
    return h, caches


def lstm_backward(dh, caches):
    n, steps, _ = dh.shape
    x0, _, _, Wx, Wh, *_ = caches[0]
    dx = np.zeros((n, steps, x0.shape[1]), dtype=dh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wh.shape[1], dtype=dh.dtype)
    dprev_h, dprev_c = np.zeros_like(dh[:, 0]), np.zeros_like(dh[:, 0])
    for t in reversed(range(steps)):
        dx[:, t], dprev_h, dprev_c, dwx, dwh, dbt = lstm_step_backward(
            dh[:, t] + dprev_h, dprev_c, caches[t])
        dWx, dWh, db = dWx + dwx, dWh + dwh, db + dbt
    return dx, dprev_h, dWx, dWh, db
