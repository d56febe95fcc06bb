"""The public strategies draw what they promise: bounds, compatible losses, valid data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from manual.registry import ACTIVATIONS, LOSSES, OPS, loss_info
from manual.spec import Spec
from reference.core.compare import compare_op
from reference.fuzz import ops as fuzz_ops
from reference.fuzz import strategies as hst
from reference.fuzz.campaign import fixed_constants

FIND = settings(max_examples=200, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck), phases=(Phase.generate,))


@given(spec=hst.specs())
def test_specs_stay_in_bounds(spec: Spec) -> None:
    linear = [layer for layer in spec.layers if layer.type == "linear"]
    assert 1 <= len(linear) <= 6
    assert all(1 <= layer.options["out_features"] <= 64 for layer in linear)
    assert 1 <= spec.input_shape[0] <= 64
    assert spec.dtype in hst.DTYPES
    assert spec.layers[-1].type in hst.compatible_activations(spec.loss.type) or \
        not loss_info(LOSSES[spec.loss.type]).adapter


@pytest.mark.parametrize("loss", ["bce", "nll", "kl_div"])
@given(data=st.data())
def test_constrained_losses_get_a_compatible_last_layer(loss: str, data: st.DataObject) -> None:
    spec = data.draw(hst.specs(losses=(loss,)))
    low, high = ACTIVATIONS[spec.layers[-1].type].domain.outputs
    want_low, want_high = ACTIVATIONS[loss_info(LOSSES[loss]).adapter].domain.outputs
    assert want_low <= low and high <= want_high


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@given(data=st.data())
def test_include_puts_the_op_in_the_spec(name: str, data: st.DataObject) -> None:
    spec = data.draw(hst.specs(include=(name,), max_depth=2, max_width=4))
    assert name in [layer.type for layer in spec.layers]


@pytest.mark.parametrize("name", sorted(OPS))
@given(data=st.data())
def test_drawn_options_pass_validation(name: str, data: st.DataObject) -> None:
    options = data.draw(hst.op_options(name))
    for key, value in options.items():
        assert OPS[name].options[key].check(value) is None


@given(data=st.data())
def test_datasets_respect_the_loss(data: st.DataObject) -> None:
    spec = data.draw(hst.specs(max_width=6))
    batch = data.draw(hst.datasets(spec, max_batch=5))
    assert batch.x.dtype == np.dtype(spec.dtype) and batch.x.shape[1] == spec.input_shape[0]
    kinds = LOSSES[spec.loss.type].targets
    if batch.y.dtype.kind == "i":
        assert "class_index" in kinds
        assert batch.y.min() >= 0 and batch.y.max() < spec.output_width


@pytest.mark.parametrize("dtype", hst.DTYPES)
@given(data=st.data())
def test_extreme_mode_reaches_the_limit_only_for_stable_ops(dtype: str, data: st.DataObject
                                                            ) -> None:
    case = data.draw(fuzz_ops.op_cases(extreme=True, dtypes=(dtype,)))
    assert case.op in fuzz_ops.stable_ops()
    shifted = OPS[case.op].domain.shift_invariant
    offset = fuzz_ops.EXTREME_OFFSET[dtype] if shifted else 0.0
    assert np.abs(case.x).max(initial=0) <= fuzz_ops.EXTREME_LIMIT[dtype] + offset


@pytest.mark.parametrize("dtype", hst.DTYPES)
def test_extreme_mode_offsets_shift_invariant_rows_far_past_exps_overflow(dtype: str) -> None:
    big = fuzz_ops.EXTREME_OFFSET[dtype]
    with fixed_constants():
        case = find(fuzz_ops.op_cases(ops=("log_softmax",), extreme=True, dtypes=(dtype,)),
                    lambda c: np.abs(c.x).max(initial=0) >= big / 2, settings=FIND)
    assert np.abs(case.x).max() <= fuzz_ops.EXTREME_LIMIT[dtype] + big


@pytest.mark.parametrize("op", ["log_softmax", "cross_entropy"])
def test_log_softmax_keeps_its_precision_at_large_logits_in_float32(op: str) -> None:
    # (x - m) - log s, as PyTorch: x - (m + log s) rounds to the ulp of m (6e-5 at 1000),
    # 2.8x the tolerance here before manual.numerics.log_softmax.
    x = np.array([[1000.0, 999.0, -5.0], [2000.5, 2001.0, 1999.0]], dtype=np.float32)
    target = np.array([1, 0]) if op == "cross_entropy" else None
    record = compare_op(op, "float32", {}, x=x, target=target)
    assert record.passed, record.first_divergence


def test_extreme_mode_refuses_bounded_domains() -> None:
    with pytest.raises(ValueError, match="bce"):
        fuzz_ops.op_inputs("bce", "float64", (2, 2), extreme=True)


def test_stable_ops_exclude_probability_inputs() -> None:
    assert {"bce", "nll", "kl_div"}.isdisjoint(fuzz_ops.stable_ops())
    assert {"sigmoid", "softplus", "cross_entropy", "bce_with_logits"} <= set(fuzz_ops.stable_ops())


def test_canary_pytorch_celu_backward_is_inexact_in_float64() -> None:
    """Why celu's entry (Oracle.exact) has the fuzzer draw alpha from powers of two.

    If PyTorch fixes its float64 celu backward, this fails: lift the restriction.
    """
    import torch

    x = torch.linspace(-8, 0, 200, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.celu(x, alpha=0.3).sum().backward()
    exact = torch.exp(x.detach() / 0.3)
    assert x.grad is not None
    assert float((x.grad / exact - 1).abs().max()) > 1e-7  # float64 would give ~1e-16
    y = torch.linspace(-8, 0, 200, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.celu(y, alpha=0.5).sum().backward()
    assert y.grad is not None
    assert float((y.grad / torch.exp(y.detach() / 0.5) - 1).abs().max()) < 1e-14


@given(options=hst.op_options("celu"))
def test_celu_alpha_has_an_exact_reciprocal(options: dict) -> None:
    alpha = options.get("alpha", 1.0)
    assert np.float32(1 / alpha) == 1 / alpha
