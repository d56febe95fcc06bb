"""Negative tests of the two excuses: float32 rounding within a measured bound, kink straddles.

Each excuse is tested from the failing side: an error injected into one tensor of the manual
engine's run, 1.5 times the bound that the rounding module *should* measure (computed here from
PyTorch's own float32 and float64 runs), is refused and the case fails, unexcused; 0.9 of it
is excused. A kink straddle excuses nothing when no pre-activation straddles a kink, when the
op has no kink, or when a forward tensor already disagrees.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import manual
from manual.data import Data
from manual.spec import Spec
from reference.conformance.matrix import mlp_spec, network_data, network_spec
from reference.conformance.protocols import check_single, run_protocol
from reference.core import compare, rounding
from reference.core.compare import compare_network, run_tensors
from reference.core.records import ComparisonRecord, TensorComparison
from reference.core.rounding import rounding_excuse
from reference.core.run import Run, run_torch
from reference.fuzz import campaign as fuzz
from reference.fuzz.campaign import Outcome, kink_straddle, run_case
from reference.fuzz.strategies import FuzzCase

TENSOR = "backward: layers.4.weight"


@pytest.fixture(scope="module")
def case() -> tuple[Spec, Data]:
    """A float32 MLP whose output nearly cancels against its target: inputs 64 + N(0, 1), the
    target the float64 output plus noise of 0.01. The residual is then as small as the
    output's float32 rounding (about 64 x 2^-24 per term), so the output weight gradient's
    rounding (PyTorch's own, whatever the BLAS kernel) outweighs atol + rtol x scale several
    times over, and the bound's rounding term, and its factor 4, decide."""
    spec = mlp_spec([4, 8, 8, 3], "identity", "mse", "float32")
    rng = np.random.default_rng(0)
    x = (64.0 + rng.standard_normal((512, 4))).astype(np.float32).astype(np.float64)
    params = {k: v.astype(np.float64) for k, v in manual.initial_parameters(spec).items()}
    out = x
    for i in (0, 2, 4):  # the linear layers; the identities between them change nothing
        out = out @ params[f"layers.{i}.weight"].T + params[f"layers.{i}.bias"]
    return spec, manual.make_data(spec, x, out + 0.01 * rng.standard_normal(out.shape))


@pytest.fixture(scope="module")
def spread_case() -> tuple[Spec, Data]:
    """A float64 MLP on inputs and targets of scale 8: its output weight gradient spans
    magnitudes, so half the scale allowance is far outside the smallest element's own."""
    spec = mlp_spec([4, 8, 8, 3], "identity", "mse", "float64")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((512, 4)) * 8, rng.standard_normal((512, 3)) * 8
    return spec, manual.make_data(spec, x, y)


def measured_bound(spec: Spec, data: Data, name: str) -> tuple[float, np.ndarray]:
    """atol + rtol max|r64| + 4 max|r32 - r64| for tensor ``name``, from PyTorch's runs, and r32.

    The module under test is not used: this is the bound its docstring states.
    """
    params = manual.initial_parameters(spec)
    r32 = run_torch(spec, data, params=params)
    wide = dataclasses.replace(spec, dtype="float64")
    wide_data = Data(data.x.astype(np.float64), data.y.astype(np.float64), {})
    r64 = run_torch(wide, wide_data, params={k: v.astype(np.float64) for k, v in params.items()},
                    dloss=np.asarray(r32.dloss, dtype=np.float64))
    want32 = np.asarray(run_tensors(spec, r32)[name][1], dtype=np.float64)
    want64 = np.asarray(run_tensors(wide, r64)[name][1], dtype=np.float64)
    tolerance = compare.spec_tolerance(spec, "backward")
    bound = (tolerance.atol + tolerance.rtol * float(np.max(np.abs(want64)))
             + 4.0 * float(np.max(np.abs(want32 - want64))))
    return bound, want32


def smallest(values: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(int(np.argmin(np.abs(values))), values.shape))


@pytest.fixture
def inject(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, tuple[int, ...], float], None]:
    """Add ``delta`` to element ``index`` of one parameter gradient of every manual run."""
    def apply(name: str, index: tuple[int, ...], delta: float) -> None:
        original = compare.run_manual

        def run_manual(*args: Any, **kwargs: Any) -> Run:
            run = original(*args, **kwargs)
            key = name.removeprefix("backward: ")
            grad = run.param_grads[key].copy()
            grad[index] = grad[index] + grad.dtype.type(delta)
            run.param_grads[key] = grad
            return run

        monkeypatch.setattr(compare, "run_manual", run_manual)
    return apply


def test_the_clean_float32_case_passes(case: tuple[Spec, Data]) -> None:
    assert check_single(*case).passed


