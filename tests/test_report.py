"""The HTML report: strict JSON, escaping, determinism, atomic writes, resilient sections."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from reports import report
from reports.cli import main
from reports.sections import RunContext, conformance, discover, seed_example

MINE = ("conformance", "seed_example")


def _strict(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def _section(key: str, record: Any = None, *, fails: bool = False, order: int = 50,
             figures: Any = None) -> ModuleType:
    """A stand-in section module (no template of its own)."""
    module = ModuleType(f"fake_{key}")
    module.KEY, module.TITLE, module.ORDER = key, f"Fake {key}", order  # type: ignore[attr-defined]

    def collect(context: RunContext) -> Any:
        if fails:
            raise RuntimeError("the experiment blew up")
        return record

    module.collect = collect  # type: ignore[attr-defined]
    if figures is not None:
        module.figures = figures  # type: ignore[attr-defined]
    return module


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("report")
    results, problems = report.run(out, "quick", 0, only=MINE)
    assert problems == []
    return out, results


def test_results_json_is_strict_sorted_json_and_the_page_renders_from_it(built) -> None:
    out, results = built
    text = (out / "results.json").read_text()
    assert _strict(text) == results
    assert text == json.dumps(_strict(text), indent=1, sort_keys=True) + "\n"
    assert (out / "index.html").read_text() == report.render(_strict(text))


def test_summary_counts_every_section_and_passes(built) -> None:
    _, results = built
    summary, sections = results["summary"], results["sections"]
    assert summary["verdict"] == "pass"
    assert summary["passed"] == sum(sections[k]["passed"] for k in MINE) > 400
    assert summary["failed"] == 0
    assert set(summary["by_dtype"]) == {"float32", "float64"}
    for entry in summary["by_dtype"].values():
        assert 0 < entry["tolerance_ratio"] <= 1
        assert entry["headroom"] == pytest.approx(1 / entry["tolerance_ratio"])
    meta = results["meta"]
    assert (meta["profile"], meta["seed"], meta["generated"]) == ("quick", 0, None)
    assert set(meta["versions"]) >= {"python", "numpy", "torch"}


def test_conformance_covers_every_registered_op_in_both_dtypes(built) -> None:
    from manual.registry import OPS

    _, results = built
    rows = results["sections"]["conformance"]["ops"]
    assert {(r["op"], r["dtype"]) for r in rows} == {
        (op, dtype) for op in OPS for dtype in ("float32", "float64")}
    assert all(r["alone"] >= 1 and r["networks"] >= 1 for r in rows)


def test_the_seed_section_flags_and_explains_every_disagreement(built) -> None:
    out, results = built
    figures = results["sections"]["seed_example"]["figures"]
    differing = [f for f in figures if not f["agrees"]]
    assert differing and all(f["explanation"] for f in differing)
    assert all(f["engines_agree"] for f in figures)
    page = (out / "index.html").read_text()
    assert page.count("⚠ differs") == len(differing)


def test_the_page_is_self_contained(built) -> None:
    page = (built[0] / "index.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "@import" not in page and not re.search(r"url\((?!#)", page)  # only url(#id)
    assert page.count("<script") == 1  # the table sorter, nothing else
    assert page.count('<svg role="img" class="plot"') == 1


def test_same_seed_gives_byte_identical_files(built, tmp_path: Path) -> None:
    out, _ = built
    report.run(tmp_path, "quick", 0, only=MINE)
    for name in ("results.json", "index.html"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_a_date_appears_only_with_source_date_epoch(monkeypatch, built) -> None:
    _, results = built
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")
    stamped = report.build_results(results["sections"], RunContext(), [conformance])
    assert stamped["meta"]["generated"] == "1970-01-02 00:00:00 UTC"
    assert "built 1970-01-02 00:00:00 UTC" in report.render(stamped, [conformance])
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ValueError, match="SOURCE_DATE_EPOCH"):
        report.generated()


def test_spec_text_comes_out_inert() -> None:
    import manual
    from reference.conformance.matrix import network_data, network_spec
    from reference.core.compare import compare_network

    spec = network_spec("relu", "mse", "float64").to_dict()
    spec["name"] = "<script>alert(1)</script>"
    parsed = manual.parse_spec(spec)
    row = conformance.case_row(compare_network(parsed, network_data(parsed)))
    row["passed"] = False  # shown in the failures table too
    row["options"] = "<img src=x onerror=alert(2)>"
    results = report.build_results({"conformance": conformance.tabulate([row])}, RunContext(),
                                   [conformance])
    page = report.render(json.loads(report.dumps(results)), [conformance])
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page


@pytest.mark.parametrize("value, text", [
    (1.5e-7, "1.50e-07"), (0.0123, "0.0123"), (0.0, "0"), (3, "3"), ("inf", "inf"),
    ("-inf", "-inf"), ("nan", "nan"), (math.inf, "inf"), (None, ""), ("relu", "relu"),
], ids=lambda v: repr(v))
def test_numbers_are_formatted_as_text(value, text) -> None:
    assert report.fmt(value) == text


@pytest.mark.parametrize("ratio, red", [
    (0.0, False), (1e-9, False), (0.5, False), (1.0, False), (1.01, True), ("inf", True),
    ("nan", True),
], ids=str)
def test_the_colour_scale_turns_red_only_above_the_tolerance(ratio, red) -> None:
    assert (report.heat(ratio) == "background:#f4c7c3") is red
    assert report.heat(None) == ""  # nothing measured


def test_non_finite_errors_are_written_as_strings_and_fail_the_verdict(tmp_path: Path) -> None:
    record = {"passed": 1, "failed": 1, "worst": math.nan,
              "errors": {"float32": {"max_rel_error": math.inf, "tolerance_ratio": math.nan}}}
    modules = [_section("explodes", record)]
    report.write(tmp_path, report.build_results(report.collect(RunContext(), modules),
                                                RunContext(), modules), modules)
    results = _strict((tmp_path / "results.json").read_text())
    assert results["sections"]["explodes"]["worst"] == "nan"
    assert results["summary"]["by_dtype"]["float32"] == {
        "max_rel_error": "inf", "tolerance_ratio": "inf", "headroom": 0.0}
    assert results["summary"]["verdict"] == "fail"
    page = (tmp_path / "index.html").read_text()
    assert '<div class="badge fail" data-summary="verdict">FAIL</div>' in page


def test_a_failing_section_is_shown_and_the_others_still_render(tmp_path: Path) -> None:
    modules = [*(m for m in discover() if m.KEY == "seed_example"),
               _section("broken", fails=True), _section("extra", {"note": "<b>hi</b>"}),
               _section("skipped", None)]
    context = RunContext()
    built = report.build_results(report.collect(context, modules), context, modules)
    report.write(tmp_path, built, modules)
    page = (tmp_path / "index.html").read_text()
    assert [s["key"] for s in built["meta"]["sections"]] == ["seed_example", "broken", "extra"]
    assert "RuntimeError: the experiment blew up" in page
    assert "\\u003cb\\u003ehi\\u003c/b\\u003e" in page  # no template: the record, escaped
    assert built["summary"]["sections"]["broken"] == {"passed": 0, "failed": 1,
                                                      "status": "error"}
    assert built["summary"]["sections"]["extra"]["status"] == "not counted"
    assert built["summary"]["verdict"] == "fail"


def test_an_interrupted_write_leaves_the_old_report_whole(tmp_path: Path, monkeypatch) -> None:
    good = tmp_path / "index.html"
    good.write_text("the good report")

    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        report.atomic_write(good, "half a new report")
    assert good.read_text() == "the good report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html"]


def test_a_section_that_cannot_be_drawn_is_shown_as_an_error(tmp_path: Path) -> None:
    def broken_figures(data: Any) -> dict[str, str]:
        raise ValueError("cannot draw")

    modules = [*(m for m in discover() if m.KEY == "seed_example"),
               _section("plots", {"passed": 1, "failed": 0}, figures=broken_figures)]
    built = report.build_results(report.collect(RunContext(), modules), RunContext(), modules)
    assert report.write(tmp_path, built, modules) == ["section plots: ValueError: cannot draw"]
    page = (tmp_path / "index.html").read_text()
    assert "1 section could not be drawn" in page
    assert "<pre>ValueError: cannot draw</pre>" in page
    assert '<table class="sortable" id="seed-figures">' in page


def test_svg_figures_are_deterministic_inline_and_escaped() -> None:
    from reports.plots import ratio_dots

    def draw(salt: str) -> str:
        return ratio_dots(["<script>x</script>", "relu"], {"float32": [0.5, 0.0],
                                                            "float64": ["inf", None]},
                          salt=salt, title="a & b")

    first, again, other = draw("a:1"), draw("a:1"), draw("a:2")
    assert first == again != other
    assert first.startswith("<svg ") and "<?xml" not in first and "<dc:date>" not in first
    ids = set(re.findall(r'id="([^"]+)"', first))
    assert ids and not ids & set(re.findall(r'id="([^"]+)"', other))
    assert set(re.findall(r'href="#([^"]+)"', first)) <= ids
    assert "<script" not in first and "&lt;script&gt;" in first


def test_nothing_checked_is_not_a_pass() -> None:
    summary = report.summarize({"quiet": {"passed": 0, "failed": 0}}, {})
    assert (summary["verdict"], summary["passed"], summary["failed"]) == ("empty", 0, 0)


def test_summary_headroom_is_the_inverse_of_the_worst_ratio() -> None:
    records = {"a": {"passed": 3, "failed": 0,
                     "errors": {"float64": {"max_rel_error": 1e-9, "tolerance_ratio": 0.25}}},
               "b": {"passed": 2, "failed": 0,
                     "errors": {"float64": {"max_rel_error": 1e-8, "tolerance_ratio": 0.1}}}}
    summary = report.summarize(records, {})
    assert summary["by_dtype"]["float64"] == {"max_rel_error": 1e-8, "tolerance_ratio": 0.25,
                                              "headroom": 4.0}
    assert (summary["verdict"], summary["passed"], summary["failed"]) == ("pass", 5, 0)


def test_the_command_writes_the_report_and_rejects_bad_input(tmp_path: Path, capsys) -> None:
    assert main(["report", "--out", str(tmp_path), "--section", "seed_example"]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"index.html", "results.json"}
    assert main(["report", "--out", str(tmp_path), "--section", "nope"]) == 2
    assert "sections: unknown nope" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--profile", "huge"])
    assert exit_.value.code == 2


def test_the_seed_section_is_left_out_without_the_worked_example(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "reports.experiments.seed_figures", None)
    assert seed_example.collect(RunContext()) is None
