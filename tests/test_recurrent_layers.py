"""rnn, lstm, gru, attention and the tensor helpers against PyTorch, layer by layer.

Every sample of every entry in both dtypes: every output, every input gradient (h0/c0
included), every parameter gradient, with a random upstream for every output (the layer
driver, ``reference.core.driver.compare_layer``). Then the time-major layouts of
the pure pairs,
PyTorch's fully-masked-row conventions, the default initialisations, and the signatures'
shapes and refusals.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from manual.layers import LAYERS
from manual.layers.recurrent import RECURRENT_LAYERS
from manual.ops import attention, recurrent
from manual.spec import DTYPES
from reference.core.driver import LayerSample, compare_layer
from reference.core.engine import resolve


def build_torch(info, options, signature, shapes, dtype):
    """The entry's torch builder, resolved from its dotted name."""
    return resolve(info.torch)(info, options, signature, shapes, getattr(torch, dtype))


CASES = [(info, sample, dtype)
         for info in RECURRENT_LAYERS for dtype in DTYPES
         for sample in info.samples(np.random.default_rng(12), dtype)]  # type: ignore[misc]


@pytest.mark.parametrize(("info", "sample", "dtype"), CASES,
                         ids=[f"{i.name}-{s.name}-{d}" for i, s, d in CASES])
def test_layer_matches_torch(info, sample, dtype):
    nan_expected = sample.name.endswith("_nan")
    record = compare_layer(info, LayerSample(sample.inputs, sample.options), dtype, seed=3,
                           equal_nan=nan_expected)
    assert record.passed, record.describe()
    outputs = list(info.signature(sample.options, tuple(x.shape[1:] for x in sample.inputs))
                   .outputs)[1:]
    assert {f"forward: {info.name}.{o}" for o in outputs} <= {t.name for t in record.tensors}


def test_every_entry_is_registered_and_sampled():
    names = {"rnn", "lstm", "gru", "scaled_dot_product_attention", "multi_head_attention",
             "select", "transpose", "permute", "reshape", "matmul"}
    assert names <= set(LAYERS)
    assert {info.name for info, _, _ in CASES} == names


def test_the_comparison_catches_a_wrong_gradient():
    info = LAYERS["lstm"]
    assert info.samples is not None
    sample = next(info.samples(np.random.default_rng(0), "float64"))

    def backward(dys, cache):
        dinputs, dparams = info.backward(dys, cache)
        return dinputs, {**dparams, "weight_hh_l0": dparams["weight_hh_l0"] * 1.001}
    broken = dataclasses.replace(info, backward=backward)
    record = compare_layer(broken, LayerSample(sample.inputs, sample.options), "float64")
    assert [t.name for t in record.failures] == ["backward: lstm.weight_hh_l0"]
    assert record.first_divergence == "backward: lstm (lstm)"


def test_blank_rows_nan_sample_is_nan_in_torch():
    # The MHA sample named *_nan is compared with equal_nan; make sure it really is NaN
    # (PyTorch's plain softmax) and that only the blanked sample's output is.
    info = LAYERS["multi_head_attention"]
    assert info.samples is not None
    sample = next(s for s in info.samples(np.random.default_rng(0), "float64")
                  if s.name == "blank_rows_nan")
    shapes = tuple(x.shape[1:] for x in sample.inputs)
    module = build_torch(info, sample.options, info.signature(sample.options, shapes), shapes,
                         "float64")
    output, weights = module(*(torch.from_numpy(x) for x in sample.inputs))
    assert torch.isnan(output[1]).all() and not torch.isnan(output[0]).any()
    assert torch.isnan(weights[1]).all()


def test_sdpa_fully_masked_row_is_zero_in_both_engines():
    rng = np.random.default_rng(5)
    q, k, v = (rng.normal(size=(2, 3, 4)) for _ in range(3))
    mask = np.ones((3, 3), bool)
    mask[1] = False
    y, cache = attention.sdpa_forward(q, k, v, mask)
    tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
    want = F.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch.from_numpy(mask))
    assert not want[:, 1].any() and not y[:, 1].any()
    dq, _, _ = attention.sdpa_backward(rng.normal(size=y.shape), cache)
    assert not dq[:, 1].any()


