"""``make mutate``'s record (mutation/mutate.py) and the report section that renders it
(reports/sections/mutation.py): shown only when mutation/results.json exists."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from mutation import mutate
from reports import report
from reports.sections import RunContext
from reports.sections import mutation as section

ROOT = Path(__file__).resolve().parents[1]
# Exit codes as mutmut 3.8.1 writes them: 1 killed, 0 survived, 33 no tests, 36 timeout.
CODES = {
    "manual.ops.softmax.x_softmax_forward__mutmut_1": ("manual/ops/softmax.py", 1),
    "manual.ops.softmax.x_softmax_forward__mutmut_2": ("manual/ops/softmax.py", 0),
    "manual.ops.softmax.x_softmax_backward__mutmut_1": ("manual/ops/softmax.py", 36),
    "manual.ops.softmax.x_softmax_backward__mutmut_2": ("manual/ops/softmax.py", 0),
    "manual.network.xǁGraphǁforward__mutmut_1": ("manual/network.py", 0),
    "manual.network.xǁGraphǁforward__mutmut_2": ("manual/network.py", 33),
    "manual.spec.x_parse_spec__mutmut_1": ("manual/spec.py", 0),  # outside the targets
}
TRIAGE = {
    "manual.ops.softmax.x_softmax_forward__mutmut_2": {"class": "equivalent", "reason": "same"},
    "manual.ops.softmax.x_softmax_backward__mutmut_2": {"class": "unreachable", "reason": "far"},
}


@pytest.fixture
def record() -> dict:
    return mutate.summarize(CODES, TRIAGE, ["manual.ops.*", "manual.network.*"],
                            wall_seconds=12.34, max_children=2, killer=["tests/test_x.py"])


def test_targets_become_mutmut_name_globs() -> None:
    assert mutate.mutant_glob("manual/ops/") == "manual.ops.*"
    assert mutate.mutant_glob("manual/network.py") == "manual.network.*"
    assert mutate.mutant_glob("manual.ops.softmax.*") == "manual.ops.softmax.*"


def test_mutant_names_give_their_function() -> None:
    assert mutate.function_of("manual.ops.softmax.x_softmax_forward__mutmut_5") == \
        "softmax_forward"
    assert mutate.function_of("manual.network.xǁGraphǁforward__mutmut_1") == "Graph.forward"


def test_score_counts_timeouts_as_detected_and_leaves_no_tests_out(record: dict) -> None:
    assert record["mutants"] == 6  # parse_spec is outside the targets
    assert record["counts"] == {"killed": 1, "no tests": 1, "survived": 3, "timeout": 1}
    assert (record["detected"], record["undetected"]) == (2, 3)
    assert record["score"] == round(2 / 5, 4)
    assert record["score_excluding_equivalent"] == round(2 / 4, 4)
    assert record["triage_counts"] == {"equivalent": 1, "unreachable": 1, "untriaged": 1}
    rows = {r["file"]: r for r in record["files"]}
    assert rows["manual/network.py"] == {"file": "manual/network.py", "mutants": 2,
                                         "detected": 0, "survived": 1, "no_tests": 1,
                                         "not_checked": 0, "score": 0.0}


def test_a_triage_entry_needs_a_known_class_and_a_reason(tmp_path: Path) -> None:
    bad = tmp_path / "triage.toml"
    bad.write_text('[mutants]\n"a.x_f__mutmut_1" = { class = "fine", reason = "r" }\n')
    with pytest.raises(ValueError, match=r"a\.x_f__mutmut_1"):
        mutate.load_triage(bad)
    bad.write_text('[mutants]\n"a.x_f__mutmut_1" = { class = "equivalent" }\n')
    with pytest.raises(ValueError, match="reason"):
        mutate.load_triage(bad)


def test_section_is_left_out_without_results(tmp_path: Path) -> None:
    assert section.collect(RunContext(), path=tmp_path / "absent.json") is None


def test_section_counts_unexplained_survivors_as_failures(record: dict, tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    data = section.collect(RunContext(), path=path)
    assert data is not None
    assert section.summarize(data) == {"passed": 2 + 2, "failed": 1}
    assert data["survivors"][0]["triage"] == "untriaged"  # unexplained first


def test_template_shows_score_files_and_survivors(record: dict, tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    data = json.loads(json.dumps(section.collect(RunContext(), path=path)))
    html = report.environment().get_template(f"sections/{section.KEY}.html.j2").render(
        data=data, figures={}, context=RunContext())
    assert 'id="mutation-files"' in html and 'id="mutation-survivors"' in html
    assert "Graph.forward" in html and "manual/network.py" in html
    assert "1 survivor not explained" in html
    assert "took 12.3 s with 2 children" in html


def test_every_committed_survivor_is_triaged_and_named_killers_exist() -> None:
    """The committed run's survivors each have a triage entry; an entry that says "killed"
    names a test in tests/test_mutants_*.py that exists."""
    results = ROOT / "mutation" / "results.json"
    if not results.is_file():
        pytest.skip("no committed mutation run")
    record = json.loads(results.read_text(encoding="utf-8"))
    triage = mutate.load_triage()
    assert [s["mutant"] for s in record["survivors"] if s["mutant"] not in triage] == []
    tests = "\n".join(p.read_text(encoding="utf-8")
                      for p in (ROOT / "tests").glob("test_mutants_*.py"))
    for name, entry in triage.items():
        if entry["class"] == "killed":
            test = re.search(r"test_\w+", entry["reason"])
            assert test and f"def {test.group(0)}(" in tests, name
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    killer = config["tool"]["mutmut"]["pytest_add_cli_args_test_selection"]
    assert all(f"tests/{p.name}" in killer for p in (ROOT / "tests").glob("test_mutants_*.py"))