def test_the_bound_is_mostly_rounding_here(case: tuple[Spec, Data]) -> None:
    bound, want = measured_bound(*case, TENSOR)
    tolerance = compare.spec_tolerance(case[0], "backward")
    assigned = tolerance.atol + tolerance.rtol * float(np.max(np.abs(want)))
    assert bound - assigned > 2 * assigned  # the rounding term is the larger, twice over


def test_an_error_of_one_and_a_half_bounds_is_refused(
        case: tuple[Spec, Data], inject: Callable[[str, tuple[int, ...], float], None]) -> None:
    spec, data = case
    bound, want = measured_bound(spec, data, TENSOR)
    index = smallest(want)
    inject(TENSOR, index, 1.5 * bound)
    record = check_single(spec, data)
    assert not record.passed, "an error of 1.5 rounding bounds was excused"
    assert record.first_divergence is not None
    failing = record.tensor(TENSOR)
    assert not failing.passed and failing.worst_index == list(index)
    assert "rounding" not in failing.problem
    full = compare_network(spec, data, keep_values=True)
    assert rounding_excuse(spec, data, full, full) == ""
    outcome = run_case(FuzzCase(spec, data, "single"))
    assert outcome.failed and outcome.rounding == "" and outcome.kink == ""


def test_an_error_within_the_measured_bound_is_excused_with_its_numbers(
        case: tuple[Spec, Data], inject: Callable[[str, tuple[int, ...], float], None]) -> None:
    spec, data = case
    bound, want = measured_bound(spec, data, TENSOR)
    index = smallest(want)
    tolerance = compare.spec_tolerance(spec, "backward")
    delta = 0.9 * bound
    # the elementwise rule alone refuses it: only the measured bound can excuse it
    assert delta > 1.01 * (tolerance.atol + tolerance.rtol * abs(want[index]))
    inject(TENSOR, index, delta)
    assert not compare_network(spec, data).passed
    record = check_single(spec, data)
    assert record.passed
    excused = record.tensor(TENSOR)
    assert excused.problem.startswith("within the measured float32 rounding bound")
    assert 0.85 < excused.tolerance_ratio < 0.95  # the error / the bound applied
    outcome = run_case(FuzzCase(spec, data, "single"))
    assert not outcome.failed  # check_single applied the bound itself
    full = compare_network(spec, data, keep_values=True)
    assert rounding_excuse(spec, data, full, full).startswith(f"{TENSOR}: error ")


def test_a_float64_case_is_never_excused_as_rounding(
        spread_case: tuple[Spec, Data],
        inject: Callable[[str, tuple[int, ...], float], None]) -> None:
    """In float64 the bound would be atol + rtol max|r| (PyTorch's float64 has no rounding to
    measure against itself): an error at the smallest element, inside that but outside the
    elementwise rule, must still fail."""
    spec, data = spread_case
    want = np.asarray(compare_network(spec, data).tensor(TENSOR).reference)
    index = smallest(want)
    tolerance = compare.spec_tolerance(spec, "backward")
    scale_allowance = tolerance.atol + tolerance.rtol * float(np.max(np.abs(want)))
    delta = 0.5 * scale_allowance
    assert delta > 2 * (tolerance.atol + tolerance.rtol * abs(want[index]))
    inject(TENSOR, index, delta)
    record = compare_network(spec, data, keep_values=True)
    assert not record.passed
    assert rounding.rounding_bounds(spec, data, record, record) is None
    assert not check_single(spec, data).passed


def test_a_shape_problem_is_never_excused_as_rounding(
        case: tuple[Spec, Data], monkeypatch: pytest.MonkeyPatch) -> None:
    """Right values in a (1, out) bias gradient: a shape problem, whatever the bound."""
    spec, data = case
    original = compare.run_manual

    def run_manual(*args: Any, **kwargs: Any) -> Run:
        run = original(*args, **kwargs)
        run.param_grads["layers.0.bias"] = run.param_grads["layers.0.bias"][None, :]
        return run

    monkeypatch.setattr(compare, "run_manual", run_manual)
    record = check_single(spec, data)
    assert not record.passed
    assert record.tensor("backward: layers.0.bias").problem.startswith("shape (1, 8) != ")


def test_protocol_tensors_get_the_multiple_of_the_bound_they_carry_and_no_more(
        case: tuple[Spec, Data], monkeypatch: pytest.MonkeyPatch) -> None:
    """Two accumulated passes carry twice one pass's rounding: an error of 3 bounds is refused."""
    spec, data = case
    bound, want = measured_bound(spec, data, TENSOR)
    index = smallest(want)
    from manual.module import Layer

    original = Layer.backward

    def backward(self: Layer, dy: Any) -> Any:
        out = original(self, dy)
        if "weight" in self.grads and self.grads["weight"].shape == want.shape:
            self.grads["weight"][index] += self.grads["weight"].dtype.type(1.5 * bound)
        return out

    monkeypatch.setattr(Layer, "backward", backward)
    record = run_protocol("accumulate", spec, data)
    assert not record.passed
    full = compare_network(spec, data, keep_values=True)
    assert rounding_excuse(spec, data, full, record) == ""