@pytest.mark.parametrize("mode", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_time_major_pair_matches_torch(mode):
    # The graph always calls the pair batch first; PyTorch's default layout is (L, N, H).
    rng = np.random.default_rng(7)
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(mode, torch.nn.RNN)
    kwargs = {"nonlinearity": mode[4:]} if mode.startswith("rnn") else {}
    module = cls(3, 4, num_layers=2, dtype=torch.float64, **kwargs)
    params = {n: p.detach().numpy().copy() for n, p in module.named_parameters()}
    x, h0 = rng.normal(size=(5, 2, 3)), rng.normal(size=(2, 2, 4))
    c0 = rng.normal(size=(2, 2, 4)) if mode == "lstm" else None
    (y, h_n, c_n), cache = recurrent.recurrent_forward(x, params, h0, c0, mode=mode,
                                                       num_layers=2)
    tx, th0 = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    if mode == "lstm":
        tc0 = torch.tensor(c0, requires_grad=True)
        ty, (th_n, tc_n) = module(tx, (th0, tc0))
        outs = [ty, th_n, tc_n]
    else:
        ty, th_n = module(tx, th0)
        outs = [ty, th_n]
    upstream = [rng.normal(size=o.shape) for o in outs]
    torch.autograd.backward(outs, [torch.from_numpy(u) for u in upstream])
    dx, dh0, dc0, dparams = recurrent.recurrent_backward(
        (upstream[0], upstream[1], upstream[2] if mode == "lstm" else None), cache)
    for got, want in [(y, ty), (h_n, th_n), (dx, tx.grad), (dh0, th0.grad)] + (
            [(c_n, tc_n), (dc0, tc0.grad)] if mode == "lstm" else []):
        torch.testing.assert_close(torch.from_numpy(got), want.detach())
    for name, p in module.named_parameters():
        torch.testing.assert_close(torch.from_numpy(dparams[name]), p.grad)


def test_time_major_multi_head_attention_matches_torch():
    rng = np.random.default_rng(8)
    module = torch.nn.MultiheadAttention(6, 3, dtype=torch.float64)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(generator=torch.Generator().manual_seed(0))
    params = {n: p.detach().numpy().copy() for n, p in module.named_parameters()}
    q, k, v = rng.normal(size=(4, 2, 6)), rng.normal(size=(5, 2, 6)), rng.normal(size=(5, 2, 6))
    padding = np.zeros((2, 5), bool)
    padding[0, 4] = True
    (y, w), cache = attention.mha_forward(q, k, v, params, num_heads=3,
                                          key_padding_mask=padding)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    ty, tw = module(tq, tk, tv, key_padding_mask=torch.from_numpy(padding))
    dy, dw = rng.normal(size=y.shape), rng.normal(size=w.shape)
    torch.autograd.backward([ty, tw], [torch.from_numpy(dy), torch.from_numpy(dw)])
    grads, dparams = attention.mha_backward((dy, dw), cache)
    for got, want in [(y, ty), (w, tw), *zip(grads, (tq.grad, tk.grad, tv.grad), strict=True)]:
        torch.testing.assert_close(torch.from_numpy(got), want.detach())
    for name, p in module.named_parameters():
        torch.testing.assert_close(torch.from_numpy(dparams[name]), p.grad)


def _spread(values: np.ndarray) -> tuple[float, float]:
    return float(np.abs(values).max()), float(values.std())


@pytest.mark.parametrize("layer", ["rnn", "lstm", "gru"])
def test_recurrent_init_is_torchs(layer):
    options, shapes = {"hidden_size": 64}, ((3, 16),)
    signature = LAYERS[layer].signature(options, shapes)
    with torch.random.fork_rng():  # torch's draws from a seed of their own: deterministic
        torch.manual_seed(0)
        module = build_torch(LAYERS[layer], options, signature, shapes, "float64")
    rng = np.random.default_rng(0)
    bound = 1 / math.sqrt(64)
    for slot in signature.params.values():
        drawn = slot.init(rng, slot.shape)
        torch_values = getattr(module, slot.torch).detach().numpy()
        (top, std), (torch_top, torch_std) = _spread(drawn), _spread(torch_values)
        assert top <= bound and torch_top <= bound
        # The standard deviation of n draws of U(-b, b) has a relative standard error of
        # sqrt(0.8 / n) / 2 (a uniform's kurtosis is 1.8): allow 5 of them (a fixed 10% was
        # under 2 for the 64 biases, and failed one run in twenty).
        rel = 5 * math.sqrt(0.8 / drawn.size) / 2
        assert std == pytest.approx(torch_std, rel=math.sqrt(2) * rel)
        assert std == pytest.approx(bound / math.sqrt(3), rel=rel)


def test_multi_head_attention_init_is_torchs():
    options, shapes = {"embed_dim": 32, "num_heads": 4}, ((5, 32),)
    signature = LAYERS["multi_head_attention"].signature(options, shapes)
    with torch.random.fork_rng():  # torch's draws seeded here, the global generator untouched
        torch.manual_seed(0)
        module = build_torch(LAYERS["multi_head_attention"], options, signature, shapes,
                             "float64")
    rng = np.random.default_rng(0)
    for name, slot in signature.params.items():
        drawn = slot.init(rng, slot.shape)
        torch_values = module.get_parameter(slot.torch).detach().numpy()
        if name.endswith("bias"):
            assert not drawn.any() and not torch_values.any()
            continue
        assert drawn.std() == pytest.approx(torch_values.std(), rel=0.1)
    xavier = math.sqrt(6 / (32 + 96))
    drawn = signature.params["in_proj_weight"].init(rng, (96, 32))
    assert np.abs(drawn).max() <= xavier and drawn.std() == pytest.approx(xavier / math.sqrt(3),
                                                                          rel=0.1)


@pytest.mark.parametrize(("layer", "options", "shapes", "outputs"), [
    ("lstm", {"hidden_size": 4, "num_layers": 2}, ((7, 3),),
     {"output": (7, 4), "h_n": (2, 4), "c_n": (2, 4)}),
    ("gru", {"hidden_size": 4}, ((7, 3), (1, 4)), {"output": (7, 4), "h_n": (1, 4)}),
    ("multi_head_attention", {"embed_dim": 6, "num_heads": 2}, ((3, 6), (5, 6), (5, 6)),
     {"output": (3, 6), "weights": (3, 5)}),
])
def test_signature_outputs(layer, options, shapes, outputs):
    signature = LAYERS[layer].signature(options, shapes)
    assert dict(signature.outputs) == outputs
    assert signature.shape == next(iter(outputs.values()))


def test_signature_param_slots_follow_torch_names():
    signature = LAYERS["lstm"].signature({"hidden_size": 4, "num_layers": 2}, ((7, 3),))
    assert {n: s.shape for n, s in signature.params.items()} == {
        "weight_ih_l0": (16, 3), "weight_hh_l0": (16, 4), "bias_ih_l0": (16,),
        "bias_hh_l0": (16,), "weight_ih_l1": (16, 4), "weight_hh_l1": (16, 4),
        "bias_ih_l1": (16,), "bias_hh_l1": (16,)}
    no_bias = LAYERS["gru"].signature({"hidden_size": 4, "bias": False}, ((7, 3),))
    assert set(no_bias.params) == {"weight_ih_l0", "weight_hh_l0"}


REFUSALS = [
    ("lstm", {"hidden_size": 4}, ((7, 3), (1, 4)), "takes x, or x, h0 and c0; got 2 inputs"),
    ("rnn", {"hidden_size": 4}, ((3,),), "needs a sequence of shape (N, L, input_size)"),
    ("rnn", {"hidden_size": 4, "batch_first": False}, ((7, 3),), "batch_first must be true"),
    ("gru", {"hidden_size": 0}, ((7, 3),), "hidden_size must be a positive integer"),
    ("gru", {"hidden_size": 4, "input_size": 5}, ((7, 3),), "input_size is 5, but the input"),
    ("gru", {"hidden_size": 4, "num_layers": 2}, ((7, 3), (1, 4)),
     "h0 must have per-sample shape (num_layers, hidden_size) = (2, 4), got (1, 4)"),
    ("scaled_dot_product_attention", {}, ((3, 4), (5, 4)), "takes query, key and value"),
    ("scaled_dot_product_attention", {}, ((3, 4), (5, 3), (5, 4)), "needs query (..., L, E)"),
    ("scaled_dot_product_attention", {"attn_mask": "boolean", "is_causal": True},
     ((3, 4), (5, 4), (5, 4), (3, 5)), "attn_mask and is_causal cannot both be set"),
    ("scaled_dot_product_attention", {"attn_mask": "boolean"},
     ((2, 3, 4), (2, 5, 4), (2, 5, 4), (3, 5)), "attn_mask must have per-sample shape"),
    ("scaled_dot_product_attention", {"scale": "big"}, ((3, 4), (5, 4), (5, 4)),
     "scale must be a finite number or null"),
    ("multi_head_attention", {"embed_dim": 6, "num_heads": 4}, ((3, 6),),
     "embed_dim must be divisible by num_heads, got 6 and 4"),
    ("multi_head_attention", {"embed_dim": 6, "num_heads": 2}, ((3, 5),),
     "needs query (L, 6), key and value (S, 6)"),
    ("multi_head_attention", {"embed_dim": 6, "num_heads": 2}, ((3, 6), (3, 6)),
     "takes x (self-attention) or query, key and value; got 2 inputs"),
    ("multi_head_attention", {"embed_dim": 6, "num_heads": 2, "key_padding_mask": "boolean"},
     ((3, 6), (4,)), "key_padding_mask must have per-sample shape (3,), got (4,)"),
    ("multi_head_attention", {"embed_dim": 6, "num_heads": 2, "key_padding_mask": "boolean",
                              "attn_mask": "additive"}, ((3, 6), (3,), (3, 3)),
     "must be of one kind"),
    ("multi_head_attention", {"embed_dim": 6, "num_heads": 2, "batch_first": False},
     ((3, 6),), "batch_first must be true"),
    ("select", {"dim": 0, "index": 0}, ((4, 3),), "dim 0 is the batch dimension"),
    ("select", {"dim": 1, "index": 4}, ((4, 3),), "index must be an integer in [-4, 4)"),
    ("transpose", {"dim0": 0, "dim1": 1}, ((4, 3),), "dim0 0 is the batch dimension"),
    ("permute", {"dims": [1, 0, 2]}, ((4, 3),), "moves the batch dimension"),
    ("permute", {"dims": [0, 1, 1]}, ((4, 3),), "dims must be a permutation"),
    ("reshape", {"shape": [5, -1]}, ((4, 3),), "cannot reshape a per-sample shape (4, 3)"),
    ("reshape", {"shape": [-1, -1]}, ((4, 3),), "shape may have one -1"),
    ("matmul", {}, ((4, 3), (4, 5)), "inner dims differ"),
    ("matmul", {}, ((2, 4, 3), (3, 3, 5)), "leading dims do not broadcast"),
    ("matmul", {}, ((4, 3), (2, 3, 5)), "needs two inputs of one rank"),
]


@pytest.mark.parametrize(("layer", "options", "shapes", "message"), REFUSALS,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(REFUSALS)])
def test_signature_refuses(layer, options, shapes, message):
    with pytest.raises(ValueError) as caught:
        LAYERS[layer].signature(options, shapes)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
