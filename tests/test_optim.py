"""Optimizers and schedules: every registry entry x variant x dtype, step by step against torch."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from manual.optim import OPTIMIZERS, SCHEDULES
from manual.optim.schedules import rates
from reference.core.engine import resolve
from reference.training.optimizers import PARAM_SHAPES, compare_optimizer

DTYPES = ("float32", "float64")
STEPS = 6

OPTIM_CASES = [(o.name, v, d) for o in OPTIMIZERS.values() for v in o.variants for d in DTYPES]
SCHEDULE_CASES = [(s.name, v, d) for s in SCHEDULES.values() for v in s.variants for d in DTYPES]


def _id(case: tuple) -> str:
    name, options, dtype = case
    return f"{name}({','.join(f'{k}={v}' for k, v in options.items())})-{dtype}"


@pytest.mark.parametrize("case", OPTIM_CASES, ids=[_id(c) for c in OPTIM_CASES])
def test_optimizer_matches_torch_step_by_step(case, backprop_record) -> None:
    name, options, dtype = case
    record = compare_optimizer(name, options, dtype, steps=STEPS, seed=5)
    backprop_record(record)
    assert record.passed, record.describe()
    params = [t for t in record.tensors if ": state " not in t.name]
    assert len(params) == STEPS * len(PARAM_SHAPES)


@pytest.mark.parametrize("case", SCHEDULE_CASES, ids=[_id(c) for c in SCHEDULE_CASES])
def test_schedule_matches_torch_inside_the_optimizer(case, backprop_record) -> None:
    name, options, dtype = case
    record = compare_optimizer("sgd", {"lr": 0.1, "momentum": 0.9}, dtype, steps=10, seed=2,
                               schedule=name, schedule_options=options)
    backprop_record(record)
    assert record.passed, record.describe()
    assert record.tensor("step 10: lr").max_abs_error == 0


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_rates_are_torchs_numbers_exactly(name: str) -> None:
    info = SCHEDULES[name]
    for options in info.variants:
        param = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([param], lr=0.3)
        scheduler = resolve(info.torch)(optimizer, **options)
        want = []
        for _ in range(25):
            want.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        assert info.rates(0.3, 25, options) == want


def test_cosine_recursion_is_not_the_closed_form() -> None:
    """Why the schedules repeat torch's recursion: the closed form differs in the last bits."""
    got = rates("cosine", 0.1, 300, T_max=200)
    closed = [0.5 * 0.1 * (1 + math.cos(math.pi * e / 200)) for e in range(300)]
    assert any(g != c for g, c in zip(got, closed, strict=True))
    assert max(abs(g - c) for g, c in zip(got, closed, strict=True)) < 1e-12


def test_every_option_is_reached_by_some_variant() -> None:
    for info in OPTIMIZERS.values():
        varied = {k for v in info.variants for k in v}
        assert varied == set(info.options), info.name
        assert set(info.defaults()) == set(info.options)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_defaults_are_torchs(name: str) -> None:
    import inspect


    info = OPTIMIZERS[name]
    signature = inspect.signature(resolve(info.torch).__init__)
    for option, declared in info.options.items():
        assert signature.parameters[option].default == declared.default, option


def test_sgd_momentum_buffer_starts_at_the_first_gradient() -> None:
    """Independent math: with dampening 0.5 the first step is the full gradient, not half."""
    from manual.optim import sgd

    param, grad = np.ones(3), np.array([1.0, -2.0, 4.0])
    new, state = sgd(param, grad, {}, lr=0.1, momentum=0.9, dampening=0.5)
    np.testing.assert_array_equal(state["momentum_buffer"], grad)
    np.testing.assert_allclose(new, param - 0.1 * grad, rtol=0, atol=1e-15)


def test_adam_first_step_is_lr_times_sign() -> None:
    """Independent math: bias-corrected, Adam's first step is -lr * g / (|g| + eps')."""
    from manual.optim import adam

    grad = np.array([0.5, -3.0, 1e-3])
    new, _ = adam(np.zeros(3), grad, {}, lr=0.01, eps=0.0)
    np.testing.assert_allclose(new, -0.01 * np.sign(grad), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_steps_keep_the_dtype(dtype: str) -> None:
    for info in OPTIMIZERS.values():
        for options in info.variants:
            param = np.ones((2, 3), dtype)
            new, state = info.step(param, np.full((2, 3), 0.5, dtype), {}, **options)
            assert new.dtype == np.dtype(dtype), info.name
            for key, buffer in state.items():
                want = np.float32 if key == "step" else np.dtype(dtype)
                assert buffer.dtype == want, (info.name, key)


@pytest.mark.parametrize(("name", "options", "message"), [
    ("adam", {"betas": (0.9, 1.5)}, "adam: betas must both lie in [0, 1)"),
    ("adam", {"momentum": 0.9}, "unknown option 'momentum'"),
    ("sgd", {"lr": -1.0}, "sgd: lr must lie in"),
    ("rmsprop", {"centered": 1}, "centered must be true or false"),
])
def test_bad_options_are_one_line_errors(name: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        compare_optimizer(name, options)


def test_unknown_optimizer_and_schedule_are_named() -> None:
    with pytest.raises(ValueError, match="unknown optimizer 'lion'"):
        compare_optimizer("lion")
    with pytest.raises(ValueError, match="schedule cosine: missing option 'T_max'"):
        compare_optimizer("sgd", schedule="cosine")


def test_a_wrong_step_is_caught_and_named() -> None:
    """The check can fail: a step that ignores momentum parts at the first momentum tensor."""
    import dataclasses

    from manual.optim import sgd

    def no_momentum(param, grad, state, **options):
        new, state = sgd(param, grad, state, **{**options, "momentum": 0})
        return new, {"momentum_buffer": grad}

    broken = dataclasses.replace(OPTIMIZERS["sgd"], step=no_momentum)
    record = compare_optimizer(broken, {"lr": 0.1, "momentum": 0.9}, steps=3)
    assert not record.passed
    assert record.first_divergence == "step 2: layers.0.weight"


def test_record_round_trips_through_json() -> None:
    from reference.core.records import ComparisonRecord

    record = compare_optimizer("adam", {"lr": 0.01, "amsgrad": True}, "float32", steps=2)
    again = ComparisonRecord.from_json(record.to_json())
    assert again == ComparisonRecord.from_json(again.to_json())
    assert again.tensor("step 2: state layers.0.weight.max_exp_avg_sq").passed
