"""Bad input gets a ValueError naming the field or layer, and the CLI exits 2 with one line."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import manual
from reports.cli import main

SEED_SPEC = json.loads(Path("examples/seed_example.json").read_text())
SEED_DATA = {"x": [[1.0, 2.0]], "y": [[1.0]]}
CE_SPEC = {
    "input_shape": [2],
    "layers": [{"type": "linear", "out_features": 3}],
    "loss": {"type": "cross_entropy"},
}


def edited(spec: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


BAD_SPECS = [
    (
        "unknown layer type",
        edited(SEED_SPEC, ("layers", 1, "type"), "relu6"),
        r"layers\[1\]: unknown layer type 'relu6'",
    ),
    (
        "unknown loss type",
        edited(SEED_SPEC, ("loss", "type"), "hinge"),
        r"loss: unknown loss type 'hinge'",
    ),
    (
        "zero width",
        edited(CE_SPEC, ("layers", 0, "out_features"), 0),
        r"layers\[0\] \(linear\): out_features must be a positive integer, got 0",
    ),
    (
        "negative width",
        edited(CE_SPEC, ("layers", 0, "out_features"), -4),
        r"layers\[0\] \(linear\): out_features",
    ),
    (
        "weight shape",
        edited(SEED_SPEC, ("layers", 2, "weight"), [[0.7], [0.8], [0.9]]),
        r"layers\[2\] \(linear\): weight must have shape \(out_features, in_features\) = "
        r"\(1, 3\), got \(3, 1\)",
    ),
    (
        "ragged weight",
        edited(SEED_SPEC, ("layers", 0, "weight"), [[0.1], [0.3, 0.4], [0.5, 0.6]]),
        r"layers\[0\] \(linear\): weight .* not a rectangular array",
    ),
    (
        "bias shape",
        edited(SEED_SPEC, ("layers", 0, "bias"), [0.0, 0.0]),
        r"layers\[0\] \(linear\): bias must have shape",
    ),
    (
        "unknown dtype",
        edited(SEED_SPEC, ("dtype",), "float16"),
        r"dtype: must be 'float32' or 'float64', got 'float16'",
    ),
    (
        "unknown option",
        edited(SEED_SPEC, ("layers", 1, "inplace"), True),
        r"layers\[1\] \(relu\): unknown option 'inplace'",
    ),
    (
        "bad option value",
        edited(SEED_SPEC, ("loss", "reduction"), "avg"),
        r"loss \(bce\): reduction must be one of",
    ),
    (
        "option type",
        {
            **CE_SPEC,
            "layers": [
                {"type": "leaky_relu", "negative_slope": "0.1"},
                {"type": "linear", "out_features": 3},
            ],
        },
        r"layers\[0\] \(leaky_relu\): negative_slope must be a number",
    ),
    (
        "in_features mismatch",
        edited(CE_SPEC, ("layers", 0, "in_features"), 5),
        r"layers\[0\] \(linear\): in_features is 5",
    ),
    (
        "bce without probabilities",
        edited(SEED_SPEC, ("layers",), SEED_SPEC["layers"][:3]),
        r"loss \(bce\): needs probabilities in \[0, 1\]",
    ),
    (
        "missing field",
        {k: v for k, v in SEED_SPEC.items() if k != "loss"},
        r"spec: missing field 'loss'",
    ),
    ("unknown field", {**SEED_SPEC, "optimizer": "sgd"}, r"spec: unknown field 'optimizer'"),
    ("input shape", edited(SEED_SPEC, ("input_shape",), [0]), r"input_shape: must be \[D\]"),
    ("negative seed", edited(SEED_SPEC, ("seed",), -1), r"seed: must be a non-negative integer"),
]


@pytest.mark.parametrize(
    ("raw", "message"), [c[1:] for c in BAD_SPECS], ids=[c[0] for c in BAD_SPECS]
)
def test_bad_spec_is_rejected_with_the_field_named(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        manual.parse_spec(raw)


BAD_DATA = [
    (
        "labels out of range",
        CE_SPEC,
        {"x": [[0.0, 1.0], [1.0, 0.0]], "y": [0, 3]},
        r"data.y: cross_entropy class indices must lie in \[0, 2\]",
    ),
    (
        "negative label",
        CE_SPEC,
        {"x": [[0.0, 1.0]], "y": [-1]},
        r"data.y: cross_entropy class indices",
    ),
    (
        "float labels",
        CE_SPEC,
        {"x": [[0.0, 1.0]], "y": [1.5]},
        r"data.y: cross_entropy class indices must be integers",
    ),
    (
        "bce target above 1",
        SEED_SPEC,
        {"x": [[1.0, 2.0]], "y": [[1.5]]},
        r"data.y: bce needs probabilities in \[0, 1\]",
    ),
    (
        "bce target below 0",
        SEED_SPEC,
        {"x": [[1.0, 2.0]], "y": [[-0.1]]},
        r"data.y: bce needs probabilities",
    ),
    (
        "nan in x",
        SEED_SPEC,
        {"x": [[float("nan"), 2.0]], "y": [[1.0]]},
        r"data.x: contains NaN or infinity",
    ),
    (
        "inf in y",
        SEED_SPEC,
        {"x": [[1.0, 2.0]], "y": [[float("inf")]]},
        r"data.y: contains NaN or infinity",
    ),
    ("x shape", SEED_SPEC, {"x": [1.0, 2.0], "y": [[1.0]]}, r"data.x: must have shape \(N, 2\)"),
    (
        "y shape",
        SEED_SPEC,
        {"x": [[1.0, 2.0]], "y": [1.0, 0.0]},
        r"data.y: bce needs a target shaped like the output, \(1, 1\)",
    ),
    (
        "ragged x",
        SEED_SPEC,
        {"x": [[1.0, 2.0], [1.0]], "y": [[1.0], [0.0]]},
        r"data.x: must be a number or a rectangular array",
    ),
    ("text in x", SEED_SPEC, {"x": [["a", "b"]], "y": [[1.0]]}, r"data.x: must be a number"),
]


@pytest.mark.parametrize(
    ("raw_spec", "data", "message"), [c[1:] for c in BAD_DATA], ids=[c[0] for c in BAD_DATA]
)
def test_bad_data_is_rejected_with_the_field_named(raw_spec, data, message: str) -> None:
    spec = manual.parse_spec(raw_spec)
    with pytest.raises(ValueError, match=message):
        manual.make_data(spec, data["x"], data["y"])


def test_bce_refuses_an_output_outside_the_unit_interval_at_spec_load() -> None:
    raw = edited(SEED_SPEC, ("layers", 3, "type"), "tanh")
    with pytest.raises(ValueError, match=r"last layer \('tanh'\)"):
        manual.parse_spec(raw)


def write(tmp_path: Path, name: str, content: object) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


CLI_CASES = [
    (
        "malformed spec JSON",
        '{"input_shape": [2], "layers": [',
        SEED_DATA,
        "not valid JSON (line 1",
    ),
    (
        "unknown layer",
        edited(SEED_SPEC, ("layers", 1, "type"), "relu6"),
        SEED_DATA,
        "unknown layer type",
    ),
    ("labels out of range", CE_SPEC, {"x": [[0.0, 1.0]], "y": [7]}, "class indices must lie"),
    ("malformed data JSON", SEED_SPEC, "{x: [[1, 2]]}", "data "),
    ("nan in data", SEED_SPEC, '{"x": [[NaN, 2.0]], "y": [[1.0]]}', "NaN is not JSON"),
]


@pytest.mark.parametrize(
    ("spec", "data", "message"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES]
)
def test_cli_exits_2_with_one_line_and_no_traceback(
    tmp_path: Path, capsys, spec, data, message: str
) -> None:
    code = main(
        [
            "compare",
            write(tmp_path, "spec.json", spec),
            "--data",
            write(tmp_path, "data.json", data),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_cli_missing_file_exits_2_in_a_real_process(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reports.cli",
            "compare",
            str(tmp_path / "absent.json"),
            "--data",
            str(tmp_path / "absent-data.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"backprop-harness: error: spec {tmp_path / 'absent.json'}: cannot read it "
        "(No such file or directory)"
    ]


def test_spec_round_trips_through_json() -> None:
    spec = manual.parse_spec(SEED_SPEC)
    assert manual.parse_spec(json.loads(spec.to_json())) == spec


def test_explicit_parameters_are_used_exactly() -> None:
    spec = manual.parse_spec(SEED_SPEC)
    params = manual.initial_parameters(spec)
    np.testing.assert_array_equal(params["layers.0.weight"], [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    np.testing.assert_array_equal(params["layers.2.weight"], [[0.7, 0.8, 0.9]])
