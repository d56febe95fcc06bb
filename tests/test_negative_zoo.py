"""The survivor classes of the zoo (reference.zoo.survivors): killed, and by the rule they target.

Each mutant must die in the conformance suite and in the fuzzer (the ci budget, a shrunk
counterexample of at most two hidden layers), as the main zoo's do, and in the gradient check
where its mistake is in a gradient. Each also has a test that it dies *for the right reason*:
values right and only the shape rule failing, only square layers exposing it, only the
measured rounding bound or float64's tolerance refusing it. A harness with that rule removed
or loosened lets the mutant live and fails here.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import settings

from manual.gradcheck import check_network
from reference.conformance.matrix import mlp_spec, network_data, network_spec
from reference.conformance.protocols import check_single
from reference.core.compare import compare_network, compare_op
from reference.core.rounding import rounding_excuse
from reference.fuzz.campaign import run_case
from reference.fuzz.strategies import FuzzCase
from reference.zoo import core as zoo
from reference.zoo import kill as zoo_kill
from reference.zoo.survivors import SURVIVOR_MUTANTS, SURVIVORS

CI_BUDGET = settings.get_profile("ci").max_examples
OUT_OF_GRADCHECK_REACH = {
    "loss_none_keepdims": "a forward shape mistake: every gradient is right",
}


def test_survivors_are_described_and_named_apart_from_the_zoo() -> None:
    assert len(SURVIVORS) == len(SURVIVOR_MUTANTS) >= 5
    assert not set(SURVIVORS) & set(zoo.ZOO)
    assert all(m.description and "\n" not in m.description for m in SURVIVOR_MUTANTS)
    assert set(OUT_OF_GRADCHECK_REACH) <= set(SURVIVORS)


@pytest.mark.slow
@pytest.mark.parametrize("mutant", SURVIVOR_MUTANTS, ids=lambda m: m.name)
def test_survivor_is_killed_by_conformance_and_fuzzer(mutant: zoo.Mutant) -> None:
    kill = zoo_kill.kill(mutant, CI_BUDGET)
    assert kill.conformance is not None, f"{mutant.name} survives the conformance suite"
    assert kill.fuzz_killed, f"{mutant.name} survives {CI_BUDGET} fuzz examples"
    assert kill.hidden_layers is not None and kill.hidden_layers <= 2, json.dumps(kill.spec)


def _gradcheck_subject(mutant: zoo.Mutant) -> tuple[Any, Any]:
    loss = "bce" if "bce" in mutant.ops else "mse"
    spec = network_spec("tanh", loss, "float64")  # 4 -> 8 -> 8 -> 3: one square layer
    return spec, network_data(spec)


@pytest.mark.parametrize("mutant", [m for m in SURVIVOR_MUTANTS
                                    if m.name not in OUT_OF_GRADCHECK_REACH],
                         ids=lambda m: m.name)
def test_survivor_fails_the_numerical_check(mutant: zoo.Mutant) -> None:
    spec, data = _gradcheck_subject(mutant)
    assert check_network(spec, data, "full").passed
    with mutant.inject():
        record = check_network(spec, data, "full")
    assert not record.passed and all(t.verdict == "wrong" for t in record.failures)


# ---- each dies for the reason it was made for -------------------------------------------

def test_bias_keepdims_has_every_value_right_and_only_the_shape_rule_kills_it() -> None:
    spec = network_spec("tanh", "mse", "float32")
    data = network_data(spec)
    with SURVIVORS["bias_grad_keepdims"].inject():
        record = check_single(spec, data)
        failures = {t.name: t.problem for t in record.failures}
        assert failures == {"backward: layers.0.bias": "shape (1, 8) != reference (8,)",
                            "backward: layers.2.bias": "shape (1, 8) != reference (8,)",
                            "backward: layers.4.bias": "shape (1, 3) != reference (3,)"}
        kept = compare_network(spec, data).tensor("backward: layers.0.bias")
    np.testing.assert_allclose(np.ravel(kept.manual), kept.reference, rtol=1.3e-6, atol=1e-5)


def test_none_keepdims_has_the_right_losses_in_a_column() -> None:
    spec = network_spec("tanh", "cross_entropy", "float64", loss_options={"reduction": "none"})
    with SURVIVORS["loss_none_keepdims"].inject():
        record = check_single(spec, network_data(spec))
    assert {t.name: t.problem for t in record.failures} == {
        "forward: loss": "shape (5, 1) != reference (5,)"}


def test_transpose_if_square_survives_non_square_layers_and_dies_on_a_square_one() -> None:
    mutant = SURVIVORS["dW_transposed_if_square"]
    tall = mlp_spec([4, 6, 3], "tanh", "mse", "float64")  # 6x4 and 3x6: never square
    square = mlp_spec([4, 5, 5, 3], "tanh", "mse", "float64")
    with mutant.inject():
        assert check_single(tall, network_data(tall)).passed
        record = check_single(square, network_data(square))
    assert [t.name for t in record.failures] == ["backward: layers.2.weight"]


def test_float16_weight_gradient_is_refused_by_the_measured_rounding_bound() -> None:
    spec = network_spec("tanh", "mse", "float32")
    data = network_data(spec)
    with SURVIVORS["linear_dW_float16"].inject():
        record = compare_network(spec, data, keep_values=True)
        assert not record.passed
        assert rounding_excuse(spec, data, record, record) == ""
        assert not check_single(spec, data).passed
        outcome = run_case(FuzzCase(spec, data, "single"))
    assert outcome.failed and outcome.rounding == "" and outcome.kink == ""
    assert max(t.max_rel_error for t in record.failures) > 1e-4


def test_bce_eps_hides_inside_float32_and_dies_in_float64() -> None:
    mutant = SURVIVORS["bce_denominator_eps"]
    narrow, wide = (network_spec("tanh", "bce", dtype) for dtype in ("float32", "float64"))
    with mutant.inject():
        assert check_single(narrow, network_data(narrow)).passed  # why it is a survivor class
        record = check_single(wide, network_data(wide))
    assert not record.passed
    assert record.first_divergence == "backward: loss (bce)"
    worst = max(t.max_rel_error for t in record.failures)
    assert 1e-7 < worst < 1e-4  # far below what a wrong derivative gives


def test_none_keepdims_alone_is_a_shape_verdict_not_a_crash() -> None:
    """compare_op draws the upstream gradient in PyTorch's shape, so a wrong-shaped output is
    judged (shape) rather than crashing torch's backward."""
    with SURVIVORS["loss_none_keepdims"].inject():
        record = compare_op("cross_entropy", "float64", {"reduction": "none"})
    assert not record.passed
    assert record.tensor("forward: output").problem == "shape (6, 1) != reference (6,)"
    assert record.tensor("backward: input").passed
