"""Every optimizer mutant is killed by the per-step conformance (and the zoo is not empty)."""

from __future__ import annotations

import pytest

from manual.optim import OPTIMIZERS, SCHEDULES
from reference.zoo.optim import MUTANTS, conformance_kill


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_mutant_is_killed_by_per_step_conformance(mutant) -> None:
    kill = conformance_kill(mutant)
    assert kill.killed, f"{mutant.name} lived: {mutant.description}"
    assert kill.tensor is not None and kill.tensor.startswith("step ")


def test_the_zoo_covers_the_classic_mistakes() -> None:
    touched = {m.entry().name for m in MUTANTS}
    assert {"adam", "adamw", "sgd", "rmsprop"} <= touched & set(OPTIMIZERS)
    assert touched & set(SCHEDULES)


def test_momentum_from_zero_needs_dampening_to_show() -> None:
    """Started at zero, the buffer is (1 - dampening) g: exactly right when dampening is 0."""
    (mutant,) = [m for m in MUTANTS if m.name == "sgd_momentum_from_zero"]
    kill = conformance_kill(mutant)
    assert kill.case is not None and "dampening=0.5" in kill.case
