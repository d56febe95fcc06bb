"""``backprop-harness train``: summary, JSON record, --out, exit codes (0 agree, 1 part, 2 bad)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from manual.optim import OPTIMIZERS, sgd
from reference.training.lockstep import TrainingRecord
from reports import cli

SPEC = "examples/digits_mlp.json"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(["train", *argv])
    except SystemExit as exit_:  # argparse rejects an argument before the command runs
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_digits_adam_json_and_out(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "train.json"
    code, out, _ = run(capsys, SPEC, "--dataset", "digits", "--optimizer", "adam", "--lr",
                       "1e-3", "--steps", "40", "--json", "--out", str(out_file))
    assert code == 0
    record = TrainingRecord.from_json(out)
    assert record.steps == 40 and record.max_param_diff < 1e-10
    assert TrainingRecord.from_json(out_file.read_text()) == record


def test_summary_flags_options_and_schedule(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, SPEC, "--dataset", "digits", "--optimizer", "sgd", "--lr", "0.05",
                       "--momentum", "0.9", "--nesterov", "--options", '{"weight_decay": 1e-4}',
                       "--schedule", "cosine", "--schedule-options", '{"T_max": 20}',
                       "--steps", "20", "--batch-size", "64", "--clip-grad-norm", "5")
    assert code == 0
    assert "engines stay within tolerance" in out and "held-out" in out
    assert "'nesterov': True" in out and "'weight_decay': 0.0001" in out


def test_data_file_trains_without_held_out_rows(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    spec = {"input_shape": [2], "layers": [{"type": "linear", "out_features": 4},
                                           {"type": "tanh"},
                                           {"type": "linear", "out_features": 2}],
            "loss": {"type": "cross_entropy"}}
    data = {"x": [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]], "y": [0, 1, 0, 1]}
    (tmp_path / "s.json").write_text(json.dumps(spec))
    (tmp_path / "d.json").write_text(json.dumps(data))
    code, out, _ = run(capsys, str(tmp_path / "s.json"), "--data", str(tmp_path / "d.json"),
                       "--optimizer", "rmsprop", "--epochs", "3", "--batch-size", "2", "--json")
    record = TrainingRecord.from_json(out)
    assert code == 0 and record.steps == 6 and record.accuracy["torch"]["test"] is None


def test_engines_that_part_exit_1(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    def zero_started(param, grad, state, **options):  # the classic: buffer started at zero
        state = state or {"momentum_buffer": 0 * grad}
        return sgd(param, grad, state, **options)

    broken = dataclasses.replace(OPTIMIZERS["sgd"], step=zero_started)
    monkeypatch.setattr("reference.training.lockstep.optimizer_info", lambda name: broken)
    code, out, _ = run(capsys, SPEC, "--dataset", "digits", "--optimizer", "sgd", "--lr", "0.1",
                       "--momentum", "0.9", "--dampening", "0.5", "--steps", "3")
    assert code == 1 and "engines part at step 1" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--dataset", "digits", "--optimizer", "adam", "--momentum", "0.9"],
     "optimizer adam: unknown option 'momentum'"),
    (["--dataset", "iris", "--optimizer", "adam"], "input_shape is [64], but dataset iris has 4"),
    (["--dataset", "digits", "--optimizer", "adam", "--options", "[1]"],
     "--options: must be a JSON object"),
    (["--dataset", "digits", "--optimizer", "adam", "--steps", "0"], "--steps: must be a positive"),
    (["--dataset", "digits", "--optimizer", "adam", "--schedule", "step"],
     "schedule step: missing option 'step_size'"),
    (["--dataset", "mnist", "--optimizer", "adam"], "invalid choice: 'mnist'"),
    (["--optimizer", "adam"], "one of the arguments --data --dataset is required"),
])
def test_bad_input_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str],
                                         message: str) -> None:
    code, out, err = run(capsys, SPEC, *argv)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1
