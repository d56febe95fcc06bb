"""Torch builders for ``rnn``, ``lstm``, ``gru``, ``scaled_dot_product_attention`` and
``multi_head_attention``: PyTorch's own modules and kernels, adapted to the batch-first graph.

``builder(info, options, signature, input_shapes, dtype) -> nn.Module``; every parameter
slot is the same attribute path on the module (``weight_ih_l0``, ``out_proj.weight``), so
subclasses keep PyTorch's names instead of wrapping. States are ``(N, num_layers, H)`` in
the graph and ``(num_layers, N, H)`` for PyTorch; masks arrive as graph inputs (a boolean
kind as 0/1 or bool, converted with ``!= 0``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from manual.layers.attention import mha_layout


def _mask(mask: torch.Tensor, kind: str, dtype: torch.dtype) -> torch.Tensor:
    return mask != 0 if kind == "boolean" else mask.to(dtype)


def _recurrent_kwargs(options: Mapping[str, Any], input_shapes: tuple[tuple[int, ...], ...],
                      dtype: torch.dtype) -> dict[str, Any]:
    return {"input_size": input_shapes[0][-1], "hidden_size": options["hidden_size"],
            "num_layers": options.get("num_layers", 1), "bias": options.get("bias", True),
            "batch_first": True, "dtype": dtype}


def _states(*states: torch.Tensor) -> list[torch.Tensor]:
    return [s.transpose(0, 1).contiguous() for s in states]


class BatchFirstRNN(nn.RNN):
    """``nn.RNN`` taking and giving its state batch first, ``(N, num_layers, H)``."""

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None  # type: ignore[override]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        y, h_n = super().forward(x, None if h0 is None else _states(h0)[0])
        return y, h_n.transpose(0, 1)


class BatchFirstGRU(nn.GRU):
    """``nn.GRU`` taking and giving its state batch first, ``(N, num_layers, H)``."""

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None  # type: ignore[override]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        y, h_n = super().forward(x, None if h0 is None else _states(h0)[0])
        return y, h_n.transpose(0, 1)


class BatchFirstLSTM(nn.LSTM):
    """``nn.LSTM`` taking and giving ``h`` and ``c`` batch first, ``(N, num_layers, H)``."""

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None,  # type: ignore[override]
                c0: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        state = None if h0 is None or c0 is None else (_states(h0)[0], _states(c0)[0])
        y, (h_n, c_n) = super().forward(x, state)
        return y, h_n.transpose(0, 1), c_n.transpose(0, 1)


def rnn(info: Any, options: Mapping[str, Any], signature: Any,
        input_shapes: tuple[tuple[int, ...], ...], dtype: torch.dtype) -> nn.Module:
    return BatchFirstRNN(nonlinearity=options.get("nonlinearity", "tanh"),
                         **_recurrent_kwargs(options, input_shapes, dtype))


def lstm(info: Any, options: Mapping[str, Any], signature: Any,
         input_shapes: tuple[tuple[int, ...], ...], dtype: torch.dtype) -> nn.Module:
    return BatchFirstLSTM(**_recurrent_kwargs(options, input_shapes, dtype))


def gru(info: Any, options: Mapping[str, Any], signature: Any,
        input_shapes: tuple[tuple[int, ...], ...], dtype: torch.dtype) -> nn.Module:
    return BatchFirstGRU(**_recurrent_kwargs(options, input_shapes, dtype))


class ScaledDotProductAttention(nn.Module):
    """``F.scaled_dot_product_attention`` on ``(query, key, value[, attn_mask])``."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__()
        self.mask_kind = options.get("attn_mask", "none")
        self.is_causal = bool(options.get("is_causal", False))
        self.scale = options.get("scale")

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        query, key, value = inputs[:3]
        mask = _mask(inputs[3], self.mask_kind, query.dtype) if len(inputs) > 3 else None
        return F.scaled_dot_product_attention(query, key, value, attn_mask=mask,
                                              is_causal=self.is_causal, scale=self.scale)


def scaled_dot_product_attention(info: Any, options: Mapping[str, Any], signature: Any,
                                 input_shapes: tuple[tuple[int, ...], ...],
                                 dtype: torch.dtype) -> nn.Module:
    return ScaledDotProductAttention(options)


class GraphMultiheadAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` on the graph's inputs: ``x`` or ``query, key, value``, then
    the masks its options declare; returns ``(output, weights averaged over heads)``."""

    def __init__(self, options: Mapping[str, Any], dtype: torch.dtype) -> None:
        super().__init__(options["embed_dim"], options["num_heads"],
                         bias=options.get("bias", True), batch_first=True, dtype=dtype)
        self.graph_options = dict(options)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        tensors, kpm, am = mha_layout(self.graph_options, len(inputs))
        query, key, value = inputs[:3] if tensors == 3 else inputs[:1] * 3
        kinds = self.graph_options
        padding = _mask(inputs[tensors], kinds["key_padding_mask"], query.dtype) if kpm else None
        attn = None
        if am:
            attn = _mask(inputs[-1], kinds["attn_mask"], query.dtype)
            attn = attn.repeat_interleave(self.num_heads, dim=0)
        output, weights = super().forward(query, key, value, key_padding_mask=padding,
                                          need_weights=True, attn_mask=attn,
                                          average_attn_weights=True)
        if weights is None:  # need_weights=True always returns them
            raise RuntimeError("nn.MultiheadAttention returned no attention weights")
        return output, weights


def multi_head_attention(info: Any, options: Mapping[str, Any], signature: Any,
                         input_shapes: tuple[tuple[int, ...], ...],
                         dtype: torch.dtype) -> nn.Module:
    return GraphMultiheadAttention(options, dtype)
