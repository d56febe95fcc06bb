"""The bug zoo for recurrent and attention layers: mistakes of hand-written BPTT and attention.

Each :class:`reference.zoo.core.Mutant` swaps one module-level helper of
:mod:`manual.ops.recurrent` or :mod:`manual.ops.attention` (the pairs look them up at call
time), so every registry entry that uses the helper carries the mistake; ``ops`` names the
layer entries to check it on. :func:`layer_kill` says which samples of those layers the
layer comparison catches it on; a mutant that no sample catches has survived.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from manual.layers import LAYERS
from manual.ops import attention as att
from manual.ops import recurrent as rec
from manual.random import stream
from reference.core.driver import LayerSample, compare_layer
from reference.zoo.core import Mutant

Array = Any


def _last_step_only(d_input: Array, d_hidden: Array, x: Array, h_prev: Array) -> Any:
    # ``dW = dg_t.T @ x_t`` with ``=`` instead of ``+=`` in the reverse loop: only t = 0 stays.
    return (d_input[0].T @ x[0], d_hidden[0].T @ h_prev[0], d_input[0].sum(axis=0),
            d_hidden[0].sum(axis=0))


def _forget_input_swapped(pre: Array) -> Any:
    # Gate blocks (and so their biases) read as f, i, g, o instead of PyTorch's i, f, g, o.
    f, i, g, o = np.split(pre, 4, axis=-1)
    return rec.sigmoid(i), rec.sigmoid(f), np.tanh(g), rec.sigmoid(o)


def _no_forget_in_cell_gradient(dh: Array, dc: Array, gates: Any, c_prev: Array,
                                tanh_c: Array) -> Any:
    d_pre, _ = _LSTM_STEP_BACKWARD(dh, dc, gates, c_prev, tanh_c)
    o = gates[3]
    return d_pre, dc + dh * o * (1 - tanh_c * tanh_c)  # dc_{t-1} = dc_t, the f factor lost


def _reset_before_product(gi_n: Array, gh_n: Array, r: Array, h_prev: Array, w_hn: Array,
                          b_hn: Array | None) -> Array:
    # Cho et al.'s W_hn (r * h) + b_hn, where PyTorch has r * (W_hn h + b_hn).
    product = (r * h_prev) @ w_hn.T
    return gi_n + (product if b_hn is None else product + b_hn)


def _scale_by_d(head_dim: int) -> float:
    return 1 / head_dim


def _mask_after_softmax(scores: Array, bias: Array | None, *, safe: bool) -> Array:
    weights = _MASKED_SOFTMAX(scores, None, safe=safe)
    return weights if bias is None else np.where(np.isneginf(bias), 0, weights)


def _softmax_over_queries(scores: Array, bias: Array | None, *, safe: bool) -> Array:
    z = scores if bias is None else scores + bias
    return np.swapaxes(_MASKED_SOFTMAX(np.swapaxes(z, -1, -2), None, safe=safe), -1, -2)


def _scale_missing_in_backward(d_scores: Array, q: Array, k: Array, scale: float) -> Any:
    return d_scores @ k, np.swapaxes(d_scores, -1, -2) @ q


_LSTM_STEP_BACKWARD = rec.lstm_step_backward
_MASKED_SOFTMAX = att.masked_softmax
RNNS = ("rnn", "lstm", "gru")
ATTENTION = ("scaled_dot_product_attention", "multi_head_attention")

RECURRENT_MUTANTS: tuple[Mutant, ...] = (
    Mutant("bptt_not_accumulated", "recurrent weight gradients kept from one time step "
           "(= instead of += over time)", lambda: [(rec, "weight_gradients", _last_step_only)],
           RNNS),
    Mutant("lstm_forget_input_swapped", "LSTM gate blocks read as f, i, g, o (the forget "
           "gate's weights and bias in the input gate's place)",
           lambda: [(rec, "lstm_gates", _forget_input_swapped)], ("lstm",)),
    Mutant("lstm_cell_gradient_without_forget", "the forget gate missing from the cell-state "
           "gradient (dc_{t-1} = dc_t)",
           lambda: [(rec, "lstm_step_backward", _no_forget_in_cell_gradient)], ("lstm",)),
    Mutant("gru_reset_before_product", "GRU reset gate applied to h before W_hn instead of to "
           "W_hn h + b_hn", lambda: [(rec, "gru_new_gate", _reset_before_product)], ("gru",)),
    Mutant("attention_scale_by_d", "scores scaled by 1/d instead of 1/sqrt(d)",
           lambda: [(att, "default_scale", _scale_by_d)], ATTENTION),
    Mutant("attention_mask_after_softmax", "blanked keys zeroed after the softmax (weights "
           "no longer sum to 1; additive masks ignored)",
           lambda: [(att, "masked_softmax", _mask_after_softmax)], ATTENTION),
    Mutant("attention_softmax_wrong_axis", "softmax over the query axis instead of the keys",
           lambda: [(att, "masked_softmax", _softmax_over_queries)], ATTENTION),
    Mutant("attention_scale_missing_in_backward", "the 1/sqrt(d) factor left out of dQ and dK",
           lambda: [(att, "scores_backward", _scale_missing_in_backward)], ATTENTION),
)


def layer_kill(mutant: Mutant, dtype: str = "float64", seed: int = 0) -> list[str]:
    """``"<layer>/<sample>: <first disagreement>"`` for every sample that catches ``mutant``
    (the layer driver, :func:`reference.core.driver.compare_layer`, with a random upstream at
    every output)."""
    caught = []
    with mutant.inject():
        for name in mutant.ops:
            info = LAYERS[name]
            if info.samples is None:
                raise ValueError(f"mutant {mutant.name}: layer {name} has no samples to run on")
            for sample in info.samples(stream(seed, "zoo", name), dtype):
                record = compare_layer(info, LayerSample(sample.inputs, sample.options), dtype,
                                       seed=seed, equal_nan=sample.name.endswith("_nan"))
                if not record.passed:
                    first = record.failures[0]
                    caught.append(f"{name}/{sample.name}: {first.name}: "
                                  f"{first.problem or f'err/tol {first.tolerance_ratio:.3g}'}")
    return caught
