"""The seed's worked example: every printed figure, computed by both engines.

PyTorch is the authority: where the seed's printed figure disagrees with it
beyond the printed rounding, the test asserts PyTorch's value and the figure
must be flagged with an explanation (the README lists the same disagreements).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from reports.experiments.seed_figures import SEED_DATA, SEED_SPEC, seed_figures, seed_record

# Closed forms, written out independently of both engines.
Z1 = np.array([0.5, 1.1, 1.7])
Z2 = 0.7 * 0.5 + 0.8 * 1.1 + 0.9 * 1.7
A2 = 1 / (1 + math.exp(-Z2))
DZ2 = A2 - 1.0  # sigmoid + BCE: the sigmoid's derivative cancels
EXPECTED = {
    "z1": Z1, "a1": Z1, "z2": [Z2], "a2": [A2], "L": [-math.log(A2)],
    "dL/da2": [-1 / A2], "dL/dz2": [DZ2],
    "dL/dW2": DZ2 * Z1, "dL/db2": [DZ2],
    "dL/da1": DZ2 * np.array([0.7, 0.8, 0.9]), "dL/dz1": DZ2 * np.array([0.7, 0.8, 0.9]),
    "dL/dW1": np.outer(DZ2 * np.array([0.7, 0.8, 0.9]), [1.0, 2.0]).ravel(),
    "dL/db1": DZ2 * np.array([0.7, 0.8, 0.9]),
}
# The figures the seed gets wrong: a2 is rounded up, and the seed applies the
# sigmoid's derivative twice from dL/dz2 on (its dL/da2 is really dL/dz2).
DISAGREEING = {"a2", "dL/da2", "dL/dz2", "dL/dW2", "dL/db2", "dL/da1", "dL/dz1", "dL/dW1",
               "dL/db1"}

FIGURES = seed_figures()


@pytest.mark.parametrize("figure", FIGURES, ids=[f.name for f in FIGURES])
def test_both_engines_give_pytorchs_value(figure) -> None:
    np.testing.assert_allclose(figure.reference, EXPECTED[figure.name], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(figure.manual, figure.reference, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("figure", FIGURES, ids=[f.name for f in FIGURES])
def test_printed_figure_is_flagged_exactly_when_it_disagrees(figure) -> None:
    assert figure.agrees == (figure.name not in DISAGREEING)
    assert bool(figure.explanation) == (not figure.agrees)
    if figure.agrees:
        np.testing.assert_allclose(figure.printed, figure.reference,
                                   atol=0.5 * 10.0**-figure.decimals)


def test_every_seed_figure_is_covered() -> None:
    assert [f.name for f in FIGURES] == list(EXPECTED)


def test_seed_example_record_passes() -> None:
    record = seed_record()
    assert record.passed, record.describe()


def test_cli_json_reports_pytorchs_values_for_the_seed_example() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reports.cli", "compare", str(SEED_SPEC), "--data", str(SEED_DATA),
         "--json"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["passed"] and record["first_divergence"] is None
    tensors = {t["name"]: t for t in record["tensors"]}
    np.testing.assert_allclose(tensors["backward: layers.2.weight"]["manual"], [DZ2 * Z1],
                               rtol=1e-14)
    np.testing.assert_allclose(tensors["forward: loss"]["reference"], -math.log(A2), rtol=1e-15)
