"""Every mutant of the bug zoo whose mistake is in a gradient's value fails the numerical check.

The rest are out of a gradient check's reach by nature, each for a stated reason: a numerical
check runs one forward and one backward in float64 and compares values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import manual
from manual.gradcheck import check_network
from manual.registry import ACTIVATIONS, LOSSES
from reference.conformance.matrix import network_data, network_spec

zoo = pytest.importorskip("reference.zoo.core")

OUT_OF_REACH = {
    "linear_float64": "a dtype mistake: the check runs on a float64 copy by design",
    "grad_overwritten": "needs two backward passes without zero_grad; a check runs one",
    "stale_cache": "needs two forwards on different batches; a check runs one",
    "relu_grad_at_zero": "a convention at the kink itself, where no difference quotient can "
                         "decide (the differential test against PyTorch catches it)",
    "relu_mutates_upstream": "aliasing of the upstream array: the gradients stay right",
}
# Options that make the mutated code path run (e.g. gelu's tanh approximation).
ACTIVATION_OPTIONS: dict[str, dict[str, Any]] = {
    "gelu": {"approximate": "tanh"}, "elu": {"alpha": 0.5},
    "softplus": {"beta": 2.0, "threshold": 3.0}, "hardtanh": {"min_val": -2.0, "max_val": 0.5},
}
LOSS_OPTIONS: dict[str, dict[str, Any]] = {
    "cross_entropy": {"label_smoothing": 0.1}, "kl_div": {"reduction": "batchmean"},
    "huber": {"delta": 0.5},
}


GRAPH = {"inputs": {"x": {"shape": [4]}}, "loss": {"type": "mse"}, "seed": 3, "nodes": [
    {"name": "fc", "type": "linear", "inputs": ["x"], "out_features": 4},
    {"name": "act", "type": "tanh", "inputs": ["fc"]},
    {"name": "skip", "type": "add", "inputs": ["act", "x"]},
    {"name": "side", "type": "linear", "inputs": ["x"], "out_features": 2},
    {"name": "both", "type": "concat", "inputs": ["skip", "side"]}]}


def subject(mutant: Any) -> tuple[Any, Any]:
    """A small MLP that holds the ops the mutant touches (tanh and mse otherwise); a graph with
    a skip connection and a concat for the graph mutants (checked by the graph evaluator)."""
    if {"add", "concat"} & set(mutant.ops):
        spec = manual.parse_spec(GRAPH)
        rng = np.random.default_rng(5)
        return spec, manual.make_data(spec, rng.standard_normal((6, 4)),
                                      rng.standard_normal((6, 6)))
    activation = next((op for op in mutant.ops if op in ACTIVATIONS), "tanh")
    loss = next((op for op in mutant.ops if op in LOSSES), "mse")
    spec = network_spec(activation, loss, "float64",
                        activation_options=ACTIVATION_OPTIONS.get(activation),
                        loss_options=LOSS_OPTIONS.get(loss))
    return spec, network_data(spec)


def test_out_of_reach_names_are_zoo_mutants() -> None:
    assert set(OUT_OF_REACH) <= set(zoo.ZOO)


@pytest.mark.parametrize("mutant", [m for m in zoo.MUTANTS if m.name not in OUT_OF_REACH],
                         ids=lambda m: m.name)
@pytest.mark.parametrize("mode", ["full", "sparse", "projection"])
def test_gradient_mutants_fail_the_numerical_check(mutant: Any, mode: str) -> None:
    spec, data = subject(mutant)
    assert check_network(spec, data, mode).passed  # the subject is sound without the mutant
    with mutant.inject():
        record = check_network(spec, data, mode)
    assert not record.passed, f"{mutant.name} survives {mode}: {record.describe()}"
