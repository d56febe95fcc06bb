"""parametrize_layers: one test id per case x dtype x configuration x check, expected failures,
and records reaching the --backprop-report HTML report (an inner pytest run)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

INNER = textwrap.dedent('''
    import numpy as np
    import torch.nn.functional as F

    from reference.checks.pytest import LayerCase, parametrize_layers


    def pad_forward(x, pad):
        return np.pad(x, ((0, 0), (pad, pad))), pad


    def pad_backward(dout, pad):
        return dout[:, pad:-pad]  # empty at pad 0


    CASES = [
        LayerCase("pad", pad_forward, pad_backward, torch=lambda x, pad: F.pad(x, (pad, pad)),
                  inputs={"x": (2, 3)}, sweep={"pad": [0, 1]}, special=False),
    ]


    @parametrize_layers(CASES, xfail={"pad-float64-pad=0-backward-x": "known: padding 0"})
    def test_layer(check, backprop_record):
        record = check()
        backprop_record(record)
        assert record.passed, record.describe()
''')


def test_one_id_per_check_expected_failures_and_the_report(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_inner.py",
         "--backprop-report", "out", "-rA"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr  # float32 pad=0 is not expected
    ids = sorted(line.split("::", 1)[1].split(" ")[0] for line in out.splitlines()
                 if "test_inner.py::" in line)
    assert ids == sorted(f"test_layer[pad-{d}-pad={p}-{part}]"
                         for d in ("float32", "float64") for p in (0, 1)
                         for part in ("forward", "backward-x", "hygiene"))
    assert "FAILED test_inner.py::test_layer[pad-float32-pad=0-backward-x]" in out
    assert "XFAIL test_inner.py::test_layer[pad-float64-pad=0-backward-x]" in out
    assert "10 passed" in out and "1 failed" in out and "1 xfailed" in out
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert (results["summary"]["passed"], results["summary"]["failed"]) == (10, 2)
    failing = [c for c in results["sections"]["conformance"]["cases"] if not c["passed"]]
    assert {c["problem"] for c in failing} == {"shape (2, 0) != reference (2, 3)"}
