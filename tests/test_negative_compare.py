"""Negative tests of compare_arrays and the tolerance registry: each check refuses what it must.

Every test here is pinned to independent math or to ``torch.testing.assert_close`` and fails
when the check it names is removed or loosened: a shape that merely broadcasts or has the same
elements, a dtype that differs, an error just above ``atol + rtol * |want|``, a relative error
that is not ``|got - want| / |want|``, an infinity of the wrong sign, NaN on both sides.
The tolerances are dyadic (0.5, 0.25) so that "exactly at tolerance" is exact in binary.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import manual
from manual.layers import LAYERS
from manual.registry import DEFAULT_TOLERANCES, OPS, Oracle, Tolerance
from reference.conformance.protocols import unchanged
from reference.core.compare import compare_all, compare_arrays, spec_tolerance
from reference.core.records import TensorComparison

# |got - want| <= 0.5 + 0.25 |want|: at want = 4 the allowance is exactly 1.5.
DYADIC = Tolerance(rtol=0.25, atol=0.5, reason="test")
ZERO = Tolerance(rtol=0.0, atol=0.0, reason="test")

# (got shape, want shape): each broadcasts against the other or holds the same elements.
LOOKALIKE_SHAPES = [
    ((1, 3), (3,)),      # a bias gradient kept with keepdims=True
    ((3,), (1, 3)),
    ((3, 1), (3,)),      # (N, 1) for (N,)
    ((1,), ()),          # a one-element array for a scalar loss
    ((), (1,)),
    ((2, 3), (3, 2)),    # the same six elements, transposed shape
    ((6,), (2, 3)),      # the same six elements, flattened
    ((1, 2, 3), (2, 3)),
]


@pytest.mark.parametrize(("got_shape", "want_shape"), LOOKALIKE_SHAPES,
                         ids=[f"{g}-for-{w}" for g, w in LOOKALIKE_SHAPES])
def test_a_shape_that_broadcasts_or_reshapes_to_the_reference_fails(
        got_shape: tuple[int, ...], want_shape: tuple[int, ...]) -> None:
    want = np.arange(1.0, 1.0 + math.prod(want_shape)).reshape(want_shape)
    got = want.ravel().reshape(got_shape)  # the very same values, in another shape
    result = compare_arrays("t", got, want, DYADIC)
    assert not result.passed
    assert result.problem == f"shape {got.shape} != reference {want.shape}"
    assert result.tolerance_ratio == math.inf and result.max_abs_error == math.inf


def test_a_constant_gradient_that_broadcasts_fails_on_shape_not_values() -> None:
    """All values equal: only the shape rule can refuse (N, N) or (1, C) here."""
    want = np.full(4, 2.5)
    for got in (np.full((1, 4), 2.5), np.full((4, 1), 2.5), np.full((4, 4), 2.5)):
        result = compare_arrays("t", got, want, DYADIC)
        assert not result.passed and result.problem.startswith("shape ")


def test_empty_arrays_of_different_shapes_fail() -> None:
    assert not compare_arrays("t", np.zeros((0, 3)), np.zeros((3, 0)), DYADIC).passed
    assert not compare_arrays("t", np.zeros((0,)), np.zeros((0, 1)), DYADIC).passed


@pytest.mark.parametrize(("got_dtype", "want_dtype"),
                         [("float64", "float32"), ("float32", "float64"), ("float16", "float32"),
                          ("int64", "float64")])
def test_equal_values_of_another_dtype_fail(got_dtype: str, want_dtype: str) -> None:
    want = np.array([1.0, 2.0, 0.5], dtype=want_dtype)
    result = compare_arrays("t", want.astype(got_dtype), want, DYADIC)
    assert not result.passed
    assert result.problem == f"dtype {got_dtype} != reference {want_dtype}"


def test_shape_is_judged_before_dtype() -> None:
    result = compare_arrays("t", np.zeros((1, 3), np.float32), np.zeros(3), DYADIC)
    assert result.problem.startswith("shape ")


# ---- the values rule |got - want| <= atol + rtol |want| ------------------------------------
# Each value test runs through both paths: compare_arrays, and compare_all's batched arithmetic
# (which compare_runs uses), with a clean tensor before the one judged.

Compare = Callable[..., TensorComparison]


def _batched(name: str, got: Any, want: Any, tolerance: Tolerance, keep_values: bool = True,
             *, equal_nan: bool = False) -> TensorComparison:
    clean = np.array([1.0, 2.0], dtype=np.asarray(want).dtype)
    return compare_all([("clean", clean, clean.copy(), tolerance), (name, got, want, tolerance)],
                       keep_values, equal_nan=equal_nan)[1]


@pytest.fixture(params=["compare_arrays", "compare_all"])
def judge(request: pytest.FixtureRequest) -> Compare:
    return compare_arrays if request.param == "compare_arrays" else _batched

@pytest.mark.parametrize(("got", "want", "passes"), [
    (5.5, 4.0, True),          # error 1.5 = 0.5 + 0.25 * 4: exactly at tolerance
    (2.5, 4.0, True),          # the same from below
    (5.5 + 2**-20, 4.0, False),  # just above
    (2.5 - 2**-20, 4.0, False),
    (-5.5, -4.0, True),        # rtol scales |want|, not want
    (-5.5 - 2**-20, -4.0, False),
    (0.5, 0.0, True),          # atol alone at want = 0
    (0.5 + 2**-20, 0.0, False),
    (-0.5, 0.0, True),
    # rtol times |want|, never |got| (|got| = 5.5625 would allow 1.890625 > 1.5625):
    (5.5625, 4.0, False),
    # nor max(|got|, |want|), nor the mean: want = 0 allows atol only, whatever got is.
    (0.625, 0.0, False),
])
def test_values_rule_at_and_just_above_tolerance(got: float, want: float, passes: bool,
                                                 judge: Compare) -> None:
    result = judge("t", np.array([got]), np.array([want]), DYADIC)
    assert result.passed is passes
    assert result.problem == ""
    expected_ratio = abs(got - want) / (0.5 + 0.25 * abs(want))
    assert result.tolerance_ratio == expected_ratio
    assert result.mismatched == (0 if passes else 1)


def test_zero_tolerance_accepts_only_exact_equality(judge: Compare) -> None:
    want = np.array([1.0, -3.0, 0.0])
    assert judge("t", want.copy(), want, ZERO).passed
    assert not judge("t", np.nextafter(want, 10.0), want, ZERO).passed


FLOAT_PAIRS = [  # (got, want) around the default tolerances of each dtype
    (1.0 + 1e-5, 1.0), (1.0 + 1.2e-5, 1.0), (1.0 + 1.1e-5, 1.0), (100.0 + 1.4e-4, 100.0),
    (100.0 + 1.2e-4, 100.0), (1e-6, 0.0), (1.2e-5, 0.0), (-3.0 - 1.4e-5, -3.0),
    (1.0 + 2.1e-7, 1.0), (1.0 + 1.9e-7, 1.0), (1e-7, 0.0), (3e-7, 0.0), (50.0 + 5e-6, 50.0),
    (50.0 + 6e-6, 50.0),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_default_tolerance_decides_as_torch_assert_close(dtype: str, judge: Compare) -> None:
    """The verdict at the defaults is torch.testing.assert_close's, pair by pair."""
    tolerance = DEFAULT_TOLERANCES[dtype]
    for got, want in FLOAT_PAIRS:
        g, w = np.array([got], dtype=dtype), np.array([want], dtype=dtype)
        try:
            torch.testing.assert_close(torch.from_numpy(g), torch.from_numpy(w))
            torch_passes = True
        except AssertionError:
            torch_passes = False
        assert judge("t", g, w, tolerance).passed is torch_passes, (dtype, got, want)


