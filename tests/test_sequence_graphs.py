"""The sequence-model strategy: valid specs that pass in both engines under every protocol,
drawn by ``fuzz_cases`` (unfocused, and when ``include`` names a cell or attention), and
recurrent and attention mutants killed by these whole networks."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import find as hypothesis_find
from hypothesis import strategies as st

from reference.fuzz.campaign import fails, fixed_constants, run_case
from reference.fuzz.sequence import CELLS, focused, sequence_graphs
from reference.fuzz.strategies import FuzzCase, fuzz_cases
from reference.zoo import recurrent as zoo_recurrent

BUDGET = settings(max_examples=25, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
MUTANTS = {m.name: m for m in zoo_recurrent.RECURRENT_MUTANTS}
TRANSFORMER = ["layer_norm", "multi_head_attention", "add", "layer_norm", "linear", "gelu",
               "linear", "add"]


def find(strategy, condition, max_examples: int = 200):
    return hypothesis_find(strategy, condition, settings=settings(
        max_examples=max_examples, derandomize=True, database=None, deadline=None,
        suppress_health_check=list(HealthCheck), phases=[Phase.generate]))  # no shrinking


@pytest.mark.parametrize("layer", [*CELLS, "multi_head_attention"])
def test_focused_cases_are_valid_and_pass(layer: str) -> None:
    @BUDGET
    @given(fuzz_cases(include=(layer,)))
    def check(case: FuzzCase) -> None:
        record = run_case(case)
        assert not record.failed, (case.spec.to_json(), case.protocol)

    check()


@BUDGET
@given(sequence_graphs())
def test_every_drawn_model_has_the_issue_s_shape(case) -> None:
    spec, data = case
    types = [node.type for node in spec.nodes]
    assert types[-1] == "linear" and types[-2] in ("select", "flatten")
    if spec.name == "sequence transformer":
        assert types[:8] == TRANSFORMER
        assert spec.nodes[1].inputs[:3] == ("ln1",) * 3  # [, padding]
    else:
        cell = spec.name.removeprefix("sequence ")
        assert cell in CELLS and cell in types and types.index(cell) in (0, 1)
    assert len(data.x) >= 1


def test_fuzz_cases_draws_them_unfocused_and_focused() -> None:
    assert find(fuzz_cases(), lambda c: c.spec.name.startswith("sequence"), 100) is not None
    assert focused(("lstm",)) and focused(("scaled_dot_product_attention",))
    assert not focused(("conv2d", "tanh"))
    # Focused, both the whole models and the one-node graphs of the layer are drawn.
    for wanted in (True, False):
        case = find(fuzz_cases(include=("gru",)),
                    lambda c, w=wanted: (c.spec.name == "sequence gru") == w, 50)
        assert "gru" in [node.type for node in case.spec.nodes]


@pytest.mark.parametrize(("mutant", "layer"), [
    ("lstm_cell_gradient_without_forget", "lstm"), ("gru_reset_before_product", "gru"),
    ("bptt_not_accumulated", "rnn"), ("attention_softmax_wrong_axis", "multi_head_attention"),
    ("attention_mask_after_softmax", "multi_head_attention"),
    ("attention_scale_missing_in_backward", "multi_head_attention")])
def test_a_zoo_mutant_dies_in_a_sequence_model(mutant: str, layer: str) -> None:
    strategy = st.tuples(sequence_graphs(include=(layer,)), st.just("single")).map(
        lambda pair: FuzzCase(*pair[0], pair[1]))
    with MUTANTS[mutant].inject(), fixed_constants():
        killed = find(strategy, fails, 60)
    assert killed.spec.name.startswith("sequence")
    assert not run_case(killed).failed  # the same case passes once the mutant is gone
