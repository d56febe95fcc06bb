"""The differential core: comparisons, records and naming the place where engines part."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import manual
from manual.registry import ACTIVATIONS, LOSSES, Tolerance
from reference.conformance.matrix import network_data, network_spec
from reference.core.compare import compare_arrays, compare_network
from reference.core.records import ComparisonRecord

TOL = Tolerance(1e-7, 1e-7, "test")


def test_compare_arrays_follows_assert_close_rule() -> None:
    want = np.array([1.0, -2.0, 0.0])
    inside = want + np.array([1e-7 + 0.9e-7, 0.0, 0.9e-7])
    outside = want + np.array([0.0, 0.0, 1.1e-7])
    assert compare_arrays("t", inside, want, TOL).passed
    result = compare_arrays("t", outside, want, TOL)
    assert not result.passed and result.worst_index == [2]
    assert result.max_abs_error == pytest.approx(1.1e-7)
    assert result.max_rel_error == math.inf  # non-zero error where the reference is zero


def test_compare_arrays_checks_shape_then_dtype() -> None:
    want = np.zeros((2, 3))
    assert "shape" in compare_arrays("t", np.zeros((3, 2)), want, TOL).problem
    wrong_dtype = compare_arrays("t", np.zeros((2, 3), np.float32), want, TOL)
    assert not wrong_dtype.passed and "dtype float32" in wrong_dtype.problem


def test_compare_arrays_matches_infinities_and_nan_only_when_asked() -> None:
    values = np.array([np.nan, np.inf, -np.inf, 1.0])
    both_nan = compare_arrays("t", values, values.copy(), TOL)
    assert not both_nan.passed and "NaN in both engines" in both_nan.problem
    assert both_nan.max_rel_error == math.inf
    assert compare_arrays("t", values, values.copy(), TOL, equal_nan=True).passed
    assert compare_arrays("t", values[1:], values[1:].copy(), TOL).passed
    assert not compare_arrays("t", np.array([np.inf]), np.array([-np.inf]), TOL).passed
    assert not compare_arrays("t", np.array([np.nan]), np.array([1.0]), TOL).passed


def test_record_round_trips_through_json_with_non_finite_numbers() -> None:
    spec = network_spec("relu", "mse", "float64")
    record = compare_network(spec, network_data(spec))
    record.tensors[0].max_rel_error = math.inf
    record.tensors[1].manual = [[math.nan, -math.inf]]
    text = record.to_json()
    assert "NaN" not in text and "Infinity" not in text
    again = ComparisonRecord.from_json(text)
    assert again.tensors[0].max_rel_error == math.inf
    assert math.isnan(again.tensors[1].manual[0][0]) and again.tensors[1].manual[0][1] == -math.inf
    assert again.to_json() == text


def test_record_names_every_parameter_gradient() -> None:
    spec = network_spec("tanh", "cross_entropy", "float64")
    record = compare_network(spec, network_data(spec))
    names = {t.name for t in record.tensors}
    for i in (0, 2, 4):
        assert {f"backward: layers.{i}.weight", f"backward: layers.{i}.bias"} <= names
    assert {"forward: loss", "backward: input", "backward: output"} <= names


def _broken(monkeypatch: pytest.MonkeyPatch, name: str, backward=None, forward=None) -> None:
    registry = ACTIVATIONS if name in ACTIVATIONS else LOSSES
    op = registry[name]
    monkeypatch.setitem(registry, name, dataclasses.replace(
        op, backward=backward or op.backward, forward=forward or op.forward))  # type: ignore[index]


def test_a_wrong_backward_is_located_at_its_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = manual.parse_spec({
        "input_shape": [3], "dtype": "float64", "seed": 1, "loss": {"type": "mse"},
        "layers": [{"type": "linear", "out_features": 4}, {"type": "tanh"},
                   {"type": "linear", "out_features": 4}, {"type": "sigmoid"},
                   {"type": "linear", "out_features": 2}],
    })
    data = network_data(spec)
    assert compare_network(spec, data).passed
    good = ACTIVATIONS["sigmoid"].backward
    _broken(monkeypatch, "sigmoid", backward=lambda dy, cache: 1.01 * good(dy, cache))
    record = compare_network(spec, data)
    assert not record.passed
    assert record.first_divergence == "backward: layers.3 (sigmoid)"
    assert record.tensor("backward: layers.4.weight").passed  # above the bug: still right
    assert not record.tensor("backward: layers.2.weight").passed


def test_a_wrong_forward_is_located_at_its_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = network_spec("softsign", "mse", "float32")
    good = ACTIVATIONS["softsign"].forward

    def shifted(x):
        y, cache = good(x)
        return y + np.float32(1e-3), cache

    _broken(monkeypatch, "softsign", forward=shifted)
    record = compare_network(spec, network_data(spec))
    assert record.first_divergence == "forward: layers.1 (softsign)"


def test_a_wrong_loss_gradient_is_located_at_the_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = network_spec("relu", "huber", "float64")
    good = LOSSES["huber"].backward
    _broken(monkeypatch, "huber", backward=lambda g, cache: -good(g, cache))
    record = compare_network(spec, network_data(spec))
    assert record.first_divergence == "backward: loss (huber)"


def test_float64_leaking_into_a_float32_run_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = network_spec("tanh", "mse", "float32")
    good = ACTIVATIONS["tanh"].backward
    _broken(monkeypatch, "tanh", backward=lambda dy, cache: good(dy, cache).astype(np.float64))
    record = compare_network(spec, network_data(spec))
    assert not record.passed
    assert any("dtype float64" in t.problem for t in record.failures)


def test_reduction_none_backpropagates_a_random_upstream_gradient() -> None:
    spec = network_spec("relu", "mse", "float64", loss_options={"reduction": "none"})
    record = compare_network(spec, network_data(spec))
    assert record.passed
    upstream = np.asarray(record.tensor("backward: output").reference)
    assert len(np.unique(np.round(upstream, 12))) > 3  # not all ones


def test_gradients_accumulate_across_backward_passes_until_zero_grad() -> None:
    """Like torch's ``.grad``: two backward passes add up (x + x == 2x exactly)."""
    spec = network_spec("tanh", "mse", "float64")
    data = network_data(spec)
    once, twice = manual.build(spec), manual.build(spec)
    for net, passes in ((once, 1), (twice, 2)):
        for _ in range(passes):
            net.loss(net.forward(data.x), data.y)
            net.backward()
    for name, grad in twice.named_grads().items():
        np.testing.assert_array_equal(grad, 2 * once.named_grads()[name])
    twice.zero_grad()
    assert all(not g.any() for g in twice.named_grads().values())


