"""Every norm-layer and weighted-loss mutant is caught by the layer and loss comparisons.

A mutant that survives means a check is missing or too loose; ``reference.zoo.norm`` names
the mistake each one injects.
"""

from __future__ import annotations

import pytest

from manual.layers import LAYERS
from manual.registry import LOSSES
from reference.zoo.core import Mutant
from reference.zoo.norm import NORM_MUTANTS, NORM_ZOO, conformance_kill


@pytest.mark.parametrize("mutant", NORM_MUTANTS, ids=[m.name for m in NORM_MUTANTS])
def test_mutant_is_killed_by_a_comparison(mutant: Mutant) -> None:
    where = conformance_kill(mutant)
    assert where is not None, f"{mutant.name} survived: {mutant.description}"
    assert "raised" not in where, f"{mutant.name} died of an exception, not a comparison: {where}"


def test_the_zoo_is_large_enough_and_restores_the_registry() -> None:
    assert len(NORM_ZOO) >= 12
    before = dict(LAYERS), dict(LOSSES)
    for mutant in NORM_MUTANTS:
        with mutant.inject():
            pass
    assert (dict(LAYERS), dict(LOSSES)) == before


@pytest.mark.parametrize("name", ["batch_norm", "layer_norm", "group_norm", "dropout",
                                  "embedding", "cross_entropy", "nll", "bce_with_logits"])
def test_unmutated_engine_passes_the_kill_check(name: str) -> None:
    """The kill check must pass on the real engine, or every mutant would 'die'."""
    assert conformance_kill(Mutant("none", "no change", lambda: [], (name,))) is None
