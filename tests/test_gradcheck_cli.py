"""``backprop-harness gradcheck``: output, JSON record, exit codes (0 pass, 1 fail, 2 bad input)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import manual
from manual.gradcheck import GOOD, GradcheckRecord
from manual.registry import ACTIVATIONS
from reports import cli

SEED = ["examples/seed_example.json", "--data", "examples/seed_example_data.json"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(["gradcheck", *argv])
    except SystemExit as exit_:  # argparse rejects an argument before the command runs
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_seed_example_json_reports_every_tensor_within_the_good_band(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *SEED, "--json")
    record = GradcheckRecord.from_json(out)
    assert code == 0 and record.passed and record.mode == "full"
    assert [t.name for t in record.tensors] == ["layers.0.weight", "layers.0.bias",
                                                "layers.2.weight", "layers.2.bias", "input"]
    assert all(t.max_rel_error <= GOOD for t in record.tensors)


@pytest.mark.parametrize("mode", ["full", "sparse", "projection"])
def test_table_names_every_tensor_and_the_verdict(capsys: pytest.CaptureFixture[str],
                                                  mode: str) -> None:
    code, out, _ = run(capsys, *SEED, "--mode", mode, "--seed", "3")
    assert code == 0
    assert f"{mode} check in float64" in out and "OK: all 5 tensors pass" in out
    assert all(name in out for name in ("layers.0.weight", "layers.2.bias", "input"))


def test_a_wrong_gradient_exits_1_and_names_the_tensor(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    broken = dataclasses.replace(ACTIVATIONS["sigmoid"], backward=lambda dy, c: dy * c.y)
    monkeypatch.setitem(ACTIVATIONS, "sigmoid", broken)
    code, out, _ = run(capsys, *SEED)
    assert code == 1
    assert "FAIL:" in out and "WRONG" in out
    wrong = [line for line in out.splitlines() if "WRONG" in line]
    assert wrong and wrong[0].startswith("layers.0.weight")


@pytest.mark.parametrize(("extra", "message"), [
    (["--mode", "complex"], "layers[1] (relu) is not analytic"),
    (["--mode", "fast"], "invalid choice"),
    (["--eps", "0"], "--eps: must be a positive finite number"),
    (["--eps", "abc"], "--eps: must be a number"),
    (["--seed", "-1"], "--seed: must not be negative"),
    (["-k", "0"], "k: must be a positive integer"),
])
def test_bad_input_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], extra: list[str],
                                         message: str) -> None:
    code, out, err = run(capsys, *SEED, *extra)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_missing_data_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, SEED[0], "--data", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read it" in err


def test_eps_and_seed_reach_the_record(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, *SEED, "--mode", "projection", "--eps", "1e-5", "--seed", "9",
                    "--json")
    raw = json.loads(out)
    assert raw["eps"] == 1e-5 and raw["seed"] == 9 and raw["mode"] == "projection"


EXAMPLES = sorted(p for p in Path("examples").glob("*.json") if not p.stem.endswith("_data")
                  and p.with_name(f"{p.stem}_data.json").exists())


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.stem)
def test_complex_mode_on_every_example_gives_a_verdict_or_names_the_layer(
        capsys: pytest.CaptureFixture[str], spec: Path) -> None:
    """Every registered layer answers the complex step from its registry entry: a verdict (exit
    0 or 1), or a one-line refusal naming the first node that is not analytic (exit 2)."""
    code, out, err = run(capsys, str(spec), "--data", str(spec.with_name(f"{spec.stem}_data"
                                                                         ".json")),
                         "--mode", "complex")
    assert code in (0, 1, 2) and "internal error" not in err and "Traceback" not in err
    if code == 2:
        assert len(err.strip().splitlines()) == 1
        assert "is not analytic" in err or "has no complex forward" in err
        named = manual.load_spec(spec)
        assert any(named.label(i) in err for i in range(len(named.nodes)))
    else:
        assert "complex check in float64" in out
