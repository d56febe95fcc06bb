"""Lockstep training on real data, and the datasets it uses."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from manual.optim import OPTIMIZERS, adam
from manual.parse import parse_spec
from reference.conformance.matrix import mlp_spec
from reference.training.datasets import LOADERS, load_dataset
from reference.training.lockstep import TrainingRecord, train_lockstep


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _digits_spec(dtype: str):
    return mlp_spec([64, 32, 32, 10], "relu", "cross_entropy", dtype, seed=1, name="digits")


def test_float64_adam_on_digits_stays_within_1e_10(digits) -> None:
    record = train_lockstep(_digits_spec("float64"), digits, "adam", {"lr": 1e-3}, steps=200,
                            batch_size=32)
    assert record.passed
    assert len(record.param_diff) == 200
    assert record.max_param_diff < 1e-10
    np.testing.assert_allclose(record.loss_manual, record.loss_torch, rtol=1e-10)
    assert record.loss_manual[-1] < 0.3 * record.loss_manual[0]  # it learns
    assert record.accuracy["manual"] == record.accuracy["torch"]
    assert record.accuracy["manual"]["test"] > 0.8


def test_float32_run_measures_its_drift_from_float64(digits) -> None:
    record = train_lockstep(_digits_spec("float32"), digits, "adam", {"lr": 1e-3}, steps=60,
                            batch_size=32, float64_shadow=True)
    assert record.passed
    assert record.float64_diff is not None and len(record.float64_diff) == 60
    # float32 rounding is visible (well above float64's) but small after 60 steps.
    assert 1e-9 < max(record.float64_diff) < 1e-4
    assert 1e-9 < record.max_param_diff < 1e-4


def test_a_wrong_optimizer_is_caught_at_the_first_step(digits) -> None:
    def no_bias_correction(param, grad, state, **options):
        new, state = adam(param, grad, state, **options)
        count = float(state["step"])
        # undo the bias corrections: step size lr instead of lr / (1 - beta1^t)
        shift = (new - param) * (1 - 0.9**count) / (1 - 0.999**count) ** 0.5
        return param + shift, state

    broken = dataclasses.replace(OPTIMIZERS["adam"], step=no_bias_correction)
    record = train_lockstep(_digits_spec("float64"), digits, broken, {"lr": 1e-3}, steps=3)
    assert record.first_divergence_step == 1
    assert not record.passed


def test_every_optimizer_trains_in_lockstep_on_iris() -> None:
    iris = load_dataset("iris")
    spec = mlp_spec([4, 8, 8, 3], "tanh", "cross_entropy", seed=2)
    for name in OPTIMIZERS:
        record = train_lockstep(spec, iris, name, {"lr": 0.01}, epochs=2, batch_size=16,
                                schedule="cosine", schedule_options={"T_max": 5},
                                clip=1.0)
        assert record.passed, name
        assert record.max_param_diff < 1e-12, name
        assert record.steps == 2 * math.ceil(len(iris.y_train) / 16)


def test_binary_loss_on_moons() -> None:
    moons = load_dataset("moons", seed=3)
    spec = mlp_spec([2, 16, 16, 1], "relu", "bce_with_logits", seed=0)
    record = train_lockstep(spec, moons, "sgd", {"lr": 0.1, "momentum": 0.9}, epochs=5)
    assert record.passed
    assert record.accuracy["torch"]["test"] > 0.8


@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_record_round_trips_with_non_finite_losses(digits) -> None:
    record = train_lockstep(_digits_spec("float64"), digits, "sgd", {"lr": 1e30}, steps=4)
    assert not all(math.isfinite(v) for v in record.loss_manual)
    text = record.to_json()
    assert "NaN" not in text and "Infinity" not in text
    again = TrainingRecord.from_json(text)
    assert again.to_json() == text


def test_spec_must_fit_the_dataset(digits) -> None:
    with pytest.raises(ValueError, match="input_shape is \\[4\\], but dataset digits has 64"):
        train_lockstep(mlp_spec([4, 3], "relu", "cross_entropy"), digits, "sgd", steps=1)
    with pytest.raises(ValueError, match="outputs 3 features, but dataset digits has 10"):
        train_lockstep(mlp_spec([64, 3], "relu", "cross_entropy"), digits, "sgd", steps=1)
    with pytest.raises(ValueError, match="either steps or epochs"):
        train_lockstep(_digits_spec("float64"), digits, "sgd")
    images = parse_spec({"input_shape": [1, 8, 8], "layers": [
        {"type": "flatten"}, {"type": "linear", "out_features": 10}],
        "loss": {"type": "cross_entropy"}})
    with pytest.raises(ValueError, match=r"one graph input of \(N, D\) rows.*\[1, 8, 8\]"):
        train_lockstep(images, digits, "sgd", steps=1)


@pytest.mark.parametrize(("name", "rows", "features", "classes"), [
    ("digits", 1797, 64, 10), ("iris", 150, 4, 3), ("wine", 178, 13, 3),
    ("breast_cancer", 569, 30, 2), ("moons", 400, 2, 2)])
def test_datasets_are_split_and_standardised(name, rows, features, classes) -> None:
    data = load_dataset(name, seed=0)
    assert len(data.y_train) + len(data.y_test) == rows
    assert abs(len(data.y_test) - rows / 4) <= 1
    assert (data.features, data.classes) == (features, classes)
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0, atol=1e-12)
    spread = data.x_train.std(axis=0)
    assert np.all(np.isclose(spread, 1) | (spread == 0))
    again = load_dataset(name, seed=0)
    np.testing.assert_array_equal(again.x_test, data.x_test)
    assert data.astype("float32").x_train.dtype == np.float32


def test_unknown_dataset_is_named() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
    assert set(LOADERS) == {"digits", "iris", "wine", "breast_cancer", "moons"}