def test_default_tolerances_are_torch_testing_defaults() -> None:
    from torch.testing._comparison import default_tolerances

    for dtype, torch_dtype in (("float32", torch.float32), ("float64", torch.float64)):
        rtol, atol = default_tolerances(torch_dtype)
        assert (DEFAULT_TOLERANCES[dtype].rtol, DEFAULT_TOLERANCES[dtype].atol) == (rtol, atol)
        assert DEFAULT_TOLERANCES[dtype].reason == "default"


# ---- the numbers a record reports ---------------------------------------------------------

def test_relative_and_absolute_errors_of_a_known_pair(judge: Compare) -> None:
    """got 3 for want 2: absolute error 1, relative 1/2, ratio 1 / (0.5 + 0.25 * 2) = 1."""
    result = judge("t", np.array([3.0, 1.0]), np.array([2.0, 1.0]), DYADIC)
    assert result.max_abs_error == 1.0
    assert result.max_rel_error == 0.5
    assert result.tolerance_ratio == 1.0 and result.passed
    # relative to the reference, not to got (1/3) nor to the mean (2/5)
    result = judge("t", np.array([-2.0]), np.array([-8.0]), DYADIC)
    assert result.max_rel_error == 0.75 and result.max_abs_error == 6.0
    assert result.tolerance_ratio == 6.0 / 2.5


