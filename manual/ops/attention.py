r"""Attention with PyTorch's semantics: ``scaled_dot_product_attention`` and
``multi_head_attention`` (``nn.MultiheadAttention`` with ``need_weights=True``,
``average_attn_weights=True``, no dropout, ``kdim = vdim = embed_dim``).

Both share one core: scores, an additive mask, a softmax over the *key* axis (the last),
and a weighted sum of values.

.. math::
    A = \operatorname{softmax}_{s}\!\big(s\, Q K^\top + B\big), \qquad O = A V

with :math:`s = 1/\sqrt{d}` unless a ``scale`` is given and :math:`B` the additive mask
(:math:`-\infty` where a key is blanked). Backward:

.. math::
    \bar V = A^\top \bar O, \quad \bar A = \bar O V^\top (+ \text{the weights' upstream}),
    \quad \bar S = A \odot (\bar A - \textstyle\sum_s \bar A \odot A), \quad
    \bar Q = s\, \bar S K, \quad \bar K = s\, \bar S^\top Q

**A row whose keys are all blanked** differs between PyTorch's two entry points, and each is
matched: ``F.scaled_dot_product_attention`` uses a "safe" softmax that gives that row zero
weights (so a zero output and zero gradients); ``nn.MultiheadAttention`` uses a plain softmax,
so the row is NaN, and the NaN reaches every gradient that row touches.

Mask conventions (opposite, as PyTorch's): for ``scaled_dot_product_attention`` a boolean
``attn_mask`` is True where a query *may* attend; for ``multi_head_attention`` a boolean
``attn_mask`` or ``key_padding_mask`` is True where a key is *ignored*. A float mask is added.

Module-level helpers (:func:`default_scale`, :func:`masked_softmax`, :func:`scores_backward`)
are looked up at call time, so the bug zoo can swap one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from manual.numerics import Array


def default_scale(head_dim: int) -> float:
    r""":math:`1/\sqrt{d}` for queries of ``head_dim`` features."""
    return 1 / math.sqrt(head_dim)


def masked_softmax(scores: Array, bias: Array | None, *, safe: bool) -> Array:
    r"""Softmax over the last (key) axis of :math:`S + B`.

    ``safe``: rows whose entries are all :math:`-\infty` get zero weights (PyTorch's
    ``_safe_softmax`` in ``scaled_dot_product_attention``); otherwise they are NaN.
    """
    z = scores if bias is None else scores + bias
    peak = np.max(z, axis=-1, keepdims=True)
    blank = np.isneginf(peak)
    with np.errstate(invalid="ignore"):
        e = np.exp(z - (np.where(blank, 0, peak) if safe else peak))
        weights = e / np.sum(e, axis=-1, keepdims=True)
    return np.where(blank, 0, weights).astype(scores.dtype) if safe else weights


def scores_backward(d_scores: Array, q: Array, k: Array, scale: float) -> tuple[Array, Array]:
    r""":math:`\bar Q = s \bar S K`, :math:`\bar K = s \bar S^\top Q`."""
    s = np.asarray(scale, q.dtype)  # a Python float would be fine too (NEP 50); explicit
    return (d_scores @ k) * s, (np.swapaxes(d_scores, -1, -2) @ q) * s


class CoreCache(NamedTuple):
    q: Array
    k: Array
    v: Array
    weights: Array
    scale: float


def attention_core_forward(q: Array, k: Array, v: Array, bias: Array | None, scale: float,
                           *, safe: bool) -> tuple[Array, Array, CoreCache]:
    """``(..., L, E)``, ``(..., S, E)``, ``(..., S, Ev)`` -> output ``(..., L, Ev)``, weights
    ``(..., L, S)``."""
    scores = (q @ np.swapaxes(k, -1, -2)) * np.asarray(scale, q.dtype)
    weights = masked_softmax(scores, bias, safe=safe)
    return weights @ v, weights, CoreCache(q, k, v, weights, scale)


def attention_core_backward(d_out: Array, d_weights: Array | None, cache: CoreCache
                            ) -> tuple[Array, Array, Array]:
    weights = cache.weights
    dv = np.swapaxes(weights, -1, -2) @ d_out
    dw = d_out @ np.swapaxes(cache.v, -1, -2)
    if d_weights is not None:
        dw = dw + d_weights
    d_scores = weights * (dw - np.sum(dw * weights, axis=-1, keepdims=True))
    dq, dk = scores_backward(d_scores, cache.q, cache.k, cache.scale)
    return dq, dk, dv


# ---- scaled_dot_product_attention ------------------------------------------------------------

def sdpa_bias(length: int, source: int, dtype: np.dtype, attn_mask: Array | None,
              is_causal: bool) -> Array | None:
    r"""The additive mask of ``F.scaled_dot_product_attention``: 0 or :math:`-\infty`
    (boolean ``attn_mask``: True = may attend; causal: key :math:`s \le` query :math:`l`,
    aligned at the top left as PyTorch's ``tril``), or a float mask as given."""
    if is_causal:
        allowed = np.tril(np.ones((length, source), dtype=bool))
        return np.where(allowed, 0, -np.inf).astype(dtype)
    if attn_mask is None:
        return None
    if attn_mask.dtype == np.bool_:
        return np.where(attn_mask, 0, -np.inf).astype(dtype)
    return attn_mask.astype(dtype, copy=False)


def sdpa_forward(query: Array, key: Array, value: Array, attn_mask: Array | None = None, *,
                 is_causal: bool = False, scale: float | None = None
                 ) -> tuple[Array, CoreCache]:
    r"""``F.scaled_dot_product_attention(query, key, value, attn_mask, is_causal=..., scale=...)``.

    ``query`` ``(..., L, E)``, ``key`` ``(..., S, E)``, ``value`` ``(..., S, Ev)``,
    ``attn_mask`` broadcastable to ``(..., L, S)``; output ``(..., L, Ev)``. A fully blanked
    row gives zeros (the safe softmax).
    """
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: attn_mask and is_causal cannot both be "
                         "set")
    s = default_scale(query.shape[-1]) if scale is None else scale
    bias = sdpa_bias(query.shape[-2], key.shape[-2], query.dtype, attn_mask, is_causal)
    out, _, cache = attention_core_forward(query, key, value, bias, s, safe=True)
    return out, cache