def test_a_users_own_op_is_checked_without_touching_the_registry() -> None:
    """The README's example: an OpInfo built on the spot, against torch's gelu(tanh)."""
    from manual.registry import OpInfo
    from reference.core.compare import compare_op

    def gelu_pair(c):
        def forward(x, approximate="tanh"):
            return 0.5 * x * (1 + np.tanh(c * (x + 0.044715 * x**3))), x

        def backward(dy, x):
            t = np.tanh(c * (x + 0.044715 * x**3))
            return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x**2))

        return OpInfo(name="my_gelu", forward=forward, backward=backward,
                      torch="torch.nn.functional.gelu")

    mine = gelu_pair(math.sqrt(2 / math.pi))
    for dtype in ("float32", "float64"):
        assert compare_op(mine, dtype, {"approximate": "tanh"}).passed
    # Against the exact gelu the same pair must fail, and say where first.
    assert compare_op(mine, "float64", {}).first_divergence == "forward: output"
    # A NumPy float64 scalar (unlike a Python float) upcasts a float32 array (NEP 50):
    # the classic silent float64 leak, caught by the dtype check.
    leaky = compare_op(gelu_pair(np.sqrt(2 / np.pi)), "float32", {"approximate": "tanh"})
    assert "dtype float64 != reference float32" in leaky.tensors[0].problem