def test_relative_error_where_the_reference_is_zero(judge: Compare) -> None:
    result = judge("t", np.array([0.0, 0.25]), np.array([0.0, 0.0]), DYADIC)
    assert result.max_rel_error == math.inf and result.passed  # within atol all the same
    assert judge("t", np.zeros(2), np.zeros(2), DYADIC).max_rel_error == 0.0


def test_mismatched_counts_the_elements_above_tolerance(judge: Compare) -> None:
    want = np.zeros(10)
    got = want.copy()
    got[[1, 4, 7]] = [0.75, -0.5 - 2**-10, 3.0]  # three above atol 0.5
    got[[2, 5]] = [0.5, -0.5]                    # two exactly at it
    result = judge("t", got, want, DYADIC)
    assert result.mismatched == 3 and not result.passed


def test_worst_index_is_the_largest_tolerance_ratio_in_array_coordinates(
        judge: Compare) -> None:
    """The largest absolute error (at [0, 0]) is not the worst: the ratio peaks at [1, 0]."""
    want = np.array([[100.0, 1.0, 1.0], [0.0, 1.0, 1.0]])
    got = want.copy()
    got[0, 0] += 20.0   # ratio 20 / 25.5
    got[1, 0] += 2.0    # ratio 2 / 0.5 = 4
    got[0, 2] += 1.0    # ratio 1 / 0.75
    result = judge("t", got, want, DYADIC)
    assert result.worst_index == [1, 0]
    assert result.tolerance_ratio == 4.0 and result.max_abs_error == 20.0


# ---- infinities and NaN -------------------------------------------------------------------

@pytest.mark.parametrize(("got", "want", "passes"), [
    (math.inf, math.inf, True), (-math.inf, -math.inf, True),
    (-math.inf, math.inf, False), (math.inf, -math.inf, False),
    (1e300, math.inf, False), (math.inf, 1e300, False), (math.inf, 0.0, False),
    (0.0, math.inf, False),
])
def test_an_infinity_matches_only_the_same_infinity(got: float, want: float,
                                                    passes: bool, judge: Compare) -> None:
    for tolerance in (DYADIC, Tolerance(1e6, 1e6, "huge")):  # no tolerance excuses a sign
        result = judge("t", np.array([1.0, got]), np.array([1.0, want]), tolerance)
        assert result.passed is passes, tolerance
        if not passes:
            assert result.worst_index == [1] and result.tolerance_ratio == math.inf


@pytest.mark.parametrize("equal_nan", [False, True])
def test_nan_against_a_number_fails_whatever_equal_nan_says(equal_nan: bool,
                                                           judge: Compare) -> None:
    huge = Tolerance(1e6, 1e6, "huge")
    for got, want in ((math.nan, 1.0), (1.0, math.nan), (math.nan, math.inf)):
        result = judge("t", np.array([got]), np.array([want]), huge, equal_nan=equal_nan)
        assert not result.passed and result.tolerance_ratio == math.inf


def test_nan_on_both_sides_fails_unless_expected_and_says_why(judge: Compare) -> None:
    got, want = np.array([1.0, math.nan, math.nan]), np.array([1.0, math.nan, math.nan])
    result = judge("t", got, want, Tolerance(1e6, 1e6, "huge"))
    assert not result.passed
    assert result.problem.startswith("NaN in both engines (2 of 3 elements, first at [1])")
    expected = judge("t", got, want, ZERO, equal_nan=True)
    assert expected.passed and expected.problem == "" and expected.max_abs_error == 0.0
    assert expected.max_rel_error == 0.0 and expected.tolerance_ratio == 0.0


# ---- unchanged: the no-mutation rule ------------------------------------------------------

