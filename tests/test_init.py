"""manual.init against torch.nn.init: gains, fans, distributions, orthogonality, spec use."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

import manual
from manual import init
from reference.core import mirror

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

FAN_IN, FAN_OUT = SHAPE[1], SHAPE[0]


def trunc_normal_variance(mean: float, std: float, a: float, b: float) -> float:
    """The textbook variance of N(mean, std^2) cut to [a, b] (written here, not imported)."""
    alpha, beta = (a - mean) / std, (b - mean) / std
    pdf = [math.exp(-z * z / 2) / math.sqrt(2 * math.pi) for z in (alpha, beta)]
    mass = 0.5 * (math.erf(beta / math.sqrt(2)) - math.erf(alpha / math.sqrt(2)))
    return std**2 * (1 + (alpha * pdf[0] - beta * pdf[1]) / mass
                     - ((pdf[0] - pdf[1]) / mass) ** 2)


# (initializer, options, the variance of one entry on SHAPE by hand: fan_in 200, fan_out 300).
# Kaiming's default is leaky_relu with a = 0 (gain^2 = 2); orthogonal columns are unit vectors,
# so a 300 x 200 matrix has mean square 200 / 60000.
DIST_CASES: list[tuple[str, dict, float]] = [
    ("normal", {"mean": 0.5, "std": 2.0}, 4.0),
    ("uniform", {"a": -1.0, "b": 3.0}, 16 / 12),
    ("trunc_normal", {}, trunc_normal_variance(0.0, 1.0, -2.0, 2.0)),
    ("trunc_normal", {"mean": 1.0, "std": 2.0, "a": -1.0, "b": 2.5},
     trunc_normal_variance(1.0, 2.0, -1.0, 2.5)),
    ("trunc_normal", {"mean": 0.0, "std": 1.0, "a": 1.5, "b": 4.0},  # tail: uniform proposals
     trunc_normal_variance(0.0, 1.0, 1.5, 4.0)),
    ("xavier_uniform", {"gain": 1.5}, 1.5**2 * 2 / (FAN_IN + FAN_OUT)),
    ("xavier_normal", {"gain": 0.7}, 0.7**2 * 2 / (FAN_IN + FAN_OUT)),
    ("kaiming_uniform", {}, 2 / FAN_IN),
    ("kaiming_uniform", {"a": 0.3, "mode": "fan_out", "nonlinearity": "leaky_relu"},
     2 / (1 + 0.3**2) / FAN_OUT),
    ("kaiming_normal", {"nonlinearity": "relu"}, 2 / FAN_IN),
    ("kaiming_normal", {"mode": "fan_out", "nonlinearity": "tanh"}, (5 / 3) ** 2 / FAN_OUT),
    ("kaiming_normal", {"nonlinearity": "linear"}, 1 / FAN_IN),
    ("orthogonal", {"gain": 2.0}, 2.0**2 * FAN_IN / (FAN_IN * FAN_OUT)),
]
# The cases whose law depends on which fan is which (xavier adds them; the rest ignore them).
FAN_DEPENDENT = [c for c in DIST_CASES if c[0].startswith("kaiming")]


def _id(case: tuple[str, dict, float]) -> str:
    name, options, _ = case
    return name + "".join(f"-{k}={v}" for k, v in options.items())


def torch_sample(name: str, shape: tuple[int, ...], options: dict, seed: int) -> np.ndarray:
    t = torch.empty(shape, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    getattr(torch.nn.init, name + "_")(t, **options, generator=generator)
    return t.numpy()


def law_differences(ours: np.ndarray, theirs: np.ndarray, var: float) -> list[str]:
    """How ``ours`` fails to follow torch's draws ``theirs`` of variance ``var`` ([] if not)."""
    n, m = ours.size, theirs.size
    problems = []
    # the mean of n draws has standard error sqrt(var/n); 6 of them is a 1e-9 false alarm
    if abs(ours.mean() - theirs.mean()) > 6 * math.sqrt(var / n + var / m):
        problems.append("mean")
    if abs(ours.var() / var - 1) > 6 * math.sqrt(2 / n):
        problems.append("variance")
    if ks_statistic(ours, theirs) >= ks_critical(n, m):
        problems.append("ks")
    return problems