# ---- kink straddles -----------------------------------------------------------------------

def _tensor(name: str, manual_values: list, reference_values: list, passed: bool = True
            ) -> TensorComparison:
    return TensorComparison(name=name, shape=[1, len(manual_values[0])], dtype="float32",
                            max_abs_error=0.0, max_rel_error=0.0, tolerance_ratio=0.0,
                            worst_index=[], rtol=1.3e-6, atol=1e-5, passed=passed,
                            manual=manual_values, reference=reference_values)


def _record(*tensors: TensorComparison) -> ComparisonRecord:
    return ComparisonRecord(subject="n", kind="network", dtype="float32", seed=0, passed=False,
                            first_divergence="backward: layers.1", tolerance_reason="default",
                            tensors=list(tensors))


def _spec(activation: str, loss: str = "mse") -> Spec:
    return manual.parse_spec({"input_shape": [1], "dtype": "float32", "loss": {"type": loss},
                              "layers": [{"type": "linear", "out_features": 1},
                                         {"type": activation}]})


def test_a_straddle_excuses_nothing_once_a_forward_tensor_disagrees() -> None:
    spec = _spec("relu")
    data = manual.make_data(spec, [[1.0]], [[0.0]])
    straddling = _tensor("forward: layers.0", [[1e-8]], [[-1e-8]])
    assert kink_straddle(spec, data, _record(straddling, _tensor(
        "forward: layers.1", [[1e-8]], [[0.0]]))) == "layers.1 (relu)"
    assert kink_straddle(spec, data, _record(straddling, _tensor(
        "forward: layers.1", [[1e-8]], [[0.0]], passed=False))) == ""
    assert kink_straddle(spec, data, _record(straddling, _tensor(
        "forward: loss", [[1.0]], [[2.0]], passed=False))) == ""


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softplus", "silu"])
def test_an_op_without_a_kink_excuses_no_sign_change(activation: str) -> None:
    spec = _spec(activation)
    data = manual.make_data(spec, [[1.0]], [[0.0]])
    record = _record(_tensor("forward: layers.0", [[1e-8]], [[-1e-8]]))
    assert kink_straddle(spec, data, record) == ""


@pytest.mark.parametrize(("kink", "manual_z", "reference_z", "excused"), [
    (1.0, 1.0 + 1e-7, 1.0 - 1e-7, True),    # hardtanh's kink at max_val = 1
    (1.0, 1e-8, -1e-8, False),             # a sign change of 0 is no kink of hardtanh
    (1.0, 0.9, 0.9 + 1e-7, False),
])
def test_a_straddle_counts_only_at_the_ops_own_kinks(kink: float, manual_z: float,
                                                     reference_z: float, excused: bool) -> None:
    spec = _spec("hardtanh")
    data = manual.make_data(spec, [[1.0]], [[0.0]])
    record = _record(_tensor("forward: layers.0", [[manual_z]], [[reference_z]]))
    assert bool(kink_straddle(spec, data, record)) is excused


def test_a_real_error_in_a_relu_network_is_not_excused_as_a_kink(
        inject: Callable[[str, tuple[int, ...], float], None]) -> None:
    """Identical pre-activations straddle nothing: a wrong gradient fails, unexcused."""
    spec = network_spec("relu", "mse", "float32")
    data = network_data(spec)
    inject("backward: layers.0.weight", (1, 2), 1e-2)
    outcome = run_case(FuzzCase(spec, data, "single"))
    assert outcome.failed and outcome.kink == "" and outcome.rounding == ""


# ---- Outcome.failed -----------------------------------------------------------------------

def _outcomes(record: ComparisonRecord) -> Iterator[tuple[Outcome, bool]]:
    case = FuzzCase(_spec("relu"), manual.make_data(_spec("relu"), [[1.0]], [[0.0]]))
    passed = dataclasses.replace(record, passed=True)
    yield Outcome(case, record), True
    yield Outcome(case, record, kink="layers.1 (relu)"), False
    yield Outcome(case, record, rounding="r"), False
    yield Outcome(case, passed), False
    yield Outcome(case, None, error="ValueError: boom"), True
    yield Outcome(case, passed, error="ValueError: boom", kink="k", rounding="r"), True


def test_outcome_failed_is_a_failure_unless_excused_and_an_error_always() -> None:
    for outcome, failed in _outcomes(_record(_tensor("forward: layers.0", [[1.0]], [[1.0]],
                                                     passed=False))):
        assert outcome.failed is failed, outcome


def test_fuzz_module_uses_the_excuses_it_names() -> None:
    assert fuzz.rounding_excuse is rounding.rounding_excuse