def test_unchanged_refuses_a_one_ulp_change_and_a_reshape() -> None:
    before = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    assert unchanged("x", before.copy(), before).passed
    bumped = before.copy()
    bumped[1, 1] = np.nextafter(bumped[1, 1], np.float32(10))
    result = unchanged("x", bumped, before)
    assert not result.passed and result.problem == "modified in place"
    assert result.max_abs_error == float(bumped[1, 1]) - 4.0
    assert not unchanged("x", before.reshape(4), before).passed
    assert not unchanged("x", before.reshape(1, 2, 2), before).passed


def test_unchanged_accepts_nan_left_as_nan() -> None:
    before = np.array([math.nan, 1.0])
    assert unchanged("x", before.copy(), before).passed
    assert not unchanged("x", np.array([0.0, 1.0]), before).passed


# ---- the tolerance registry ---------------------------------------------------------------

def test_a_stage_override_beats_the_dtype_override_and_neither_leaks_to_other_dtypes() -> None:
    tolerances = {"float32": Tolerance(1e-4, 1e-4, "dtype-wide"),
                  "float32:backward": Tolerance(1e-3, 1e-3, "backward only")}
    op = dataclasses.replace(OPS["tanh"], oracle=Oracle(tolerances=tolerances))
    assert op.tolerance("float32", "backward").reason == "backward only"
    assert op.tolerance("float32", "forward").reason == "dtype-wide"
    assert op.tolerance("float64", "backward") == DEFAULT_TOLERANCES["float64"]


def test_a_layers_stage_override_beats_its_dtype_override_and_its_ops() -> None:
    op = dataclasses.replace(OPS["tanh"],
                             oracle=Oracle(tolerances={"float32": Tolerance(1e-5, 1e-5, "op")}))
    layer = dataclasses.replace(LAYERS["tanh"], op=op, tolerances={
        "float32": Tolerance(1e-4, 1e-4, "layer, both stages"),
        "float32:backward": Tolerance(1e-3, 1e-3, "layer, backward")})
    assert layer.tolerance("float32", "backward").reason == "layer, backward"
    assert layer.tolerance("float32", "forward").reason == "layer, both stages"
    assert dataclasses.replace(layer, tolerances={}).tolerance("float32", "forward").reason \
        == "op"
    assert layer.tolerance("float64", "backward") == DEFAULT_TOLERANCES["float64"]


def test_spec_tolerance_is_the_loosest_override_component_by_component(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """linear allows (rtol 1e-4, atol 1e-6), tanh (1e-6, 1e-3): the spec allows (1e-4, 1e-3)
    backward, and the default forward (neither overrides it) and in float64."""
    linear = Tolerance(1e-4, 1e-6, "linear reason")
    tanh = Tolerance(1e-6, 1e-3, "tanh reason")
    monkeypatch.setitem(LAYERS, "linear", dataclasses.replace(
        LAYERS["linear"], tolerances={"float32:backward": linear}))
    monkeypatch.setitem(LAYERS, "tanh", dataclasses.replace(
        LAYERS["tanh"], tolerances={"float32:backward": tanh}))
    raw = {"input_shape": [3], "dtype": "float32", "loss": {"type": "mse"},
           "layers": [{"type": "linear", "out_features": 2}, {"type": "tanh"}]}
    spec = manual.parse_spec(raw)
    backward = spec_tolerance(spec, "backward")
    assert (backward.rtol, backward.atol) == (1e-4, 1e-3)
    assert backward.reason == "linear reason; tanh reason"
    assert spec_tolerance(spec, "forward") == DEFAULT_TOLERANCES["float32"]
    wide = manual.parse_spec({**raw, "dtype": "float64"})
    assert spec_tolerance(wide, "backward") == DEFAULT_TOLERANCES["float64"]


def test_every_registered_override_has_a_reason_and_is_not_a_blanket_loosening() -> None:
    """An override names why; none is looser than 1e-3 (that would hide real derivative bugs,
    which miss by 1e-2 and more)."""
    entries: list[Any] = [*OPS.values(), *LAYERS.values()]
    for entry in entries:
        for dtype in ("float32", "float64"):
            for stage in ("forward", "backward"):
                tolerance = entry.tolerance(dtype, stage)
                if tolerance.reason == "default":
                    assert tolerance == DEFAULT_TOLERANCES[dtype], entry
                    continue
                assert tolerance.reason.strip(), entry
                assert tolerance.rtol <= 1e-3 and tolerance.atol <= 1e-3, (entry, tolerance)
