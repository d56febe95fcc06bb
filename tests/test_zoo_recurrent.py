"""Every recurrent and attention mutant is caught by the layer comparison, and undone after."""

from __future__ import annotations

import numpy as np
import pytest

from manual.ops import attention, recurrent
from reference.zoo.recurrent import RECURRENT_MUTANTS, layer_kill


@pytest.mark.parametrize("mutant", RECURRENT_MUTANTS, ids=[m.name for m in RECURRENT_MUTANTS])
def test_mutant_is_caught(mutant):
    assert layer_kill(mutant), f"{mutant.name} survived every sample of {mutant.ops}"


def test_at_least_eight_mutants_with_distinct_names():
    names = [m.name for m in RECURRENT_MUTANTS]
    assert len(names) >= 8 and len(set(names)) == len(names)


def test_injection_is_undone():
    helpers = {(module, name): getattr(module, name)
               for module, name in [(recurrent, "weight_gradients"), (recurrent, "lstm_gates"),
                                    (recurrent, "lstm_step_backward"),
                                    (recurrent, "gru_new_gate"), (attention, "default_scale"),
                                    (attention, "masked_softmax"),
                                    (attention, "scores_backward")]}
    for mutant in RECURRENT_MUTANTS:
        with mutant.inject():
            assert any(getattr(m, n) is not f for (m, n), f in helpers.items())
    assert all(getattr(m, n) is f for (m, n), f in helpers.items())


def test_caught_on_the_samples_that_exercise_the_mistake():
    by_name = {m.name: m for m in RECURRENT_MUTANTS}
    caught = layer_kill(by_name["attention_mask_after_softmax"])
    # Unmasked samples cannot show a masking mistake; masked ones must.
    assert caught and all(any(w in line for w in ("mask", "causal", "blank")) for line in caught)
    assert any(line.startswith("scaled_dot_product_attention/boolean_mask") for line in caught)
    assert any(line.startswith("multi_head_attention/key_padding_mask") for line in caught)
    lengths = layer_kill(by_name["bptt_not_accumulated"])
    assert not any("length_1" in line for line in lengths)  # one step: nothing to sum
    assert np.all([line.split("/")[0] in ("rnn", "lstm", "gru") for line in lengths])