def sdpa_backward(d_out: Array, cache: CoreCache) -> tuple[Array, Array, Array]:
    return attention_core_backward(d_out, None, cache)


# ---- multi_head_attention ----------------------------------------------------------------------

class MultiHeadCache(NamedTuple):
    inputs: tuple[Array, Array, Array]
    core: CoreCache
    merged: Array
    weight_in: Array
    weight_out: Array
    num_heads: int
    batch_first: bool
    has_bias: bool


def mha_bias(batch: int, num_heads: int, length: int, source: int, dtype: np.dtype,
             key_padding_mask: Array | None, attn_mask: Array | None) -> Array | None:
    r"""The additive mask of ``nn.MultiheadAttention``, broadcastable to ``(N, h, L, S)``:
    boolean True = ignored (:math:`-\infty`), float added; ``attn_mask`` ``(L, S)`` or
    ``(N h, L, S)``, ``key_padding_mask`` ``(N, S)``."""
    total: Array | None = None
    for mask, shape in ((attn_mask, None), (key_padding_mask, (batch, 1, 1, source))):
        if mask is None:
            continue
        add = (np.where(mask, -np.inf, 0) if mask.dtype == np.bool_ else mask).astype(dtype)
        if shape is None:
            add = add if add.ndim == 2 else add.reshape(batch, num_heads, length, source)
        else:
            add = add.reshape(shape)
        total = add if total is None else total + add
    return total


