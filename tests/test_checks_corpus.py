"""The corpus (examples/corpus/): course-style layers written for this project, each checked in
the README's shortest form with default arguments. Every correct layer must pass (no false
alarm) and every planted bug must be found with its expected message."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

CORPUS = Path(__file__).parent.parent / "examples" / "corpus"


def _cases():
    sys.path.insert(0, str(CORPUS))
    try:
        return importlib.import_module("cases")
    finally:
        sys.path.remove(str(CORPUS))


CORPUS_CASES = _cases()
BY_NAME = {case.name: case for case in CORPUS_CASES.CASES}
CORRECT = [n for n, want in CORPUS_CASES.EXPECTED.items() if want is None]
BUGS = [n for n, want in CORPUS_CASES.EXPECTED.items() if want is not None]


def _text(result) -> str:
    return result.describe() if hasattr(result, "summary") else \
        "\n".join([result.describe(), *result.notes])


def test_the_corpus_has_thirty_correct_layers_and_a_bug_of_every_class() -> None:
    assert len(CORRECT) >= 30
    assert len(BY_NAME) == len(CORPUS_CASES.CASES)  # names are unique
    classes = {"conv_crop", "conv_size", "max_pool_assign", "batchnorm_biased",
               "spatial_batchnorm_per_pixel", "relu_inplace", "rnn_step_bug", "lstm_step_bug",
               "dropout_per_feature", "dropout_not_inverted", "word_embedding_assign",
               "affine_leak", "softmax_loss_naive", "value_reciprocal_bug"}
    assert classes <= set(BUGS)
    assert {"rnn_step", "rnn", "lstm_step", "lstm", "reciprocal", "value_reciprocal",
            "dropout", "micrograd_mlp", "seed_net", "two_layer_net"} <= set(CORRECT)


@pytest.mark.parametrize("name", CORRECT)
def test_a_correct_layer_passes_with_default_arguments(name) -> None:
    result = BY_NAME[name].run()
    assert result.passed, _text(result)


@pytest.mark.parametrize("name", BUGS)
def test_a_planted_bug_is_found_with_its_message(name) -> None:
    result = BY_NAME[name].run()
    assert not result.passed
    assert CORPUS_CASES.EXPECTED[name] in _text(result), _text(result)
