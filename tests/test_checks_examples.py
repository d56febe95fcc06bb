"""The README walk-through: examples/buggy_layers.py, each planted bug reported as described,
and every correct layer passing (so that the checks are not simply failing everything)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from reports.cli import main

EXAMPLE = Path(__file__).parent.parent / "examples" / "buggy_layers.py"


@pytest.fixture(scope="module")
def layers():
    spec = importlib.util.spec_from_file_location("buggy_layers", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results(layers):
    return {case.name: case.run() for case in layers.CASES}


@pytest.mark.parametrize("name", ["affine", "relu", "softmax_loss"])
def test_the_correct_layers_pass(results, name) -> None:
    assert results[name].passed, results[name].describe()


def test_conv_padding_zero_is_the_only_failure_and_names_the_empty_gradient(results) -> None:
    conv = results["conv"]
    failing = [case for case, _ in conv.failures]
    assert failing and all(case.overrides["conv_param"]["pad"] == 0 for case in failing)
    passing = [c for c in conv.cases if c not in failing]
    assert all(c.overrides["conv_param"]["pad"] == 1 for c in passing)
    assert conv.summary().endswith(
        "smallest: float32 H=5 stride=1 pad=0: backward: x: shape (2, 3, 0, 0) != reference "
        "(2, 3, 5, 5)")
    _, record = conv.smallest_failure()
    assert record.tensor("backward: w").passed and record.tensor("backward: b").passed


def test_batchnorm_biased_running_variance_is_caught_and_explained(results) -> None:
    bn = results["batchnorm"]
    _, record = bn.smallest_failure()
    assert record.first_divergence == "step 1: state: running_var"
    for step in (1, 2, 3):
        assert record.tensor(f"step {step}: state: running_mean").passed
        assert not record.tensor(f"step {step}: state: running_var").passed
    assert record.tensor("backward: x").passed and record.tensor("backward: gamma").passed
    assert not record.tensor("eval: out").passed
    assert ("step 1: state: running_var: the update of running_var is 0.875 x PyTorch's = "
            "(N-1)/N with N = 8: a biased variance (divides by N) where PyTorch's running "
            "variance is unbiased (divides by N-1)") in record.notes
    assert len(bn.skipped) == 2  # batch size 1: PyTorch refuses to train batch norm on it


def test_max_pool_loses_gradient_only_where_windows_overlap(results) -> None:
    pool = results["max_pool"]
    for case, record in zip(pool.cases, pool.records, strict=True):
        overlapping = case.overrides["pool_param"]["stride"] < case.overrides["pool_param"][
            "pool_height"]
        assert record.passed != overlapping, (case.label(), record.describe())
        assert record.tensor("forward: out").passed
    problem = pool.smallest_failure()[1].tensor("backward: x").problem
    assert " of 294 elements differ; at [" in problem and ", torch " in problem


def test_the_seed_network_names_the_first_wrong_value_and_the_factor(results) -> None:
    seed = results["seed"]
    assert seed.first_divergence == ("backward: output: 1 of 1 elements differ; at [0, 0] "
                                     "mine -0.05952, torch -1.063")
    assert all(t.passed for t in seed.tensors if t.name.startswith("forward: "))
    assert seed.notes == [
        "from backward: output on, every gradient is 0.056 x PyTorch's (= a(1 - a) = sigmoid' "
        "at layers.3, a = 0.9405): a factor sigmoid' applied twice?"]


def test_the_command_prints_the_table_and_exits_1(capsys) -> None:
    assert main(["check", str(EXAMPLE)]) == 1
    out = capsys.readouterr().out
    for line in ("affine         layer        10       0  ok",
                 "conv           layer        68      36  FAIL",
                 "seed           network      13       8  FAIL  first wrong: backward: output",
                 "FAIL: 4 of 7 declared cases differ from PyTorch"):
        assert line in out, out
    assert "(N-1)/N with N = 8" in out and "sigmoid' applied twice?" in out


def test_the_command_writes_json_and_the_report(tmp_path, capsys) -> None:
    assert main(["check", str(EXAMPLE), "--json", "--report", str(tmp_path / "out")]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in payload] == ["affine", "relu", "softmax_loss", "conv",
                                            "batchnorm", "max_pool", "seed"]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    cases = results["sections"]["conformance"]["cases"]
    assert results["summary"]["failed"] == 36 + 8 + 8 + 1
    assert any(c["id"] == "conv float32 H=5 stride=1 pad=0" and not c["passed"] for c in cases)
    assert (tmp_path / "out" / "index.html").is_file()


def test_the_command_exits_2_on_a_file_without_cases(tmp_path, capsys) -> None:
    empty = tmp_path / "nothing.py"
    empty.write_text("X = 1\n")
    assert main(["check", str(empty)]) == 2
    assert "no CASES list" in capsys.readouterr().err
    assert main(["check", str(tmp_path / "missing.py")]) == 2


def test_the_seed_values_are_the_tutorials(layers) -> None:
    values = layers.seed_values()
    np.testing.assert_allclose(values["backward: output"], [[0.940476 - 1]], atol=1e-6)


def test_a_case_split_by_part_keeps_every_step_of_its_tensors(layers) -> None:
    """``Check(part="state")`` keeps ``step s: state: ...`` of every step (and the note on
    the biased variance); a part that matched nothing would pass vacuously."""
    from reference.checks import Skip
    from reference.checks.sweep import Check

    bn = next(c for c in layers.CASES if c.name == "batchnorm")
    layer = bn.layer()
    for case in bn.cases(layer):
        try:
            Check(layer, case)()
        except Skip:
            continue
        break
    state = Check(layer, case, "state")()
    assert not state.passed and {t.name for t in state.tensors} == {
        f"step {s}: state: {k}" for s in (1, 2, 3) for k in ("running_mean", "running_var")}
    assert any("(N-1)/N" in note for note in state.notes)
    assert [t.name for t in Check(layer, case, "eval")().tensors] == ["eval: out"]
    grad = Check(layer, case, "backward: gamma")()
    assert grad.passed and [t.name for t in grad.tensors] == ["backward: gamma"]
