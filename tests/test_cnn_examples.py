"""The CNN examples through the CLI: ``compare`` and ``gradcheck`` exit 0 on ``examples/cnn.json``
(conv, batch norm, relu, max pool, a stride-2 conv with padding 0 over an odd size, linear) and
on ``examples/conv_pad0_stride2.json``, in both dtypes (gradcheck checks a float32 spec on a
float64 copy); the course's padding-0 mistake fails both commands on the second."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import manual
from manual.gradcheck import check_network
from reference.zoo.conv import CONV_MUTANTS
from reports.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMES = ("cnn", "conv_pad0_stride2")


def _spec_in(tmp_path: Path, name: str, dtype: str) -> Path:
    raw = json.loads((EXAMPLES / f"{name}.json").read_text())
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({**raw, "dtype": dtype}))
    return path


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("command", ["compare", "gradcheck"])
def test_the_cnn_examples_pass_both_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             command: str, name: str, dtype: str) -> None:
    spec = _spec_in(tmp_path, name, dtype)
    assert main([command, str(spec), "--data", str(EXAMPLES / f"{name}_data.json")]) == 0
    assert "OK: all" in capsys.readouterr().out


def test_a_float32_cnn_is_gradchecked_on_a_float64_copy() -> None:
    spec = manual.load_spec(str(EXAMPLES / "cnn.json"))
    assert spec.dtype == "float32"
    record = check_network(spec, manual.load_data(str(EXAMPLES / "cnn_data.json"), spec))
    assert record.passed and record.source_dtype == "float32"
    assert {t.name for t in record.tensors} >= {"conv1.weight", "bn.weight", "conv2.weight", "x"}


@pytest.mark.parametrize("command", ["compare", "gradcheck"])
def test_padding_zero_sliced_as_p_to_minus_p_fails_on_the_example(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    mutant = next(m for m in CONV_MUTANTS if m.name == "conv2d_pad_slice_p_to_minus_p")
    spec = _spec_in(tmp_path, "conv_pad0_stride2", "float64")
    with mutant.inject():
        code = main([command, str(spec), "--data",
                     str(EXAMPLES / "conv_pad0_stride2_data.json")])
    assert code == 1
    capsys.readouterr()
