"""PyTorch twins for the well-known course's recurrent layers, mapped onto ``torch.nn``.

The course writes a recurrent layer with its own weight layout: ``Wx`` of shape (D, H) or
(D, 4H), ``Wh`` (H, H) or (H, 4H), one bias ``b``, rows for the batch (``x @ Wx``), and for
an LSTM the gates stacked in the order input, forget, output, candidate (i, f, o, g).
PyTorch's modules keep ``weight_ih`` (4H, D) with the gates in the order i, f, g, o and two
biases. Each twin here rebuilds the module's parameters from the user's tensors (a
transpose, the gate blocks reordered, a zero second bias) and calls the module through
:func:`torch.func.functional_call`, so that autograd reaches ``Wx``, ``Wh`` and ``b``::

    check_layer(lstm_forward, lstm_backward, torch=course.lstm,
                inputs={"x": (2, 3, 4), "h0": (2, 5), "Wx": (4, 20), "Wh": (5, 20), "b": (20,)})

- :func:`rnn_step`: ``next_h = tanh(x Wx + prev_h Wh + b)``;
- :func:`rnn`: the same over a sequence ``x`` (N, T, D) from ``h0``, every hidden state;
- :func:`lstm_step`: ``(next_h, next_c)`` from ``(x, prev_h, prev_c)``;
- :func:`lstm`: every hidden state of a sequence from ``h0`` (the cell starts at zero).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call


def _gates(w: torch.Tensor) -> torch.Tensor:
    """The course's (i, f, o, g) blocks along the last axis as PyTorch's (i, f, g, o)."""
    i, f, o, g = torch.chunk(w, 4, dim=-1)
    return torch.cat([i, f, g, o], dim=-1)


def _lstm_weights(Wx: torch.Tensor, Wh: torch.Tensor, b: torch.Tensor, suffix: str
                  ) -> dict[str, torch.Tensor]:
    return {f"weight_ih{suffix}": _gates(Wx).T, f"weight_hh{suffix}": _gates(Wh).T,
            f"bias_ih{suffix}": _gates(b), f"bias_hh{suffix}": torch.zeros_like(b)}


def rnn_step(x: torch.Tensor, prev_h: torch.Tensor, Wx: torch.Tensor, Wh: torch.Tensor,
             b: torch.Tensor) -> torch.Tensor:
    """:math:`h' = \\tanh(x W_x + h W_h + b)` through ``nn.RNNCell``."""
    cell = nn.RNNCell(Wx.shape[0], Wx.shape[1], dtype=x.dtype)
    weights = {"weight_ih": Wx.T, "weight_hh": Wh.T, "bias_ih": b,
               "bias_hh": torch.zeros_like(b)}
    return functional_call(cell, weights, (x, prev_h))


def rnn(x: torch.Tensor, h0: torch.Tensor, Wx: torch.Tensor, Wh: torch.Tensor,
        b: torch.Tensor) -> torch.Tensor:
    """Every hidden state (N, T, H) of ``nn.RNN`` (tanh, batch first) from ``h0``."""
    module = nn.RNN(Wx.shape[0], Wx.shape[1], batch_first=True, dtype=x.dtype)
    weights = {"weight_ih_l0": Wx.T, "weight_hh_l0": Wh.T, "bias_ih_l0": b,
               "bias_hh_l0": torch.zeros_like(b)}
    out, _ = functional_call(module, weights, (x, h0[None]))
    return out


def lstm_step(x: torch.Tensor, prev_h: torch.Tensor, prev_c: torch.Tensor, Wx: torch.Tensor,
              Wh: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(next_h, next_c)`` of ``nn.LSTMCell`` with the course's gate order."""
    cell = nn.LSTMCell(Wx.shape[0], Wh.shape[0], dtype=x.dtype)
    next_h, next_c = functional_call(cell, _lstm_weights(Wx, Wh, b, ""), (x, (prev_h, prev_c)))
    return next_h, next_c


def lstm(x: torch.Tensor, h0: torch.Tensor, Wx: torch.Tensor, Wh: torch.Tensor,
         b: torch.Tensor) -> torch.Tensor:
    """Every hidden state (N, T, H) of ``nn.LSTM`` (batch first) from ``h0``, cell at zero."""
    module = nn.LSTM(Wx.shape[0], Wh.shape[0], batch_first=True, dtype=x.dtype)
    state = (h0[None], torch.zeros_like(h0)[None])
    out, _ = functional_call(module, _lstm_weights(Wx, Wh, b, "_l0"), (x, state))
    return out
