"""The edge-input mutants die under the fuzzer with its edge draws, and only with them.

Each mutant of :mod:`reference.zoo.edges` is right on typical inputs: the focused fuzzer
without the edge draws (``edges=False``, the fuzzer before them) lets it live within the
``ci`` budget, with them it finds a failing case. The conformance suite's samples stay in
each op's typical domain and catch none of them (see the module docstring).
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from manual import numerics, registry
from reference.zoo import edges as zoo_edges

CI_BUDGET = settings.get_profile("ci").max_examples


def test_edge_mutants_are_described_and_distinct() -> None:
    names = [m.name for m in zoo_edges.EDGE_MUTANTS]
    assert len(names) >= 5 and len(set(names)) == len(names)
    assert all(m.description and m.ops for m in zoo_edges.EDGE_MUTANTS)


def test_injection_is_undone() -> None:
    before = dict(registry.OPS), numerics.log_softmax
    for mutant in zoo_edges.EDGE_MUTANTS:
        with mutant.inject():
            assert (dict(registry.OPS), numerics.log_softmax) != before
    assert (dict(registry.OPS), numerics.log_softmax) == before


@pytest.mark.slow
@pytest.mark.parametrize("mutant", zoo_edges.EDGE_MUTANTS, ids=lambda m: m.name)
def test_edge_mutant_dies_under_the_edge_draws(mutant: zoo_edges.Mutant) -> None:
    case = zoo_edges.fuzz_kill(mutant, CI_BUDGET, edges=True)
    assert case is not None, f"{mutant.name} survives {CI_BUDGET} fuzz examples"


@pytest.mark.slow
@pytest.mark.parametrize("mutant", [m for m in zoo_edges.EDGE_MUTANTS
                                    if m.name not in zoo_edges.TYPICAL_DRAWS_REACH],
                         ids=lambda m: m.name)
def test_edge_mutant_survives_the_typical_draws(mutant: zoo_edges.Mutant) -> None:
    # The evidence that the edges matter: without them the same budget misses the mistake.
    assert zoo_edges.fuzz_kill(mutant, CI_BUDGET, edges=False) is None


def test_only_named_mutants_are_reached_without_the_edges() -> None:
    assert set(zoo_edges.EDGE_ZOO) >= zoo_edges.TYPICAL_DRAWS_REACH
