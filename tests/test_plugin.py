"""The pytest plugin: ``--backprop-report DIR`` under plain pytest and pytest-xdist."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

# Records made by hand (reference.core.records does not import torch), so that the
# inner runs stay fast: one passing op, one failing op, one network with two records.
INNER_TESTS = textwrap.dedent('''
    import sys

    import pytest

    from reference.core.records import ComparisonRecord, TensorComparison


    def tensor(name, error, passed=True):
        return TensorComparison(name=name, shape=[2], dtype="float64", max_abs_error=error,
                                max_rel_error=error, tolerance_ratio=error / 1e-7,
                                worst_index=[0], rtol=1e-7, atol=1e-7, passed=passed)


    def record(subject, kind, passed, error):
        return ComparisonRecord(subject=subject, kind=kind, dtype="float64", seed=3,
                                passed=passed, first_divergence=None if passed else
                                "backward: input", tolerance_reason="default",
                                tensors=[tensor("backward: input", error, passed)])


    def test_plugin_loaded_without_torch(pytestconfig):
        assert pytestconfig.pluginmanager.has_plugin("backprop_harness")
        assert "torch" not in sys.modules


    @pytest.mark.parametrize("subject, passed, error",
                             [("relu", True, 1e-9), ("tanh", False, float("inf"))])
    def test_op(backprop_record, subject, passed, error):
        backprop_record(record(subject, "activation", passed, error))


    def test_network(backprop_record):
        spec = {"name": "<script>x</script>", "layers": [{"type": "sigmoid"}],
                "loss": {"type": "mse"}}
        for _ in range(2):
            net = record("net", "network", True, 2e-8)
            net.spec = spec
            backprop_record(net)
''')


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_inner.py", *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )


def test_the_plugin_is_registered_and_imports_no_torch_or_numpy() -> None:
    points = metadata.entry_points(group="pytest11")
    assert [p.value for p in points if p.name == "backprop_harness"] == ["reports.plugin"]
    code = "import sys, reports.plugin; assert not {'torch', 'numpy'} & set(sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["plain", "xdist"])
def test_records_from_every_worker_reach_the_report(tmp_path: Path, workers) -> None:
    result = _pytest(tmp_path, "--backprop-report", "out", *workers)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "backprop report: out/index.html (3 records passed, 1 failed)" in result.stdout
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert (results["summary"]["passed"], results["summary"]["failed"]) == (3, 1)
    cases = results["sections"]["conformance"]["cases"]
    assert [c["id"] for c in cases] == [
        "test_op[tanh-False-inf]", "test_network", "test_network#2", "test_op[relu-True-1e-09]"]
    assert cases[0]["tolerance_ratio"] == "inf"
    assert results["meta"]["profile"] == "pytest" and results["meta"]["seed"] == 3
    page = (tmp_path / "out" / "index.html").read_text()
    assert "<script>x" not in page


def test_without_the_option_nothing_is_written(tmp_path: Path) -> None:
    result = _pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "backprop report" not in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test_inner.py"]
