"""The report's layers section: one case per layer sample x dtype x mode, grouped, and a broken
layer shown as failing."""

from __future__ import annotations

import pytest

from reference.conformance.samples import layer_cases, layers_with_samples
from reference.zoo import conv as zoo_conv
from reports import report
from reports.sections import RunContext
from reports.sections import layers as section


@pytest.fixture(scope="module")
def record() -> dict:
    return section.collect(RunContext())


def test_every_case_is_counted_and_every_layer_grouped(record: dict) -> None:
    assert record["passed"] + record["failed"] == len(list(layer_cases())) > 200
    assert record["failed"] == 0
    assert {g["layer"] for g in record["groups"]} == set(layers_with_samples())
    assert any(g["state"] for g in record["groups"] if g["layer"] == "batch_norm")


def test_a_broken_layer_fails_its_group_and_is_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    mutant = next(m for m in zoo_conv.CONV_MUTANTS if m.name == "conv2d_pad_slice_p_to_minus_p")
    mutant.apply(monkeypatch)
    data = section.collect(RunContext())
    assert data["failed"] > 0
    assert all(g["layer"] == "conv2d" for g in data["groups"] if g["failed"])
    html = report.environment().get_template("sections/layers.html.j2").render(
        data=data, figures={}, context=None)
    assert "Failing cases" in html and "conv2d-" in html