@pytest.mark.parametrize("case", DIST_CASES, ids=[_id(c) for c in DIST_CASES])
def test_samples_follow_torch_distribution(case: tuple[str, dict, float]) -> None:
    """Same law as torch.nn.init on a non-square weight: torch's own draws have the variance
    worked out by hand, ours have it too, and a two-sample KS test cannot tell them apart."""
    name, options, var = case
    ours = init.initialize(name, SHAPE, np.random.default_rng(SEED), **options)
    theirs = torch_sample(name, SHAPE, options, SEED)
    assert ours.shape == SHAPE and ours.dtype == np.float64
    assert abs(theirs.var() / var - 1) <= 6 * math.sqrt(2 / theirs.size)  # the hand formula
    assert law_differences(ours, theirs, var) == []
    assert init.variance(name, SHAPE, **options) == pytest.approx(var, rel=1e-12)


@pytest.mark.parametrize("case", FAN_DEPENDENT, ids=[_id(c) for c in FAN_DEPENDENT])
def test_an_initializer_with_its_fans_swapped_fails_the_same_check(
        case: tuple[str, dict, float]) -> None:
    """Drawn for the transposed shape (fan_in 300, fan_out 200) and transposed back, the
    weights are 1.5 times too narrow or too wide: the check above must refuse them."""
    name, options, var = case
    swapped = init.initialize(name, SHAPE[::-1], np.random.default_rng(SEED), **options).T
    theirs = torch_sample(name, SHAPE, options, SEED)
    assert "variance" in law_differences(swapped, theirs, var)
    assert "ks" in law_differences(swapped, theirs, var)


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


def _wide_spec(layer_init: dict | None = None) -> manual.Spec:
    """One linear layer 200 -> 300 (SHAPE): fan_in and fan_out differ by a factor 1.5."""
    layer: dict = {"type": "linear", "out_features": FAN_OUT}
    if layer_init is not None:
        layer["init"] = layer_init
    return manual.parse_spec({"input_shape": [FAN_IN], "seed": SEED, "loss": {"type": "mse"},
                              "layers": [layer]})


