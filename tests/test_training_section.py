"""The report's training section: counted checks, both dtypes' curves, the tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports import report
from reports.sections import training


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(training.STEPS, "quick", 40)
        out = tmp_path_factory.mktemp("report")
        results, problems = report.run(out, "quick", 0, only=["training"])
    assert problems == []
    return out, results


def test_every_check_is_counted_and_passes(built) -> None:
    _, results = built
    data = results["sections"]["training"]
    assert results["summary"]["sections"]["training"]["status"] == "pass"
    rows, zoo = data["conformance"], data["zoo"]
    assert data["passed"] == len(rows) + len(zoo) + 2 and data["failed"] == 0
    assert {r["dtype"] for r in rows} == {"float32", "float64"}
    assert all(k["killed"] for k in zoo)
    float64, float32 = data["runs"]
    assert (float64["dtype"], float32["dtype"]) == ("float64", "float32")
    assert len(float32["float64_diff"]) == len(float32["param_diff"]) == 40
    assert [m["step"] for m in data["milestones"]] == [1, 10, 40]


def test_page_shows_both_dtypes_curves_and_tables(built) -> None:
    out, _ = built
    page = (out / "index.html").read_text()
    for anchor in ("training-loss", "training-drift", "training-conformance", "training-zoo",
                   "training-accuracy", "float32 PyTorch vs float64 PyTorch"):
        assert anchor in page


def test_a_missed_float64_target_fails_the_section(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(training.STEPS, "quick", 5)
    monkeypatch.setattr(training, "FLOAT64_TARGET", 0.0)
    results, _ = report.run(tmp_path, "quick", 0, only=["training"])
    assert results["sections"]["training"]["failed"] == 1
    assert results["summary"]["verdict"] == "fail"
