"""The bug zoo: every mutant must be killed by the conformance suite and by the fuzzer.

Each mutant is injected by monkeypatching (the engine's source stays untouched), then
the registry-driven conformance suite (:func:`reference.conformance.protocols.first_failure`)
and a derandomised Hypothesis search with the ``ci`` profile's budget
(:func:`reference.zoo.core.fuzz_kill`) must each find a failure. Each test records its row
of the kill table (``record_property("zoo_kill", ...)``, printed at the end of the run
by ``conftest.py``) and writes it to ``<pytest basetemp>/zoo-kills/<mutant>.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from manual import registry
from manual.layers import LAYERS
from manual.module import Layer
from reference.conformance.protocols import first_failure
from reference.core.records import dumps
from reference.zoo import core as zoo
from reference.zoo import kill as zoo_kill

CI_BUDGET = settings.get_profile("ci").max_examples
# The mistakes the issue names, by the name they have in the zoo.
REQUIRED = {
    "linear_dW_transposed", "bias_grad_not_summed", "bce_sigmoid_twice", "mse_mean_as_sum",
    "relu_grad_at_zero", "leaky_slope_dropped", "softmax_diagonal", "mse_sign_flip",
    "grad_overwritten", "silu_one_path", "relu_mutates_upstream", "tanh_mutates_input",
    "stale_cache", "tanh_one_minus_y", "cross_entropy_no_mean", "label_smoothing_ignored",
    "skip_first_layer", "linear_float64",
}


@pytest.fixture(scope="session")
def kill_table_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers
    directory = root / "zoo-kills"
    directory.mkdir(exist_ok=True)
    return directory


def test_zoo_has_at_least_twenty_described_mutants() -> None:
    assert len(zoo.MUTANTS) >= 20
    assert len(zoo.ZOO) == len(zoo.MUTANTS), "mutant names must be unique"
    assert all(m.description and "\n" not in m.description for m in zoo.MUTANTS)


def test_zoo_has_the_mistakes_the_issue_names() -> None:
    assert set(zoo.ZOO) >= REQUIRED


def test_mutant_ops_are_registered() -> None:
    assert {op for m in zoo.MUTANTS for op in m.ops} <= set(registry.OPS) | set(LAYERS)


def test_injection_is_undone_even_after_an_error() -> None:
    tanh, backward = registry.ACTIVATIONS["tanh"], Layer.backward
    with pytest.raises(RuntimeError), zoo.ZOO["tanh_one_minus_y"].inject():
        assert registry.ACTIVATIONS["tanh"] is not tanh
        assert registry.OPS["tanh"] is registry.ACTIVATIONS["tanh"]
        raise RuntimeError
    with zoo.ZOO["grad_overwritten"].inject():
        assert Layer.backward is not backward
    assert registry.ACTIVATIONS["tanh"] is tanh and registry.OPS["tanh"] is tanh
    assert Layer.backward is backward


def test_the_clean_engine_passes_the_conformance_suite() -> None:
    with np.errstate(all="ignore"):
        assert first_failure() is None


@pytest.mark.slow
@pytest.mark.parametrize("mutant", zoo.MUTANTS, ids=lambda m: m.name)
def test_mutant_is_killed(mutant: zoo.Mutant, record_property: object,
                          kill_table_dir: Path) -> None:
    kill = zoo_kill.kill(mutant, CI_BUDGET)
    row = dumps(kill, indent=None)
    record_property("zoo_kill", row)  # type: ignore[operator]
    (kill_table_dir / f"{mutant.name}.json").write_text(row + "\n", encoding="utf-8")
    assert kill.conformance is not None, f"{mutant.name} survives the conformance suite"
    assert kill.fuzz_killed, f"{mutant.name} survives {CI_BUDGET} fuzz examples"
    assert kill.hidden_layers is not None and kill.hidden_layers <= 2, (
        f"{mutant.name}: the shrunk counterexample has {kill.hidden_layers} hidden layers: "
        f"{json.dumps(kill.spec)}")
