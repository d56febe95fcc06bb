"""Helpers shared by the hostile-input suite (tests/test_hostile_*.py)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from reports import cli

SEED_SPEC_PATH = "examples/seed_example.json"
SEED_DATA_PATH = "examples/seed_example_data.json"
SEED_SPEC: dict[str, Any] = json.loads(Path(SEED_SPEC_PATH).read_text())
SEED_DATA: dict[str, Any] = json.loads(Path(SEED_DATA_PATH).read_text())
SEED = [SEED_SPEC_PATH, "--data", SEED_DATA_PATH]


def mlp(last: str | None, loss: str, dtype: str = "float64", **loss_options: Any
        ) -> dict[str, Any]:
    """A 2 -> 3 spec ending in ``last`` (None: the linear layer) and ``loss``."""
    layers: list[dict[str, Any]] = [{"type": "linear", "out_features": 3}]
    if last is not None:
        layers.append({"type": last})
    return {"input_shape": [2], "layers": layers, "loss": {"type": loss, **loss_options},
            "dtype": dtype}


def edited(spec: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


def write(folder: Path, name: str, content: Any) -> str:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``backprop-harness ARGV`` in this process: exit code, stdout, stderr."""
    try:
        code = cli.main(list(argv))
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run, assert exit 2 with exactly one line on stderr and no traceback; return that line."""
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err
