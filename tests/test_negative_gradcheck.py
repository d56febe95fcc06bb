"""Negative tests of the gradient check: its formula, its bands, its kink and truncation excuses.

The function checked is :math:`f(x) = \\sum_i c_i x_i^3` (so :math:`\\nabla f = 3 c x^2`, exact
in float64); an analytic gradient off by a known relative amount has a known relative error
:math:`|a - n| / (|a| + |n|) = r / (2 + r)`, so each band is tested just above and below.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from manual.gradcheck import ACCEPTABLE, GOOD, check_function
from manual.gradcheck.core import judge, relative_errors

RNG = np.random.default_rng(11)
X = RNG.uniform(0.5, 2.0, size=(3, 4))
C = RNG.uniform(0.5, 2.0, size=(3, 4))


def cubic(inputs: dict[str, Any]) -> Any:
    return np.sum(C * inputs["x"] ** 3)


def check_off_by(relative: float, mode: str = "full", at: tuple[int, int] | None = None) -> Any:
    grad = 3 * C * X**2
    if at is None:
        grad = grad * (1 + relative)
    else:
        grad = grad.copy()
        grad[at] *= 1 + relative
    return check_function(cubic, {"x": X}, {"x": grad}, mode=mode).tensor("x")


def test_the_bands_are_the_documented_ones() -> None:
    assert (GOOD, ACCEPTABLE) == (1e-7, 1e-4)


@pytest.mark.parametrize(("a", "n", "expected"), [
    (3.0, 1.0, 0.5), (-1.0, 1.0, 1.0), (2.0, 2.0, 0.0), (0.0, 0.0, 0.0), (1.0, 0.0, 1.0),
    (-4.0, -2.0, 1 / 3),
])
def test_relative_error_of_known_pairs(a: float, n: float, expected: float) -> None:
    """|a - n| / (|a| + |n|): symmetric, bounded by 1 for equal signs, 0 where both vanish."""
    got = relative_errors(np.array([a]), np.array([n]), 1e-30)
    assert got[0] == pytest.approx(expected, rel=1e-15, abs=0)


def test_below_the_resolution_the_error_is_judged_against_the_noise() -> None:
    """noise 1e-9: floor noise / GOOD = 1e-2, so a = 1e-12 against n = 0 is 1e-10, not 1."""
    assert relative_errors(np.array([1e-12]), np.array([0.0]), 1e-9)[0] == pytest.approx(1e-10)
    # above the floor the floor does nothing
    assert relative_errors(np.array([1.0]), np.array([0.5]), 1e-9)[0] == pytest.approx(1 / 3)


@pytest.mark.parametrize("mode", ["full", "sparse", "complex"])
def test_the_exact_gradient_is_good(mode: str) -> None:
    check = check_off_by(0.0, mode)
    assert check.verdict == "good" and check.passed
    assert check.max_rel_error < GOOD / 10


@pytest.mark.parametrize("relative", [1e-4, 1e-5, 1e-6, 4e-7, -4e-7])
@pytest.mark.parametrize("mode", ["full", "complex"])
def test_a_gradient_off_by_a_small_relative_amount_is_wrong_in_float64(relative: float,
                                                                       mode: str) -> None:
    """r = 1e-4 gives a relative error 5e-5, under ACCEPTABLE: only the GOOD band refuses it."""
    check = check_off_by(relative, mode)
    assert check.verdict == "wrong" and not check.passed
    assert check.max_rel_error == pytest.approx(abs(relative) / (2 + relative), rel=1e-3)


def test_one_wrong_element_is_wrong_and_located() -> None:
    check = check_off_by(1e-5, at=(2, 1))
    assert not check.passed and check.worst_index == [2, 1]


def test_projection_refuses_a_gradient_off_by_a_relative_1e_minus_5() -> None:
    check = check_off_by(1e-5, mode="projection")
    assert not check.passed


def test_an_error_below_the_good_band_passes() -> None:
    """r = 1e-8 gives 5e-9: within GOOD. The bands are not tighter than documented either."""
    assert check_off_by(1e-8).verdict == "good"


# ---- judge: the kink and truncation excuses -----------------------------------------------

def _judge(a: list[float], n: list[float], crossed: list[bool],
           refined: list[bool] | None = None) -> Any:
    return judge("t", (len(a),), "full", np.array(a), np.array(n), 1e-30,
                 np.array(crossed), lambda k: [k],
                 None if refined is None else np.array(refined))


def test_a_large_error_is_excused_only_where_a_kink_was_crossed() -> None:
    crossed = _judge([1.0, 2.0], [0.0, 2.0], [True, False])
    assert crossed.verdict == "kink" and crossed.passed and crossed.kinks_crossed == 1
    assert crossed.max_rel_error == 0.0 and crossed.max_rel_error_kinked == 1.0
    uncrossed = _judge([1.0, 2.0], [0.0, 2.0], [False, True])
    assert uncrossed.verdict == "wrong" and not uncrossed.passed
    assert uncrossed.worst_index == [0]


def test_a_crossed_kink_does_not_excuse_another_wrong_element() -> None:
    check = _judge([1.0, 2.0, 3.0], [0.0, 2.0, 3.0 * (1 + 1e-5)], [True, False, False])
    assert check.verdict == "wrong" and check.worst_index == [2]


def test_a_kinked_element_within_acceptable_is_acceptable_not_good() -> None:
    check = _judge([1.0, 1.0], [1.0 + 2e-5, 1.0], [True, False])
    assert check.verdict == "acceptable" and check.passed


@pytest.mark.parametrize(("relative", "verdict"), [(5e-5, "acceptable"), (3e-4, "wrong")])
def test_a_refined_element_is_allowed_acceptable_and_no_more(relative: float,
                                                             verdict: str) -> None:
    """rel = r / (2 + r): 2.5e-5 is inside ACCEPTABLE, 1.5e-4 is outside."""
    check = _judge([1.0 + relative, 1.0], [1.0, 1.0], [False, False], [True, False])
    assert check.verdict == verdict


def test_an_unrefined_element_gets_no_acceptable_band() -> None:
    check = _judge([1.0 + 5e-5, 1.0], [1.0, 1.0], [False, False], [False, True])
    assert check.verdict == "wrong"


def test_a_refined_element_that_also_crossed_a_kink_is_judged_as_kinked_only() -> None:
    check = _judge([1.0 + 5e-5], [1.0], [True], [True])
    assert check.refined == 0 and check.kinks_crossed == 1 and check.verdict == "acceptable"


def test_a_nan_analytic_gradient_is_wrong() -> None:
    check = _judge([math.nan, 1.0], [1.0, 1.0], [False, False])
    assert check.verdict == "wrong" and check.max_rel_error == math.inf


def test_a_zero_numerical_gradient_never_confirms_a_nonzero_analytic_one() -> None:
    check = _judge([1e-3, 2e-3], [0.0, 0.0], [False, False])
    assert check.verdict == "wrong" and check.problem.startswith("the numerical gradient is zero")


# ---- shapes -------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 4), (4, 1), (2, 2)], ids=lambda s: "x".join(map(str, s)))
def test_a_gradient_with_the_right_values_in_a_look_alike_shape_is_wrong(
        shape: tuple[int, ...]) -> None:
    x = np.array([0.5, 1.0, 1.5, 2.0])
    grad = (3 * x**2).reshape(shape)  # every value right, the shape not
    record = check_function(lambda d: np.sum(d["x"] ** 3), {"x": x}, {"x": grad})
    check = record.tensor("x")
    assert check.verdict == "wrong" and not record.passed
    assert check.problem == f"the analytic gradient has shape {shape}, the tensor has shape (4,)"
