"""The norm, dropout and embedding layers against PyTorch: every sample x dtype x mode.

Each comparison runs the layer as a one-node graph spec (``reference.conformance.layers``) through
the layer driver (``reference.core.driver``): the manual engine and the torch mirror (PyTorch's
own module, ``reference.builders.norm``) on the same inputs, parameters, state, keep-mask and
upstream gradient, comparing the output, every input and parameter gradient and every state
buffer after the step; sequences of steps carry the state in both engines.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from manual.layers import LAYERS
from manual.layers.norm import NORM_LAYERS
from manual.ops import dropout as drop
from manual.ops import normalization as nrm
from reference.conformance.layers import check_sample, sample_case
from reference.conformance.protocols import PROTOCOLS, run_protocol

DTYPES = ("float32", "float64")
NAMES = [info.name for info in NORM_LAYERS]


def _samples(name: str, dtype: str, seed: int = 0) -> list:
    samples = LAYERS[name].samples
    assert samples is not None
    return list(samples(np.random.default_rng(seed), dtype))


CASES = [(name, i, s.name) for name in NAMES for i, s in enumerate(_samples(name, "float64"))]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "index", "label"), CASES,
                         ids=[f"{n}-{label}" for n, _, label in CASES])
def test_layer_matches_torch(name: str, index: int, label: str, dtype: str,
                             training: bool) -> None:
    sample = _samples(name, dtype)[index]
    result = check_sample(name, sample.options, sample.inputs, dtype, (training,), seed=index)
    assert result.passed, result.failures
    compared = {t.name for t in result.tensors}
    assert f"forward: {name}" in compared  # the one node is named after its layer
    signature = LAYERS[name].signature(sample.options, tuple(a.shape[1:] for a in
                                                             sample.inputs))
    assert {f"state: {name}.{k}" for k in signature.state} <= compared
    assert {f"backward: {name}.{k}" for k in signature.params} <= compared


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "index", "label"), CASES,
                         ids=[f"{n}-{label}" for n, _, label in CASES])
def test_conformance_protocols_on_the_layer(name: str, index: int, label: str, dtype: str,
                                            mode: str) -> None:
    """Main's protocols (single pass with the float32 rounding judge, two accumulated
    backward passes, stale cache, no mutation) on the layer as a one-node spec."""
    sample = _samples(name, dtype)[index]
    case = sample_case(name, sample.options, sample.inputs, dtype, mode=mode, seed=index)
    for protocol in PROTOCOLS:
        record = run_protocol(protocol, case.spec, case.data)
        assert record.passed, (protocol, record.first_divergence)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_train_eval_train_sequence(name: str, dtype: str) -> None:
    for index, sample in enumerate(_samples(name, dtype)):
        result = check_sample(name, sample.options, sample.inputs, dtype,
                              (True, False, True, True), seed=10 + index)
        assert result.passed, (sample.name, result.failures)


# ---- batch norm's state, against independent math ----------------------------------------

def _bn(x: np.ndarray, state: dict, training: bool, **options: object) -> tuple:
    signature = LAYERS["batch_norm"].signature(options, (x.shape[1:],))
    params = {k: s.init(np.random.default_rng(0), s.shape).astype(x.dtype)
              for k, s in signature.params.items()}
    return LAYERS["batch_norm"].forward((x,), params, state, {}, training=training, **options)


def _fresh_state(channels: int, dtype: str) -> dict:
    return {"running_mean": np.zeros(channels, dtype), "running_var": np.ones(channels, dtype),
            "num_batches_tracked": np.asarray(0, np.int64)}


def test_running_variance_is_unbiased_over_batch_and_space() -> None:
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(4, 3, 5, 2))
    _, _, state = _bn(x, _fresh_state(3, "float64"), True, momentum=0.25)
    per_channel = x.transpose(1, 0, 2, 3).reshape(3, -1)
    np.testing.assert_allclose(state["running_var"],
                               0.75 + 0.25 * np.var(per_channel, axis=1, ddof=1), rtol=1e-14)
    np.testing.assert_allclose(state["running_mean"], 0.25 * per_channel.mean(axis=1),
                               rtol=1e-14)
    assert state["num_batches_tracked"] == 1
    assert state["num_batches_tracked"].dtype == np.int64


def test_momentum_none_is_the_cumulative_average() -> None:
    rng = np.random.default_rng(2)
    batches = [rng.normal(i, 1 + i, size=(6, 2)) for i in range(3)]
    state = _fresh_state(2, "float64")
    for x in batches:
        _, _, state = _bn(x, state, True, momentum=None)
    np.testing.assert_allclose(state["running_mean"], np.mean([b.mean(0) for b in batches], 0),
                               rtol=1e-14)
    np.testing.assert_allclose(state["running_var"],
                               np.mean([b.var(0, ddof=1) for b in batches], 0), rtol=1e-14)
    assert state["num_batches_tracked"] == 3


def test_eval_uses_running_statistics_and_keeps_state() -> None:
    x = np.random.default_rng(3).normal(size=(5, 2)).astype(np.float32)
    state = {"running_mean": np.array([1.0, -2.0], np.float32),
             "running_var": np.array([4.0, 0.25], np.float32),
             "num_batches_tracked": np.asarray(7, np.int64)}
    y, _, new_state = _bn(x, state, False, eps=0.0)
    np.testing.assert_allclose(y, (x - state["running_mean"]) / np.sqrt(state["running_var"]),
                               rtol=1e-6)
    assert y.dtype == np.float32
    assert all(new_state[k] is state[k] or np.array_equal(new_state[k], state[k])
               for k in state)


def test_no_running_stats_uses_the_batch_in_eval_mode() -> None:
    x = np.random.default_rng(4).normal(2.0, 3.0, size=(7, 3))
    y, _, state = _bn(x, {}, False, track_running_stats=False, eps=0.0)
    np.testing.assert_allclose(y, (x - x.mean(0)) / x.std(0), rtol=1e-12)
    assert state == {}


def test_group_norm_normalises_each_group_over_channels_and_space() -> None:
    x = np.random.default_rng(5).normal(1.0, 2.0, size=(2, 4, 3, 3))
    y, _ = nrm.group_norm_forward(x, None, None, num_groups=2, eps=0.0)
    groups = y.reshape(2, 2, -1)
    np.testing.assert_allclose(groups.mean(-1), 0, atol=1e-12)
    np.testing.assert_allclose(groups.var(-1), 1, rtol=1e-12)


def test_parameter_gradients_have_the_parameters_shapes() -> None:
    for name in ("batch_norm", "layer_norm", "group_norm", "embedding"):
        sample = _samples(name, "float32")[0]
        info = LAYERS[name]
        signature = info.signature(sample.options, tuple(a.shape[1:] for a in sample.inputs))
        params = {k: s.init(np.random.default_rng(0), s.shape).astype(np.float32)
                  for k, s in signature.params.items()}
        state = {k: s.init(np.random.default_rng(0), s.shape).astype(s.dtype or "float32")
                 for k, s in signature.state.items()}
        y, cache, _ = info.forward(sample.inputs, params, state, {}, training=True,
                                   **sample.options)
        _, grads = info.backward(np.ones_like(y), cache)
        assert {k: (g.shape, g.dtype) for k, g in grads.items()} == \
            {k: (p.shape, p.dtype) for k, p in params.items()}, name


# ---- dropout ---------------------------------------------------------------------------

def _binomial_bound(n: int, p: float) -> float:
    """Five standard deviations of a Binomial(n, p) count: exceeded with probability < 6e-7."""
    return 5 * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_torch_dropout_keeps_at_our_rate_and_scales_by_the_same_factor(p: float) -> None:
    n = 200_000
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        dropped = torch.nn.functional.dropout(torch.ones(n, dtype=torch.float32), p=p)
    kept_torch = int((dropped != 0).sum())
    ours = drop.keep_mask(np.random.default_rng(0), (n,), p)
    kept_ours = int(ours.sum())
    for kept in (kept_torch, kept_ours):
        assert abs(kept - n * (1 - p)) <= _binomial_bound(n, 1 - p)
    # The two counts are independent draws of one binomial: their difference has twice
    # the variance.
    assert abs(kept_torch - kept_ours) <= math.sqrt(2) * _binomial_bound(n, 1 - p)
    scaled = drop.dropout_forward(np.ones(n, np.float32), ours, p=p)[0]
    assert scaled.dtype == np.float32
    assert set(np.unique(dropped.numpy())) == set(np.unique(scaled)) == {
        np.float32(0), np.float32(1) / np.float32(1 - p)}


def test_dropout_mask_never_promotes_float32() -> None:
    x = np.ones((3, 4), np.float32)
    mask = drop.keep_mask(np.random.default_rng(0), x.shape, 0.5)
    assert mask.dtype == np.float64
    y, cache = drop.dropout_forward(x, mask, p=0.5)
    assert y.dtype == np.float32
    assert drop.dropout_backward(x, cache).dtype == np.float32


# ---- embedding -------------------------------------------------------------------------

def test_embedding_default_init_is_standard_normal_with_padding_zeroed() -> None:
    signature = LAYERS["embedding"].signature(
        {"num_embeddings": 200, "embedding_dim": 50, "padding_idx": -3}, ((),))
    slot = signature.params["weight"]
    weight = slot.init(np.random.default_rng(0), slot.shape)
    assert not weight[197].any()
    rest = np.delete(weight, 197, axis=0)
    # 9950 draws: the sample mean's standard error is 0.01, the variance's 0.014.
    assert abs(rest.mean()) < 0.05
    assert abs(rest.var() - 1) < 0.07


def test_embedding_gradient_accumulates_over_repeated_indices() -> None:
    weight = np.zeros((3, 2))
    _, cache = LAYERS["embedding"].forward((np.array([1, 1, 2, 1]),), {"weight": weight}, {},
                                           {}, training=True, num_embeddings=3,
                                           embedding_dim=2, padding_idx=2)[:2]
    dy = np.arange(8.0).reshape(4, 2)
    (dx,), grads = LAYERS["embedding"].backward(dy, cache)
    assert dx is None
    np.testing.assert_array_equal(grads["weight"], [[0, 0], [0 + 2 + 6, 1 + 3 + 7], [0, 0]])


# ---- refusals ----------------------------------------------------------------------------

REFUSALS = [
    ("batch_norm", {}, ((2, 3, 4, 5, 6),), "needs (N, C), (N, C, L)"),
    ("batch_norm", {"momentum": 2.0}, ((3,),), "momentum must be a number in [0, 1] or null"),
    ("batch_norm", {"momentum": "fast"}, ((3,),), "momentum must be"),
    ("batch_norm", {}, ((3,), (3,)), "takes one input, got 2"),
    ("batch_norm", {}, ((),), "at least 1 dimension"),
    ("layer_norm", {"normalized_shape": [4, 5]}, ((5, 4),), "must be the trailing dimensions"),
    ("layer_norm", {"normalized_shape": [2, 3, 4]}, ((3, 4),), "must be the trailing"),
    ("layer_norm", {"normalized_shape": []}, ((3,),), "non-empty list of integers"),
    ("layer_norm", {"normalized_shape": 2.5}, ((3,),), "an integer or a non-empty list"),
    ("group_norm", {"num_groups": 4}, ((6, 3),), "num_channels 6 (per-sample shape (6, 3)) "
                                                 "must be divisible by num_groups 4"),
    ("group_norm", {}, ((6,),), "num_groups must be a positive integer, got None"),
    ("embedding", {"num_embeddings": 4}, ((),), "embedding_dim must be a positive integer"),
    ("embedding", {"num_embeddings": 4, "embedding_dim": 2, "padding_idx": 4}, ((),),
     "padding_idx must be an integer in [-4, 3]"),
    ("embedding", {"num_embeddings": 4, "embedding_dim": 2, "padding_idx": True}, ((),),
     "padding_idx must be"),
]


@pytest.mark.parametrize(("name", "options", "shapes", "message"), REFUSALS,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(REFUSALS)])
def test_signature_refuses(name: str, options: dict, shapes: tuple, message: str) -> None:
    with pytest.raises(ValueError) as error:
        LAYERS[name].signature(options, shapes)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_signature_shapes() -> None:
    sig = LAYERS["batch_norm"].signature({}, ((4, 5, 6),))
    assert sig.shape == (4, 5, 6) and sig.params["weight"].shape == (4,)
    assert sig.state["num_batches_tracked"].dtype == "int64"
    assert sig.state["num_batches_tracked"].shape == ()
    assert LAYERS["batch_norm"].signature({"track_running_stats": False, "affine": False},
                                          ((4,),)).state == {}
    sig = LAYERS["layer_norm"].signature({"normalized_shape": 6, "bias": False}, ((5, 6),))
    assert sig.params["weight"].shape == (6,) and "bias" not in sig.params
    sig = LAYERS["embedding"].signature({"num_embeddings": 9, "embedding_dim": 3}, ((2, 4),))
    assert sig.shape == (2, 4, 3) and sig.params["weight"].shape == (9, 3)
    assert LAYERS["dropout"].signature({"p": 0.3}, ((2, 3),)).noise["mask"].shape == (2, 3)
    assert LAYERS["embedding"].behaviour.input_kind == "index"
    assert not LAYERS["batch_norm"].behaviour.rows_independent
    assert LAYERS["batch_norm"].behaviour.train_eval_differ and \
        LAYERS["dropout"].behaviour.train_eval_differ


def test_boundary_errors_at_first_call() -> None:
    with pytest.raises(ValueError, match=r"more than 1 value per channel .* shape \(1, 3\)$"):
        _bn(np.ones((1, 3)), _fresh_state(3, "float64"), True)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 2\], found 0\.\.3$"):
        LAYERS["embedding"].forward((np.array([0, 3]),), {"weight": np.zeros((3, 2))}, {}, {},
                                    training=True, num_embeddings=3, embedding_dim=2)
    with pytest.raises(ValueError, match=r"keep-mask of the input's shape \(2, 3\)"):
        LAYERS["dropout"].forward((np.ones((2, 3)),), {}, {}, {}, training=True)
