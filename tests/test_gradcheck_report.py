"""The report's gradient-check section: collect, strict JSON, figures, template, determinism."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import manual
from manual.gradcheck import GOOD, NetworkEvaluator
from manual.layers import LAYERS
from reports import report
from reports.sections import RunContext
from reports.sections import gradcheck as section

SMALL = ((4, 8), (6, 12), (8, 16))
BENCH = {
    "benchmark": "benchmarks/bench_gradcheck.py",
    "machine": {"date": "2026-01-01 00:00 UTC", "python": "3", "numpy": "2", "torch": "2",
                "cpu_count": 2, "env": {"OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None},
                "caveat": "<b>caveat</b>"},
    "rows": [{"name": "mlp", "P": 10, "full": 0.5, "torch_slow": 5.0,
              "torch_slow_extrapolated": True, "ratio_slow_over_full": 10.0,
              "projection": 0.001, "torch_fast": 0.003, "ratio_fast_over_projection": 3.0}],
    "slopes": {"full": 1.5},
}


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Small sizes, two random networks, and no committed benchmark file."""
    monkeypatch.setitem(section.SIZES, "quick", SMALL)
    monkeypatch.setitem(section.RANDOM_NETWORKS, "quick", 2)
    monkeypatch.setattr(section, "BENCHMARK", tmp_path / "absent.json")
    monkeypatch.setattr(section, "LATEST", tmp_path / "absent-too.json")
    return tmp_path


@pytest.fixture(scope="module")
def record() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(section.SIZES, "quick", SMALL)
        patch.setitem(section.RANDOM_NETWORKS, "quick", 2)
        return section.collect(RunContext())


def test_record_covers_the_seed_example_the_kink_example_and_random_networks(record: Any) -> None:
    subjects = {row["subject"] for row in record["rows"]}
    assert {"seed example", "kink example"} <= subjects and len(subjects) == 4
    assert record["failed"] == 0 and record["passed"] == len(record["rows"])
    seed_rows = [r for r in record["rows"] if r["subject"] == "seed example"]
    assert {r["mode"] for r in seed_rows} == {"full", "projection"}
    assert all(r["max_rel_error"] <= GOOD for r in seed_rows)
    kink_rows = [r for r in record["rows"] if r["subject"] == "kink example"
                 and r["mode"] == "full"]
    # the unit at its kink moves with both of its weights, its bias and both inputs
    assert sum(r["kinks_crossed"] for r in kink_rows) == 5


def test_scaling_counts_operations_and_fits_a_slope_per_series(record: Any) -> None:
    scaling = record["scaling"]
    points = scaling["points"]
    assert scaling["unit"] == "multiply-adds" and len(points) == len(SMALL)
    assert [p["P"] for p in points] == sorted(p["P"] for p in points)
    assert set(scaling["slopes"]) == {"backward", "forward", "full", "seed_loop"}
    for (features, hidden), p in zip(SMALL, points, strict=True):
        weights = features * hidden + hidden * hidden + hidden * 10
        assert p["forward"] == section.BATCH * weights
        assert p["backward"] == 2 * section.BATCH * weights  # G W and G^T X per layer
        assert p["seed_loop_forwards"] == 2 * p["P"]
        assert p["seed_loop"] == p["seed_loop_forwards"] * p["forward"]
        assert p["full_evaluations"] == 2 * (p["P"] + section.BATCH * features)
        assert p["full_passed"] and 0 < p["full"] < p["seed_loop"]
        assert all(isinstance(p[k], int) for k in ("forward", "backward", "full", "seed_loop"))


def test_measured_slopes_show_linear_backprop_and_quadratic_numerical_gradients(
        record: Any) -> None:
    slopes = record["scaling"]["slopes"]
    assert slopes["backward"] == pytest.approx(1.0, abs=0.1)
    assert slopes["seed_loop"] == pytest.approx(2.0, abs=0.1)
    assert slopes["backward"] + 0.3 < slopes["full"] < slopes["seed_loop"] + 0.05


def test_the_evaluator_counts_the_products_it_performs() -> None:
    # Perturbing an input element changes one row: each copy costs one row through every layer.
    spec = section.mlp_spec(3, 5, classes=2)
    data = section.mlp_data(spec, batch=4)
    evaluator = NetworkEvaluator(spec, data)
    assert evaluator.multiply_adds == 0
    evaluator.differences("input", 1e-6, flat=np.arange(data.x.size))
    weights = 3 * 5 + 5 * 5 + 5 * 2
    assert evaluator.multiply_adds == 2 * data.x.size * weights


def test_the_counter_wraps_the_engine_and_puts_it_back() -> None:
    before = LAYERS["linear"]
    spec = section.mlp_spec(3, 4, classes=2)
    data = section.mlp_data(spec, batch=5)
    net = manual.build(spec)
    with section.LinearCounter().installed() as counter:
        net.loss(net.forward(data.x), data.y)
        net.backward()
    assert LAYERS["linear"] is before
    assert counter.forward_calls == 3
    assert counter.multiply_adds == 3 * 5 * (3 * 4 + 4 * 4 + 4 * 2)


def test_collect_twice_gives_identical_json(small: Path) -> None:
    first, second = (section.collect(RunContext()) for _ in range(2))
    assert first is not None and second is not None
    assert report.dumps(first) == report.dumps(second)
    assert first["benchmark"] is None  # the fixture hides the committed benchmark file


def test_the_report_of_this_section_is_byte_identical_on_a_rerun(small: Path) -> None:
    outs = [small / "one", small / "two"]
    for out in outs:
        _, problems = report.run(out, "quick", 0, only=[section.KEY])
        assert problems == []
    for name in ("results.json", "index.html"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_section_renders_from_its_strict_json_record(record: Any) -> None:
    results = json.loads(report.dumps(report.build_results({section.KEY: record}, RunContext(),
                                                           modules=[section])))
    problems: list[str] = []
    html = report.render(results, modules=[section], problems=problems)
    assert problems == []
    assert 'id="gradcheck-tensors"' in html and 'id="gradcheck-scaling"' in html
    assert "<svg" in html and "multiply-adds" in html and "slope" in html


def test_the_last_benchmark_run_is_read_verbatim_and_shown_escaped(tmp_path: Path) -> None:
    path = tmp_path / "bench_gradcheck.json"
    assert section.last_benchmark(path) is None
    path.write_text(json.dumps(BENCH))
    figures = section.last_benchmark(path)
    assert figures == {"source": section.BENCHMARK_NAME, **BENCH}
    html = report.environment().get_template("sections/gradcheck.html.j2").render(
        data={"passed": 0, "failed": 0, "kinks_crossed": 0, "rows": [],
              "bands": {"good": 1e-7, "acceptable": 1e-4},
              "scaling": {"batch": 32, "points": [], "slopes": {}}, "benchmark": figures},
        figures={"scaling": ""}, context=RunContext())
    assert 'id="gradcheck-benchmark"' in html and "(extrapolated)" in html
    assert "&lt;b&gt;caveat&lt;/b&gt;" in html and "<b>caveat</b>" not in html


def test_an_unreadable_benchmark_file_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "bench_gradcheck.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"bench_gradcheck\.json"):
        section.last_benchmark(path)
