"""The report's fuzz section: a JSON-able record that its template renders without recomputing."""

from __future__ import annotations

import json

import pytest

from reference.core.records import dumps
from reference.zoo import core as zoo
from reports import report
from reports.sections import RunContext
from reports.sections import fuzz as section


@pytest.fixture(scope="module")
def record() -> dict:
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(section.EXAMPLES, "quick", 6)
        mp.setattr(zoo, "MUTANTS", (zoo.ZOO["tanh_one_minus_y"], zoo.ZOO["stale_cache"]))
        data = section.collect(RunContext(profile="quick", seed=1))
    return json.loads(dumps(data))  # what results.json holds


def _render(data: dict) -> str:
    template = report.environment().get_template(f"sections/{section.KEY}.html.j2")
    return template.render(data=data, figures={}, context=RunContext())


def test_record_counts_cases_and_kills(record: dict) -> None:
    assert record["campaign"]["cases"] == 6
    assert [k["mutant"] for k in record["zoo"]] == ["tanh_one_minus_y", "stale_cache"]
    assert record["failed"] == 0 and record["passed"] == 6 + 2
    assert set(record["errors"]) <= {"float32", "float64"}


def test_template_shows_summary_errors_and_kill_table(record: dict) -> None:
    html = _render(record)
    assert "6</b> random architectures" in html
    assert 'id="fuzz-ops"' in html and 'id="fuzz-zoo"' in html
    assert "tanh_one_minus_y" in html and "stale_cache" in html


def test_template_shows_a_failure_with_its_replay_command(record: dict) -> None:
    failing = json.loads(json.dumps(record))
    failing["campaign"]["passed"] = False
    failing["campaign"]["failures"] = [{
        "spec": {"input_shape": [1]}, "protocol": "single", "hidden_layers": 0,
        "first_divergence": "backward: layers.1 (tanh)", "message": "engines disagree",
        "reproduce": "backprop-harness compare s.json --data d.json"}]
    html = _render(failing)
    assert "backward: layers.1 (tanh)" in html
    assert "backprop-harness compare s.json --data d.json" in html
