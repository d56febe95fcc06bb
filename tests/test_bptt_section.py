"""The report's through-time section: the record's curves, predictions and clipping figures,
its counted checks, its determinism, and the page drawn from it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from reference.core.records import encode
from reports import report
from reports.experiments import bptt
from reports.sections import bptt as section


@pytest.fixture(scope="module")
def record() -> bptt.BpttRecord:
    return bptt.run_experiment("quick", 0)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("report")
    results, problems = report.run(out, "quick", 0, only=["bptt"])
    assert problems == []
    return out, results


def test_every_check_passes_and_is_counted(record: bptt.BpttRecord) -> None:
    rnn, gated, clipped = len(bptt.SPECTRAL_NORMS), 2 * len(bptt.KEEP_BIASES), len(
        bptt.CLIP_NORMS)
    counted_rates = sum(rho < bptt.CHAOTIC for rho in bptt.SPECTRAL_NORMS)
    # rnn: engines agree + a bound per engine (+ a rate per engine below CHAOTIC);
    # gated: engines agree, and one rising-rate check per layer; clipping: a norm per engine
    # and engines agree.
    expected = rnn * 3 + 2 * counted_rates + gated + 2 + clipped * 3
    assert len(record.checks) == expected == record.passed and record.failed == 0
    assert [s.parameter for s in record.rnn] == list(bptt.SPECTRAL_NORMS)


def test_curves_cover_every_step_in_both_engines(record: bptt.BpttRecord) -> None:
    for series in [*record.rnn, *record.gated]:
        assert set(series.norms) == {"manual", "torch"}
        assert all(len(n) == record.size.length for n in series.norms.values())
        np.testing.assert_allclose(series.norms["manual"], series.norms["torch"], rtol=1e-10)


def test_rnn_rates_follow_the_spectral_radius(record: bptt.BpttRecord) -> None:
    rates = [s.rate["manual"] for s in record.rnn]
    assert rates == sorted(rates) and rates[0] < 1 < rates[-1]  # vanishing to exploding
    for series in record.rnn:
        assert series.rate["torch"] <= series.parameter  # Pascanu et al.'s bound
        # The prediction, from the forward alone: rho * geometric mean of rms(1 - h_t^2).
        assert series.predicted <= series.parameter
        error = math.log(series.rate["torch"] / series.predicted)
        assert series.log_error["torch"] == pytest.approx(error, abs=1e-12)
        if series.parameter < bptt.CHAOTIC:
            assert abs(error) <= bptt.RATE_TOLERANCE
        assert series.span["manual"] == pytest.approx(
            series.norms["manual"][0] / series.norms["manual"][-1], rel=1e-12)


def test_the_prediction_is_rho_at_small_inputs() -> None:
    # Near h = 0, tanh' is 1: the predicted rate of rho = 0.5 is rho itself to within 1%.
    mode, params, x, _ = bptt.setup("rnn", spectral_norm=0.5, input_scale=0.01)
    assert bptt.predicted_rate(mode, params, x) == pytest.approx(0.5, rel=1e-3)


def test_keep_bias_slows_the_decay_of_both_gated_cells(record: bptt.BpttRecord) -> None:
    for layer in ("lstm", "gru"):
        rows = [s for s in record.gated if s.layer == layer]
        assert [s.parameter for s in rows] == list(bptt.KEEP_BIASES)
        rates = [s.rate["torch"] for s in rows]
        assert rates == sorted(rates) and rates[0] < 0.7 and rates[-1] > 0.95
        keep = [s.predicted for s in rows]  # the gate's mean: sigmoid(bias) near h = 0
        np.testing.assert_allclose(keep, [1 / (1 + math.exp(-b)) for b in bptt.KEEP_BIASES],
                                   atol=0.03)


def test_clipping_caps_the_exploding_gradient_in_both_engines(record: bptt.BpttRecord
                                                              ) -> None:
    by_rho = {c.spectral_norm: c for c in record.clipping}
    assert by_rho[0.5].before["manual"] < bptt.MAX_NORM  # vanishing: left alone
    assert by_rho[0.5].factor == {"manual": 1.0, "torch": 1.0}
    exploding = by_rho[2.0]
    for engine in ("manual", "torch"):
        assert exploding.before[engine] > 100 * bptt.MAX_NORM
        assert exploding.after[engine] == pytest.approx(bptt.MAX_NORM, rel=1e-6)
        assert exploding.factor[engine] == pytest.approx(
            exploding.before[engine] / bptt.MAX_NORM, rel=1e-6)
    befores = [by_rho[r].before["torch"] for r in bptt.CLIP_NORMS]
    assert befores == sorted(befores)


def test_the_record_is_deterministic(record: bptt.BpttRecord) -> None:
    again = bptt.run_experiment("quick", 0)
    assert json.dumps(encode(again)) == json.dumps(encode(record))


def test_a_missed_rate_target_fails_the_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bptt, "RATE_TOLERANCE", 1e-6)
    record = bptt.run_experiment("quick", 0)
    failed = [c for c in record.checks if not c.passed]
    assert failed and all(c.quantity == "per-step rate vs ρ·rms φ′" for c in failed)
    assert section.summarize(encode(record))["failed"] == record.failed == len(failed)


def test_a_wrong_clip_fails_the_section(monkeypatch: pytest.MonkeyPatch) -> None:
    # A manual clip that forgets to scale: caught by the norm check in the manual engine only.
    monkeypatch.setattr(bptt.clip, "clip_grad_norm", lambda grads, max_norm: 0.0)
    record = bptt.run_experiment("quick", 0)
    failed = {(c.quantity, c.engine) for c in record.checks if not c.passed}
    assert ("‖g‖ after clipping", "manual") in failed
    assert ("‖g‖ after clipping", "torch") not in failed


def test_page_shows_the_curves_and_tables(built) -> None:
    out, results = built
    assert results["summary"]["sections"]["bptt"]["status"] == "pass"
    page = (out / "index.html").read_text()
    for anchor in ("bptt-rnn", "bptt-gated", "bptt-clipping", "bptt-checks", "bptt-curves",
                   "Clipping against explosion", "Gating against vanishing"):
        assert anchor in page
    data = results["sections"]["bptt"]
    assert f"<b>{data['passed']}</b> of {data['passed'] + data['failed']} checks" in page
    assert page.count("<tr><td>tanh rnn, ρ = ") == len(bptt.CLIP_NORMS)


def test_readme_lists_the_section_key() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    keys = next(line for line in readme.splitlines() if line.startswith("Section keys:"))
    assert f"`{section.KEY}`" in keys
