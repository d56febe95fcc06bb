"""manual.init against torch.nn.init: gains, fans, distributions, orthogonality, spec use."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

import manual
from manual import init
from manual.random import stream
from reference import mirror

SHAPE = (300, 200)  # (out_features, in_features): fan_in 200, fan_out 300
SEED = 1234


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    a, b = np.sort(a.ravel()), np.sort(b.ravel())
    grid = np.concatenate([a, b])
    gap = np.searchsorted(a, grid, side="right") / a.size - \
        np.searchsorted(b, grid, side="right") / b.size
    return float(np.max(np.abs(gap)))


def ks_critical(n: int, m: int, alpha: float = 1e-4) -> float:
    """The two-sample KS rejection threshold at level ``alpha``."""
    return math.sqrt(-0.5 * math.log(alpha / 2)) * math.sqrt((n + m) / (n * m))


# -- calculate_gain and fans -----------------------------------------------------------------

GAIN_CASES = [(name, None) for name in init.NONLINEARITIES] + [
    ("leaky_relu", 0.2), ("leaky_relu", 0), ("leaky_relu", 3), ("leaky_relu", -0.5),
]


@pytest.mark.parametrize(("nonlinearity", "param"), GAIN_CASES,
                         ids=[f"{n}-{p}" for n, p in GAIN_CASES])
def test_calculate_gain_equals_torch_exactly(nonlinearity: str, param: float | None) -> None:
    ours = init.calculate_gain(nonlinearity, param)
    theirs = torch.nn.init.calculate_gain(nonlinearity, param)  # type: ignore[arg-type]
    assert ours == theirs
    assert type(ours) is type(theirs)


@pytest.mark.parametrize(("nonlinearity", "param"), [("gelu", None), ("leaky_relu", True),
                                                     ("leaky_relu", "0.1")],
                         ids=["unknown", "bool-param", "string-param"])
def test_calculate_gain_rejects_what_torch_rejects(nonlinearity: str, param: object) -> None:
    with pytest.raises(ValueError):
        torch.nn.init.calculate_gain(nonlinearity, param)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        init.calculate_gain(nonlinearity, param)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(3, 4), (7, 1), (5, 2, 3, 3), (2, 6, 4)],
                         ids=lambda s: "x".join(map(str, s)))
def test_fans_equal_torch(shape: tuple[int, ...]) -> None:
    fans = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init.calculate_fan_in_and_fan_out(shape) == fans


def test_fans_need_two_dimensions() -> None:
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.calculate_fan_in_and_fan_out((5,))


# -- distributions ---------------------------------------------------------------------------

DIST_CASES: list[tuple[str, dict]] = [
    ("normal", {"mean": 0.5, "std": 2.0}),
    ("uniform", {"a": -1.0, "b": 3.0}),
    ("trunc_normal", {}),
    ("trunc_normal", {"mean": 1.0, "std": 2.0, "a": -1.0, "b": 2.5}),
    ("trunc_normal", {"mean": 0.0, "std": 1.0, "a": 1.5, "b": 4.0}),  # tail: uniform proposals
    ("xavier_uniform", {"gain": 1.5}),
    ("xavier_normal", {"gain": 0.7}),
    ("kaiming_uniform", {}),
    ("kaiming_uniform", {"a": 0.3, "mode": "fan_out", "nonlinearity": "leaky_relu"}),
    ("kaiming_normal", {"nonlinearity": "relu"}),
    ("kaiming_normal", {"mode": "fan_out", "nonlinearity": "tanh"}),
    ("kaiming_normal", {"nonlinearity": "linear"}),
    ("orthogonal", {"gain": 2.0}),
]


def _id(case: tuple[str, dict]) -> str:
    name, options = case
    return name + "".join(f"-{k}={v}" for k, v in options.items())


def torch_sample(name: str, shape: tuple[int, ...], options: dict, seed: int) -> np.ndarray:
    t = torch.empty(shape, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    getattr(torch.nn.init, name + "_")(t, **options, generator=generator)
    return t.numpy()


@pytest.mark.parametrize("case", DIST_CASES, ids=[_id(c) for c in DIST_CASES])
def test_samples_follow_torch_distribution(case: tuple[str, dict]) -> None:
    """Same law as torch.nn.init: moments within sampling error, and a two-sample KS test."""
    name, options = case
    ours = init.initialize(name, SHAPE, np.random.default_rng(SEED), **options)
    theirs = torch_sample(name, SHAPE, options, SEED)
    assert ours.shape == SHAPE and ours.dtype == np.float64
    n = ours.size
    var = init.variance(name, SHAPE, **options)
    assert_allclose(theirs.var(), var, rtol=6 * math.sqrt(2 / n))
    # the mean of n draws has standard error sqrt(var/n); 6 of them is a 1e-9 false alarm
    assert abs(ours.mean() - theirs.mean()) <= 6 * math.sqrt(2 * var / n)
    assert_allclose(ours.var(), var, rtol=6 * math.sqrt(2 / n))
    assert ks_statistic(ours, theirs) < ks_critical(n, n)


def test_ks_test_can_tell_a_mis_scaled_init() -> None:
    """The goodness-of-fit test has power: xavier vs kaiming(relu) differ by sqrt(2)-ish."""
    ours = init.xavier_normal(SHAPE, np.random.default_rng(SEED))
    theirs = torch_sample("kaiming_normal", SHAPE, {"nonlinearity": "relu"}, SEED)
    assert ks_statistic(ours, theirs) > ks_critical(ours.size, theirs.size)


@pytest.mark.parametrize("name", ["zeros", "ones", "constant"])
def test_constant_initializers(name: str) -> None:
    options = {"val": -2.5} if name == "constant" else {}
    ours = init.initialize(name, (3, 4), np.random.default_rng(0), **options)
    t = torch.empty(3, 4, dtype=torch.float64)
    getattr(torch.nn.init, name + "_")(t, *options.values())
    assert_array_equal(ours, t.numpy())


def test_trunc_normal_stays_in_bounds() -> None:
    x = init.trunc_normal((200, 50), np.random.default_rng(1), mean=0.0, std=1.0, a=1.5, b=4.0)
    assert x.min() >= 1.5 and x.max() <= 4.0


@pytest.mark.parametrize("shape", [(40, 100), (100, 40), (64, 64), (8, 3, 3, 3)],
                         ids=["wide", "tall", "square", "conv"])
def test_orthogonal_gives_gain_squared_identity(shape: tuple[int, ...]) -> None:
    gain = 1.7
    w = init.orthogonal(shape, np.random.default_rng(3), gain=gain).reshape(shape[0], -1)
    small = min(w.shape)
    product = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    assert_allclose(product, gain**2 * np.eye(small), atol=1e-12)


def test_orthogonal_signs_are_haar() -> None:
    """Fixing signs by diag(R) makes the diagonal mean ~0 (it is biased positive without it)."""
    diagonals = [np.diag(init.orthogonal((20, 20), np.random.default_rng(s)))
                 for s in range(200)]
    assert abs(np.mean(diagonals)) < 4 * math.sqrt(1 / 20 / 4000)


# -- spec integration ------------------------------------------------------------------------

def _spec(layer_init: dict | None = None, **linear: object) -> manual.Spec:
    layer: dict = {"type": "linear", "out_features": 6, **linear}
    if layer_init is not None:
        layer["init"] = layer_init
    return manual.parse_spec({"input_shape": [5], "layers": [layer, {"type": "tanh"}],
                              "loss": {"type": "mse"}, "seed": 9})


def test_default_init_matches_nn_linear_on_a_non_square_layer() -> None:
    """nn.Linear's default against torch's own draws: U(-k, k), k = 1/sqrt(in_features)."""
    spec = manual.parse_spec({"input_shape": [SHAPE[1]], "seed": SEED, "loss": {"type": "mse"},
                              "layers": [{"type": "linear", "out_features": SHAPE[0]}]})
    params = manual.initial_parameters(spec)
    torch.manual_seed(SEED)
    theirs = torch.nn.Linear(SHAPE[1], SHAPE[0], dtype=torch.float64)
    bound = 1 / math.sqrt(SHAPE[1])  # not 1/sqrt(out_features): the layer is not square
    for name in ("weight", "bias"):
        mine, want = params[f"layers.0.{name}"], getattr(theirs, name).detach().numpy()
        assert mine.shape == want.shape
        assert np.abs(mine).max() <= bound and np.abs(mine).max() > 0.95 * bound
        assert ks_statistic(mine, want) < ks_critical(mine.size, want.size)


def test_each_node_draws_from_its_own_stream() -> None:
    """Inserting a layer does not redraw the parameters of the layers after it."""
    params = manual.initial_parameters(_spec())
    weight = init.kaiming_uniform((6, 5), stream(9, "params", "layers.0"), a=math.sqrt(5))
    assert_array_equal(params["layers.0.weight"], weight)
    raw = {"input_shape": [5], "loss": {"type": "mse"}, "seed": 9,
           "layers": [{"type": "linear", "out_features": 6}, {"type": "tanh"},
                      {"type": "linear", "out_features": 4}]}
    before = manual.initial_parameters(manual.parse_spec(raw))
    raw["layers"].insert(1, {"type": "linear", "out_features": 6})
    after = manual.initial_parameters(manual.parse_spec(raw))
    assert_array_equal(before["layers.0.weight"], after["layers.0.weight"])
    assert not np.array_equal(before["layers.2.weight"], after["layers.3.weight"])


def test_spec_init_draws_with_the_initializer() -> None:
    spec = _spec({"weight": {"type": "kaiming_normal", "nonlinearity": "relu"},
                  "bias": {"type": "constant", "val": 0.25}})
    params = manual.initial_parameters(spec)
    expected = init.kaiming_normal((6, 5), stream(9, "params", "layers.0"), nonlinearity="relu")
    assert_array_equal(params["layers.0.weight"], expected)
    assert_array_equal(params["layers.0.bias"], np.full(6, 0.25))
    assert spec.to_dict()["layers"][0]["init"]["bias"] == {"type": "constant", "val": 0.25}
    assert manual.parse_spec(spec.to_dict()) == spec


def test_spec_init_of_weight_only_keeps_default_bias() -> None:
    params = manual.initial_parameters(_spec({"weight": {"type": "zeros"}}))
    bound = 1 / math.sqrt(5)  # zeros draws nothing, so the bias is the stream's first draw
    expected_bias = stream(9, "params", "layers.0").uniform(-bound, bound, size=6)
    assert_array_equal(params["layers.0.weight"], np.zeros((6, 5)))
    assert_array_equal(params["layers.0.bias"], expected_bias)


def test_both_engines_get_the_same_initialized_weights() -> None:
    spec = _spec({"weight": {"type": "orthogonal", "gain": 2.0}, "bias": {"type": "zeros"}})
    params = manual.initial_parameters(spec)
    net = mirror.build(spec)
    assert_array_equal(net.layers[0].weight.detach().numpy(), params["layers.0.weight"])
    assert_array_equal(net.layers[0].bias.detach().numpy(), params["layers.0.bias"])


BAD_INITS = [
    ("not-an-object", 3, "init must be an object"),
    ("unknown-key", {"gamma": {"type": "zeros"}}, "init: unknown key 'gamma'"),
    ("unknown-initializer", {"weight": {"type": "he"}}, "init.weight: unknown initializer 'he'"),
    ("no-type", {"weight": {"std": 1}}, "init.weight must be an object with a string 'type'"),
    ("unknown-option", {"weight": {"type": "normal", "sd": 1}}, "unknown option 'sd'"),
    ("negative-std", {"weight": {"type": "normal", "std": -1}}, "init.weight: normal: std"),
    ("bad-mode", {"weight": {"type": "kaiming_normal", "mode": "fan"}}, "mode must be one of"),
    ("bad-nonlinearity", {"weight": {"type": "kaiming_uniform", "nonlinearity": "gelu"}},
     "nonlinearity must be one of"),
    ("fan-of-bias", {"bias": {"type": "xavier_uniform"}}, "init.bias: xavier_uniform needs a"),
    ("uniform-bounds", {"weight": {"type": "uniform", "a": 1, "b": 0}}, "needs a <= b"),
]


@pytest.mark.parametrize(("raw", "message"), [(r, m) for _, r, m in BAD_INITS],
                         ids=[i for i, _, _ in BAD_INITS])
def test_bad_init_is_rejected_naming_the_layer(raw: object, message: str) -> None:
    with pytest.raises(ValueError, match=r"^layers\[0\] \(linear\): ") as error:
        _spec(raw)  # type: ignore[arg-type]
    assert message in str(error.value)


@pytest.mark.parametrize(("linear", "key"), [({"bias": False}, "bias"),
                                             ({"weight": [[0.0] * 5] * 6}, "weight")],
                         ids=["no-bias", "explicit-weight"])
def test_init_conflicting_with_explicit_values_is_rejected(linear: dict, key: str) -> None:
    with pytest.raises(ValueError, match=rf"init.{key} conflicts"):
        _spec({key: {"type": "zeros"}}, **linear)
