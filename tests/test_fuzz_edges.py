"""The fuzzer reaches the edges, counts them, and a campaign that misses one fails.

Edge cases are found with :func:`hypothesis.find` (generation only, no engine run), then
checked against what the edge class promises, in both engines where it is a value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.errors import NoSuchExample

from manual.registry import ACTIVATIONS, LOSSES
from reference.core.compare import compare_network
from reference.fuzz import edges as edge
from reference.fuzz import strategies as hst
from reference.fuzz.campaign import (
    COVERAGE_MIN_CASES,
    CampaignRecord,
    coverage_gaps,
    coverage_verdict,
    fixed_constants,
    run_campaign,
)
from reference.fuzz.shards import merge
from reports.cli import main

FIND = settings(max_examples=400, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck), phases=(Phase.generate,))


def _find(condition: Any, **kwargs: Any) -> hst.FuzzCase:
    with fixed_constants():
        return find(hst.fuzz_cases(graphs_too=False, **kwargs), condition, settings=FIND)


def _forward(case: hst.FuzzCase) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with np.errstate(all="ignore"):
        record = compare_network(case.spec, case.data, keep_values=True)
    return {t.name: (np.asarray(t.manual), np.asarray(t.reference)) for t in record.tensors
            if t.name.startswith("forward: layers.")}


@pytest.mark.parametrize("dtype", hst.DTYPES)
def test_a_hidden_pre_activation_sits_exactly_on_a_kink_in_both_engines(dtype: str) -> None:
    case = _find(lambda c: "kink_beyond_input" in c.edges and "loss_kink" not in c.edges,
                 dtypes=(dtype,))
    values = _forward(case)
    hits = []
    for i, layer in enumerate(case.spec.layers[1:], 1):
        op = ACTIVATIONS.get(layer.type)
        if op is None or case.spec.layers[i - 1].type != "linear":
            continue
        m, r = values[f"forward: layers.{i - 1}"]
        for k in op.domain.kinks(layer.options):
            hits.append(bool(np.any((m == np.asarray(k, dtype)) & (r == np.asarray(k, dtype)))))
    assert any(hits), case.spec.to_json()


def test_a_loss_kink_puts_an_output_exactly_on_its_target() -> None:
    case = _find(lambda c: "loss_kink" in c.edges)
    assert case.spec.loss.type in ("l1", "smooth_l1")
    output = _forward(case)[f"forward: layers.{len(case.spec.layers) - 1}"]
    assert all(bool(np.any(side == case.data.y)) for side in output)


@pytest.mark.parametrize("dtype", hst.DTYPES)
def test_near_overflow_logits_pass_exps_limit_and_stay_finite(dtype: str) -> None:
    case = _find(lambda c: "near_overflow" in c.edges, dtypes=(dtype,))
    values = _forward(case)
    largest = max(float(np.max(m)) for m, _ in values.values())
    assert largest >= min(edge.OVERFLOW_SHIFT[dtype]) - 8
    assert all(np.isfinite(r).all() for _, r in values.values())


def test_saturated_probabilities_reach_an_ulp_of_one() -> None:
    case = _find(lambda c: "saturated" in c.edges and c.spec.loss.type == "bce",
                 dtypes=("float32",))
    _, r = _forward(case)[f"forward: layers.{len(case.spec.layers) - 1}"]
    assert float(np.max(r)) >= 1 - 2 * np.finfo(np.float32).eps


def test_soft_targets_off_the_simplex_and_with_zeros() -> None:
    unnormalised = _find(lambda c: "unnormalised_target" in c.edges)
    sums = unnormalised.data.y.sum(axis=-1) if not unnormalised.spec.loss.options.get(
        "log_target") else np.exp(unnormalised.data.y).sum(axis=-1)
    assert not np.allclose(sums, 1)
    zeros = _find(lambda c: "zero_target" in c.edges)
    assert (zeros.data.y == 0).any() and zeros.spec.loss.type in ("kl_div", "cross_entropy")
    assert np.allclose(zeros.data.y.sum(axis=-1), 1, atol=1e-5) or \
        "unnormalised_target" in zeros.edges


def test_batch_sizes_one_and_large_are_drawn() -> None:
    assert len(_find(lambda c: len(c.data.x) == 1).data.x) == 1
    large = _find(lambda c: len(c.data.x) >= edge.LARGE_BATCH)
    assert edge.batch_classes(len(large.data.x)) == (">1", "large")


def test_without_edges_nothing_is_tagged_and_batches_stay_small() -> None:
    with fixed_constants(), pytest.raises(NoSuchExample):
        find(hst.fuzz_cases(graphs_too=False, edges=False),
             lambda c: bool(c.edges) or len(c.data.x) > 32, settings=settings(FIND,
                                                                            max_examples=100))


def _full_record(cases: int = COVERAGE_MIN_CASES) -> CampaignRecord:
    record = CampaignRecord(examples=cases, seed=0, cases=cases)
    record.dtypes = {d: 1 for d in hst.DTYPES}
    record.ops = {op: 1 for op in [*ACTIVATIONS, *LOSSES]}
    record.batches = {b: 1 for b in edge.BATCH_CLASSES}
    record.edges = {e: 1 for e in edge.EDGE_CLASSES}
    return record


@pytest.mark.parametrize(("field", "key", "named"), [
    ("dtypes", "float32", "dtype float32"), ("ops", "kl_div", "op kl_div"),
    ("batches", ">1", "batch size >1"), ("batches", "large", "batch size large"),
    *[("edges", e, f"edge class {e}") for e in edge.EDGE_CLASSES]])
def test_coverage_names_what_a_campaign_missed(field: str, key: str, named: str) -> None:
    full = _full_record()
    assert coverage_gaps(full) == [] and coverage_verdict(full)[0]
    getattr(full, field).pop(key)
    assert coverage_gaps(full) == [named]
    ok, line = coverage_verdict(full)
    assert not ok and named in line and "\n" not in line


def test_small_campaigns_are_not_judged() -> None:
    record = _full_record(COVERAGE_MIN_CASES - 1)
    record.edges = {}
    ok, line = coverage_verdict(record)
    assert ok and line.startswith("coverage not judged")


def test_a_float64_only_campaign_misses_float32() -> None:
    record = run_campaign(6, seed=1, strategy=hst.fuzz_cases(dtypes=("float64",)))
    assert "dtype float32" in coverage_gaps(record)
    assert record.batches and sum(record.batches.get(b, 0) for b in ("1", ">1")) == 6


def test_merge_adds_batch_and_edge_counts_in_order() -> None:
    a, b = _full_record(), _full_record()
    a.edges["saturated"], b.edges = 3, {"zero_target": 2}
    merged = merge([a, b], 2 * COVERAGE_MIN_CASES, 0, 2)
    assert merged.edges["saturated"] == 3 and merged.edges["zero_target"] == 3
    assert list(merged.edges) == sorted(merged.edges)
    assert merged.batches == {k: 2 for k in sorted(edge.BATCH_CLASSES)}


@pytest.mark.parametrize("missing", [None, "zero_target"])
def test_fuzz_command_fails_on_a_coverage_gap(missing: str | None, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    record = _full_record(COVERAGE_MIN_CASES + 100)
    if missing:
        record.edges.pop(missing)
    monkeypatch.setattr("reference.fuzz.shards.run_sharded", lambda *a, **k: record)
    code = main(["fuzz", "--examples", "600", "--out", str(tmp_path / "c.json")])
    captured = capsys.readouterr()
    if missing:
        assert code == 1
        (line,) = [x for x in captured.err.splitlines() if x.startswith("coverage")]
        assert f"edge class {missing}" in line
    else:
        assert code == 0 and "coverage: both dtypes" in captured.out
    assert json.loads((tmp_path / "c.json").read_text())["edges"] == record.edges
