"""Check a user's own layers and networks against PyTorch: the cases a Python file declares.

FILE defines a module-level ``CASES`` list of ``reference.checks.LayerCase`` (a layer's
forward/backward pair, its torch twin, inputs and sweep), ``reference.checks.NetworkCase``
(a network's values by tensor name), ``reference.checks.ModelCase`` (a whole model and its
twin) and ``reference.checks.DropoutCase`` (a dropout-like layer, by its statistics).
Prints one line per case and, for each failing one, the smallest failing configuration in
full (or everything as JSON with --json); --report DIR writes the HTML report. Exit 0 when
every case agrees, 1 when one fails, 2 on bad input.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

NAME = "check"
HELP = "check the layers and networks a Python file declares (CASES) against PyTorch"
ORDER = 15


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE.py", help="a Python file with a CASES list")
    parser.add_argument("--json", action="store_true", help="print every result as JSON")
    parser.add_argument("--report", metavar="DIR", default=None,
                        help="write the HTML report (index.html + results.json) into DIR")
    parser.add_argument("--cases", default="CASES", metavar="NAME",
                        help="the module-level list to run (default: CASES)")


def load(path: str, name: str = "CASES") -> list[Any]:
    """The ``name`` list of the Python file at ``path`` (its folder importable meanwhile)."""
    file = Path(path)
    if not file.is_file() or file.suffix != ".py":
        raise ValueError(f"{path}: not a Python file")
    spec = importlib.util.spec_from_file_location(f"_backprop_check_{file.stem}", file)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: cannot be imported")
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(file.parent.resolve()))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(file.parent.resolve()))
    cases = getattr(module, name, None)
    if not isinstance(cases, list | tuple) or not cases:
        raise ValueError(f"{path}: no {name} list (of LayerCase / NetworkCase) at module level")
    return list(cases)


def _row(name: str, kind: str, total: int, failed: int, message: str) -> str:
    verdict = "ok" if not failed else "FAIL"
    return f"{name:<14} {kind:<8} {total:>6} {failed:>7}  {verdict:<5} {message}"


def run(args: argparse.Namespace) -> int:
    from reference.checks import DropoutCase, LayerCase, LayerResult, ModelCase, NetworkCase
    from reference.core.records import ComparisonRecord

    declared = load(args.file, args.cases)
    for case in declared:
        if not isinstance(case, LayerCase | NetworkCase | ModelCase | DropoutCase):
            raise ValueError(f"{args.file}: {args.cases} holds {type(case).__name__}, not a "
                             "LayerCase, NetworkCase, ModelCase or DropoutCase")
    results: list[tuple[str, LayerResult | ComparisonRecord]] = [
        (case.name, case.run()) for case in declared]
    if args.report:
        _write_report(Path(args.report), results)
    if args.json:
        payload = [json.loads(r.to_json()) | {"name": n} for n, r in results]
        print(json.dumps(payload, indent=2, allow_nan=False))
    else:
        print(_table(results))
    return 0 if all(r.passed for _, r in results) else 1


def _table(results: list[tuple[str, Any]]) -> str:
    from reference.checks import LayerResult

    header = f"{'case':<14} {'kind':<8} {'cases':>6} {'failed':>7}  verdict"
    lines = [header, "-" * 78]
    details = []
    for name, result in results:
        if isinstance(result, LayerResult):
            failed = sum(not r.passed for r in result.records) + (not result.records)
            message = result.summary().split(": ", 1)[1] if failed else (
                f"{len(result.skipped)} skipped (PyTorch rejects them)" if result.skipped
                else "")
            lines.append(_row(name, "layer", len(result.records), failed, message))
            if failed:
                details.append(result.describe())
        else:
            failed = len(result.failures)
            first = result.first_divergence or ""
            lines.append(_row(name, "network", len(result.tensors), failed,
                              f"first wrong: {first}" if failed else ""))
            if failed:
                details.append(result.describe())
    bad = sum(not r.passed for _, r in results)
    lines.append(f"FAIL: {bad} of {len(results)} declared cases differ from PyTorch" if bad
                 else f"OK: all {len(results)} declared cases agree with PyTorch")
    return "\n".join([*lines, "", *details] if details else lines)


def _write_report(out: Path, results: list[tuple[str, Any]]) -> None:
    from reference.checks import LayerResult
    from reports import report
    from reports.sections import RunContext, conformance

    rows = []
    for name, result in results:
        if isinstance(result, LayerResult):
            rows += [conformance.case_row(r, f"{name} {c.label()}")
                     for c, r in zip(result.cases, result.records, strict=True)]
        else:
            rows.append(conformance.case_row(result, name))
    results_json = report.build_results({conformance.KEY: conformance.tabulate(rows)},
                                        RunContext(profile="check"), [conformance])
    report.write(out, results_json, [conformance])