def torch_linear(seed: int) -> torch.nn.Linear:
    """torch's own nn.Linear(200, 300), drawn without touching the global generator's state."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return torch.nn.Linear(FAN_IN, FAN_OUT, dtype=torch.float64)


def test_default_init_matches_nn_linear_on_a_non_square_layer() -> None:
    """nn.Linear's default against torch's own draws: U(-k, k), k = 1/sqrt(in_features)."""
    params = manual.initial_parameters(_wide_spec())
    theirs = torch_linear(SEED)
    bound = 1 / math.sqrt(FAN_IN)
    assert 0.95 * bound > 1 / math.sqrt(FAN_OUT)  # so the bound tells the fans apart
    for name in ("weight", "bias"):
        mine, want = params[f"layers.0.{name}"], getattr(theirs, name).detach().numpy()
        assert mine.shape == want.shape
        assert np.abs(want).max() <= bound and np.abs(want).max() > 0.95 * bound
        assert np.abs(mine).max() <= bound and np.abs(mine).max() > 0.95 * bound
        assert ks_statistic(mine, want) < ks_critical(mine.size, want.size)
    var = bound**2 / 3  # U(-k, k)
    assert law_differences(params["layers.0.weight"], theirs.weight.detach().numpy(), var) == []


def test_a_default_init_scaled_by_fan_out_fails_the_nn_linear_check() -> None:
    """The check above refuses U(-1/sqrt(out), 1/sqrt(out)): the mistake square layers hide."""
    mine = np.random.default_rng(SEED).uniform(-1, 1, size=SHAPE) / math.sqrt(FAN_OUT)
    want = torch_linear(SEED).weight.detach().numpy()
    assert not np.abs(mine).max() > 0.95 / math.sqrt(FAN_IN)
    assert law_differences(mine, want, 1 / FAN_IN / 3) != []


def test_each_node_draws_from_its_own_stream() -> None:
    """Two layers of one shape draw different weights; inserting a layer does not redraw the
    parameters of the layers before it (those after it are renamed, so they draw anew)."""
    raw: dict[str, Any] = {"input_shape": [5], "loss": {"type": "mse"}, "seed": 9,
                           "layers": [{"type": "linear", "out_features": 5}, {"type": "tanh"},
                                      {"type": "linear", "out_features": 5}]}
    params = manual.initial_parameters(manual.parse_spec(raw))
    assert not np.array_equal(params["layers.0.weight"], params["layers.2.weight"])
    other_seed = manual.initial_parameters(manual.parse_spec({**raw, "seed": 10}))
    assert not np.array_equal(params["layers.0.weight"], other_seed["layers.0.weight"])
    raw["layers"][2] = {"type": "linear", "out_features": 4}
    before = manual.initial_parameters(manual.parse_spec(raw))
    raw["layers"].insert(1, {"type": "linear", "out_features": 6})
    after = manual.initial_parameters(manual.parse_spec(raw))
    assert_array_equal(before["layers.0.weight"], after["layers.0.weight"])
    assert not np.array_equal(before["layers.2.weight"], after["layers.3.weight"])


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_spec_init_draws_what_torch_nn_init_draws(mode: str) -> None:
    """A spec's kaiming_normal(relu) on a non-square layer against torch.nn.init's own draws
    (variance 2 / fan, the fan that the mode names), and its constant bias."""
    weight = {"type": "kaiming_normal", "nonlinearity": "relu", "mode": mode}
    spec = _wide_spec({"weight": weight, "bias": {"type": "constant", "val": 0.25}})
    params = manual.initial_parameters(spec)
    options = {"nonlinearity": "relu", "mode": mode}
    theirs = torch_sample("kaiming_normal", SHAPE, options, SEED)
    var = 2 / (FAN_IN if mode == "fan_in" else FAN_OUT)
    assert law_differences(params["layers.0.weight"], theirs, var) == []
    wrong_fan = 2 / (FAN_OUT if mode == "fan_in" else FAN_IN)
    assert "variance" in law_differences(params["layers.0.weight"], theirs, wrong_fan)
    assert_array_equal(params["layers.0.bias"], np.full(FAN_OUT, 0.25))
    assert spec.to_dict()["layers"][0]["init"]["bias"] == {"type": "constant", "val": 0.25}
    assert manual.parse_spec(spec.to_dict()) == spec


def test_spec_init_of_weight_only_keeps_default_bias() -> None:
    """Zero weights; the bias still follows nn.Linear's U(-1/sqrt(in), 1/sqrt(in))."""
    params = manual.initial_parameters(_wide_spec({"weight": {"type": "zeros"}}))
    assert_array_equal(params["layers.0.weight"], np.zeros(SHAPE))
    bias, want = params["layers.0.bias"], torch_linear(SEED).bias.detach().numpy()
    bound = 1 / math.sqrt(FAN_IN)
    assert bias.shape == want.shape == (FAN_OUT,)
    assert np.abs(bias).max() <= bound and np.abs(bias).max() > 0.95 * bound
    assert ks_statistic(bias, want) < ks_critical(bias.size, want.size)


def test_both_engines_get_the_same_initialized_weights() -> None:
    spec = _spec({"weight": {"type": "orthogonal", "gain": 2.0}, "bias": {"type": "zeros"}})
    params = manual.initial_parameters(spec)
    net: Any = mirror.build(spec)
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