def _heads(x: Array, num_heads: int) -> Array:
    n, length, e = x.shape
    return x.reshape(n, length, num_heads, e // num_heads).transpose(0, 2, 1, 3)


def _merge(x: Array) -> Array:
    n, h, length, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(n, length, h * d)


def mha_forward(query: Array, key: Array, value: Array, params: Mapping[str, Array], *,
                num_heads: int, batch_first: bool = False, key_padding_mask: Array | None = None,
                attn_mask: Array | None = None) -> tuple[tuple[Array, Array], MultiHeadCache]:
    r"""``nn.MultiheadAttention(E, h)(query, key, value, key_padding_mask, attn_mask=...)``.

    .. math::
        [Q; K; V] = [x_q; x_k; x_v] W_{in,\{q,k,v\}}^\top + b_{in}, \quad
        O_j = \operatorname{softmax}\big(Q_j K_j^\top / \sqrt{d} + B\big) V_j, \quad
        y = [O_1 \dots O_h] W_{out}^\top + b_{out}

    with :math:`d = E / h`; ``params``: ``in_proj_weight`` ``(3E, E)``, ``out_proj.weight``
    ``(E, E)`` and, with biases, ``in_proj_bias`` ``(3E,)``, ``out_proj.bias`` ``(E,)``.
    Inputs ``(L, N, E)`` (``(N, L, E)`` when ``batch_first``); returns the output in that
    layout and the weights averaged over heads, ``(N, L, S)``.
    """
    xs = tuple(np.swapaxes(a, 0, 1) if not batch_first else a for a in (query, key, value))
    w_in, b_in = params["in_proj_weight"], params.get("in_proj_bias")
    w_out, b_out = params["out_proj.weight"], params.get("out_proj.bias")
    projected = []
    for j, x in enumerate(xs):
        e = w_in.shape[1]
        p = x @ w_in[j * e:(j + 1) * e].T
        projected.append(p if b_in is None else p + b_in[j * e:(j + 1) * e])
    q, k, v = (_heads(p, num_heads) for p in projected)
    batch, _, length, head_dim = q.shape
    bias = mha_bias(batch, num_heads, length, k.shape[2], q.dtype, key_padding_mask, attn_mask)
    out, weights, core = attention_core_forward(q, k, v, bias, default_scale(head_dim),
                                                safe=False)
    merged = _merge(out)
    y = merged @ w_out.T
    if b_out is not None:
        y = y + b_out
    cache = MultiHeadCache(xs, core, merged, w_in, w_out, num_heads, batch_first,  # type: ignore[arg-type]
                           b_in is not None)
    return (y if batch_first else np.swapaxes(y, 0, 1), weights.mean(axis=1)), cache


def mha_backward(dys: tuple[Array, Array | None], cache: MultiHeadCache
                 ) -> tuple[tuple[Array, ...], dict[str, Array]]:
    """``((d_query, d_key, d_value), dparams)`` from the output's and the weights' upstream."""
    d_y, d_avg = dys
    d_y = d_y if cache.batch_first else np.swapaxes(d_y, 0, 1)
    h = cache.num_heads
    flat = d_y.reshape(-1, d_y.shape[-1])
    merged = cache.merged.reshape(-1, cache.merged.shape[-1])
    dparams: dict[str, Array] = {"out_proj.weight": flat.T @ merged}
    d_heads = _heads(d_y @ cache.weight_out, h)
    d_weights = None if d_avg is None else np.broadcast_to(
        (d_avg / np.asarray(h, d_avg.dtype))[:, None], cache.core.weights.shape)
    d_projected = [_merge(d) for d in attention_core_backward(d_heads, d_weights, cache.core)]
    e = cache.weight_in.shape[1]
    d_inputs, d_w_in = [], []
    for j, (d_p, x) in enumerate(zip(d_projected, cache.inputs, strict=True)):
        d_inputs.append(d_p @ cache.weight_in[j * e:(j + 1) * e])
        d_w_in.append(d_p.reshape(-1, e).T @ x.reshape(-1, e))
    dparams["in_proj_weight"] = np.concatenate(d_w_in)
    if cache.has_bias:
        dparams["in_proj_bias"] = np.concatenate([d.sum(axis=(0, 1)) for d in d_projected])
        dparams["out_proj.bias"] = flat.sum(axis=0)
    return tuple(d if cache.batch_first else np.swapaxes(d, 0, 1) for d in d_inputs), dparams
