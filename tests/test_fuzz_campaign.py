"""Fuzz campaigns, failure reports that replay, and the excuses for kinks and rounding."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

import manual
from reference.core.records import ComparisonRecord, TensorComparison
from reference.fuzz import strategies as hst
from reference.fuzz.campaign import (
    CampaignRecord,
    Outcome,
    failure_report,
    kink_straddle,
    load_case,
    run_campaign,
    run_case,
    save_case,
)
from reference.zoo import core as zoo
from reports.cli import main


@pytest.fixture(scope="module")
def campaign() -> CampaignRecord:
    return run_campaign(12, seed=3)


def test_campaign_counts_what_it_covered(campaign: CampaignRecord) -> None:
    assert campaign.passed and not campaign.failures
    assert campaign.cases == 12
    assert sum(campaign.dtypes.values()) == sum(campaign.protocols.values()) == 12
    assert set(campaign.uncovered).isdisjoint(campaign.ops)
    assert set(campaign.largest_error) <= set(campaign.ops)


def test_campaign_record_round_trips_through_json(campaign: CampaignRecord) -> None:
    again = CampaignRecord.from_json(campaign.to_json())
    assert again == campaign


def test_campaign_shrinks_and_records_a_failure(tmp_path: Path) -> None:
    mutant = zoo.ZOO["tanh_one_minus_y"]
    with mutant.inject():
        # Typical cases only: shrinking an edge case (explicit weights) costs ten times more.
        record = run_campaign(60, seed=0, strategy=hst.fuzz_cases(include=("tanh",),
                                                                  edges=False),
                              failure_root=tmp_path)
    assert not record.passed
    (failure,) = record.failures
    assert failure.hidden_layers <= 2
    assert "tanh" in json.dumps(failure.spec)
    assert failure.reproduce.startswith("backprop-harness ")
    assert failure.first_divergence in failure.message


def _failing_outcome(tmp_path: Path) -> tuple[Outcome, str, str]:
    spec = manual.parse_spec({"input_shape": [2], "layers": [
        {"type": "tanh"}, {"type": "linear", "out_features": 3}, {"type": "tanh"},
        {"type": "linear", "out_features": 2}], "loss": {"type": "mse"}, "dtype": "float64"})
    data = manual.make_data(spec, [[0.5, -1.0], [2.0, 0.25]], [[0.1, 0.2], [0.3, -0.4]])
    with zoo.ZOO["tanh_one_minus_y"].inject():
        outcome = run_case(hst.FuzzCase(spec, data))
        message, command = failure_report(outcome, tmp_path)
    return outcome, message, command


def test_failure_message_shows_spec_divergence_and_command(tmp_path: Path) -> None:
    outcome, message, command = _failing_outcome(tmp_path)
    assert outcome.failed
    assert "first divergence: backward: layers.2 (tanh)" in message
    spec_line = next(line for line in message.splitlines() if line.startswith("spec: "))
    assert json.loads(spec_line.removeprefix("spec: ")) == outcome.case.spec.to_dict()
    assert f"reproduce: {command}" in message


def test_reproduce_command_replays_the_failure(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _, _, command = _failing_outcome(tmp_path)
    argv = shlex.split(command)[1:]
    assert argv[0] == "compare"
    with zoo.ZOO["tanh_one_minus_y"].inject():
        assert main(argv) == 1
    assert main(argv) == 0  # the clean engine agrees on the same files
    capsys.readouterr()


@pytest.mark.parametrize("protocol", ["accumulate", "stale_cache", "no_mutation"])
def test_saved_cases_replay_with_their_protocol(protocol: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    outcome, _, _ = _failing_outcome(tmp_path)
    case = hst.FuzzCase(outcome.case.spec, outcome.case.data, protocol)
    save_case(case, tmp_path / protocol)
    again = load_case(tmp_path / protocol)
    assert again.protocol == protocol and np.array_equal(again.data.x, case.data.x)
    assert main(["fuzz", "--replay", str(tmp_path / protocol)]) == 0
    mutant = {"accumulate": "grad_overwritten", "stale_cache": "stale_cache",
              "no_mutation": "tanh_mutates_input"}[protocol]
    with zoo.ZOO[mutant].inject():
        assert main(["fuzz", "--replay", str(tmp_path / protocol)]) == 1
    capsys.readouterr()


def _tensor(name: str, manual_values: list, reference_values: list) -> TensorComparison:
    return TensorComparison(name=name, shape=[1, len(manual_values[0])], dtype="float32",
                            max_abs_error=0.0, max_rel_error=0.0, tolerance_ratio=0.0,
                            worst_index=[], rtol=1.3e-6, atol=1e-5, passed=True,
                            manual=manual_values, reference=reference_values)


@pytest.mark.parametrize(("manual_z", "reference_z", "straddles"), [
    (1e-8, -1e-8, True), (0.0, 1e-9, True), (1e-8, 2e-8, False), (0.0, 0.0, False)],
    ids=["opposite-sides", "one-on-the-kink", "same-side", "identical"])
def test_kink_straddle_needs_the_engines_on_both_sides(manual_z: float, reference_z: float,
                                                       straddles: bool) -> None:
    spec = manual.parse_spec({"input_shape": [1], "layers": [
        {"type": "linear", "out_features": 1}, {"type": "relu"}], "loss": {"type": "mse"},
        "dtype": "float32"})
    data = manual.make_data(spec, [[1.0]], [[0.0]])
    record = ComparisonRecord(
        subject="n", kind="network", dtype="float32", seed=0, passed=False,
        first_divergence="backward: layers.1 (relu)", tolerance_reason="default",
        tensors=[_tensor("forward: layers.0", [[manual_z]], [[reference_z]]),
                 _tensor("forward: layers.1", [[max(manual_z, 0)]], [[max(reference_z, 0)]])])
    assert bool(kink_straddle(spec, data, record)) is straddles


def test_fuzz_command_writes_its_record(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "campaign.json"
    assert main(["fuzz", "--examples", "5", "--seed", "1", "--json", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["cases"] == 5 and printed["passed"] is True


@pytest.mark.parametrize("argv", [["--examples", "0"], ["--seed", "-1"]], ids=["examples", "seed"])
def test_fuzz_command_rejects_bad_numbers(argv: list[str], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fuzz", *argv, "--out", str(tmp_path / "c.json")]) == 2
    assert "error:" in capsys.readouterr().err
