"""Negative tests of the users' network check (reference.checks.check_network).

A "user" here hands in PyTorch's own values (from the harness's torch run) and passes; each
test then spoils one tensor the way hand-written engines do and the check must refuse it:
a bias gradient of shape (1, out), a gradient off by a relative 1e-6 in float64, a weight
gradient transposed; handing in nothing at all is an error, not a vacuous pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from reference.checks import check_network
from reference.conformance.matrix import mlp_spec, network_data
from reference.core.compare import compare_network

# One square layer (6 x 6). Seed 0 (seed 2 before the matrix drew from its own random stream):
# a layers.2.weight gradient element of 0.26, so that 1e-6 of it exceeds float64's tolerance
# (1e-7 + 1e-7 |g|, which 1e-6 |g| passes only for |g| > 0.11).
SPEC = mlp_spec([4, 6, 6, 3], "tanh", "mse", "float64", seed=0)
DATA = network_data(SPEC)


@pytest.fixture(scope="module")
def torch_values() -> dict[str, Any]:
    record = compare_network(SPEC, DATA, keep_values=True)
    return {t.name: np.asarray(t.reference) for t in record.tensors}


def test_a_user_with_pytorchs_values_passes(torch_values: dict[str, Any]) -> None:
    assert check_network(SPEC, DATA, torch_values).passed


def test_a_keepdims_bias_gradient_is_refused_as_broadcasting(
        torch_values: dict[str, Any]) -> None:
    mine = {**torch_values, "backward: layers.0.bias": torch_values["backward: layers.0.bias"]
            [None, :]}
    record = check_network(SPEC, DATA, mine)
    assert not record.passed
    assert record.first_divergence == (
        "backward: layers.0.bias: shape (1, 6) broadcasts to the reference's (6,) but is not "
        "its shape; values agree after reshaping")


@pytest.mark.parametrize("relative", [1e-6, -1e-6, 1e-3])
def test_a_gradient_off_by_a_small_factor_is_refused_in_float64(
        torch_values: dict[str, Any], relative: float) -> None:
    name = "backward: layers.2.weight"
    largest = float(np.abs(torch_values[name]).max())
    assert abs(relative) * largest > 1e-7 * (1 + largest)  # the case can show the error
    mine = {**torch_values, name: torch_values[name] * (1 + relative)}
    record = check_network(SPEC, DATA, mine)
    assert not record.passed and (record.first_divergence or "").startswith(name)


def test_a_square_weight_gradient_transposed_is_refused(torch_values: dict[str, Any]) -> None:
    name = "backward: layers.2.weight"  # 6 x 6: the shape cannot tell
    mine = {**torch_values, name: torch_values[name].T}
    record = check_network(SPEC, DATA, mine)
    assert not record.passed and (record.first_divergence or "").startswith(name)
    assert check_network(SPEC, DATA, {**torch_values, "backward: layers.0.weight":
                                       torch_values["backward: layers.0.weight"].T}).tensor(
        "backward: layers.0.weight").problem.startswith("shape (4, 6) != reference (6, 4)")


def test_handing_in_nothing_is_an_error_not_a_pass() -> None:
    with pytest.raises(ValueError, match=r"^mine: no tensors given; names: forward: layers\.0"):
        check_network(SPEC, DATA, {})
