"""Extreme inputs and kinks: stable forms stay finite, and conventions at kinks match PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from manual.registry import ACTIVATIONS, LOSSES
from reference.conformance.protocols import op_kinks
from reference.core.compare import compare_op

# The magnitudes the stable forms must survive: exp(1e4) overflows float64 and
# exp(80) is within a factor 10^4 of float32's largest number.
EXTREME = {"float64": 1e4, "float32": 80.0}
STABLE_ACTIVATIONS = ["sigmoid", "tanh", "softplus", "logsigmoid", "silu", "mish", "gelu", "elu",
                      "selu", "celu", "softsign", "softmax", "log_softmax", "hardswish"]
STABLE_LOSSES = ["bce_with_logits", "cross_entropy"]


def extreme_input(dtype: str) -> np.ndarray:
    big = EXTREME[dtype]
    row = np.array([-big, -big / 2, -big / 8, -30.0, -1.0, 0.5, 30.0, big / 8, big / 2, big])
    return np.stack([row, row[::-1], np.roll(row, 3), -np.roll(row, 5)]).astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", STABLE_ACTIVATIONS + STABLE_LOSSES)
def test_stable_forms_agree_and_stay_finite_at_extreme_inputs(name: str, dtype: str) -> None:
    op = {**ACTIVATIONS, **LOSSES}[name]
    for options in op.variants:
        for kind in op.targets or (None,):
            with np.errstate(over="raise", invalid="raise", divide="raise"):
                record = compare_op(op, dtype, options, x=extreme_input(dtype), target_kind=kind)
            assert record.passed, record.describe()
            for tensor in record.tensors:
                assert np.all(np.isfinite(tensor.manual)), f"{tensor.name} is not finite"


KINKED = [(op, options) for op in ACTIVATIONS.values() for options in op.variants
          if op.domain.kinks({**op.defaults(), **options})]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("op", "options"), KINKED,
                         ids=[f"{op.name}{options or ''}" for op, options in KINKED])
def test_derivative_at_each_kink_follows_pytorchs_convention(op, options, dtype: str) -> None:
    record = op_kinks(op, dtype, options)
    assert record.passed, record.describe()


def test_relu_derivative_at_zero_is_zero() -> None:
    from manual.ops.piecewise import relu_backward, relu_forward

    _, cache = relu_forward(np.zeros(3))
    np.testing.assert_array_equal(relu_backward(np.ones(3), cache), np.zeros(3))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ops_preserve_dtype(dtype: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(4, 3)).astype(dtype)
    for op in ACTIVATIONS.values():
        for options in op.variants:
            y, cache = op.forward(x.copy(), **options)
            dx = op.backward(rng.standard_normal(y.shape).astype(dtype), cache)
            assert (y.dtype, dx.dtype) == (np.dtype(dtype),) * 2, op.name


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bce_at_saturated_probabilities_matches_pytorchs_clamps(dtype: str) -> None:
    """x in {0, 1} (a saturated sigmoid): log clamped at -100, gradient denominator at 1e-12."""
    x = np.array([[0.0, 1.0, 0.5, 1e-30], [1.0, 0.0, 0.25, 1.0]])
    with np.errstate(all="raise"):
        record = compare_op(LOSSES["bce"], dtype, {"reduction": "sum"}, x=x)
    assert record.passed, record.describe()
