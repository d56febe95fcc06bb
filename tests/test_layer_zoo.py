"""The layer families' mutants (conv and pooling, norms and losses, recurrent cells and
attention) die in networks too: each is caught by the one-node-graph conformance of the layers
it touches (reference.zoo.norm.conformance_kill: every sample, both dtypes, both modes and a
train -> eval -> train sequence; the weighted loss cases for a loss) and, separately, by the
fuzzer focused on it."""

from __future__ import annotations

import pytest

from reference.zoo import conv as zoo_conv
from reference.zoo import core as zoo
from reference.zoo import kill as zoo_kill
from reference.zoo import norm as zoo_norm
from reference.zoo import recurrent as zoo_recurrent

MUTANTS = [*zoo_conv.CONV_MUTANTS, *zoo_norm.NORM_MUTANTS, *zoo_recurrent.RECURRENT_MUTANTS]


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_family_mutant_dies_in_networks_and_under_the_fuzzer(mutant: zoo.Mutant) -> None:
    assert zoo_norm.conformance_kill(mutant) is not None, f"{mutant.name} survives conformance"
    assert zoo_kill.fuzz_kill(mutant, 60, shrink=False) is not None, \
        f"{mutant.name} survives 60 fuzz examples focused on {mutant.ops}"
