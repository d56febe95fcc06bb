"""Mutation testing: what the last ``make mutate`` run found (``mutation/results.json``).

mutmut (pinned in constraints.txt) mutates ``manual/`` and ``reference/core/compare.py`` one small
change at a time and runs the conformance test files named in ``[tool.mutmut]`` against each
mutant; a mutant that no test notices *survives*. Every survivor is triaged in
``mutation/triage.toml`` as killed by a new test, equivalent, or out of reach of differential
testing, each with its reason (see ``mutation/README.md``).

The section only reads the results file, never runs mutmut (a run takes minutes to hours), and
is left out when the file is absent. Its counted checks: detected mutants and triaged survivors
pass, a survivor without a triage entry (or one whose "killing" test no longer kills it) fails.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

KEY = "mutation"
TITLE = "Mutation testing (mutmut)"
ORDER = 60
RESULTS_NAME = "mutation/results.json"
RESULTS = Path(__file__).resolve().parents[2] / RESULTS_NAME
EXPLAINED = ("equivalent", "unreachable")


def read_results(path: Path | None = None) -> dict[str, Any] | None:
    """The last run's record, or ``None`` when ``path`` (default :data:`RESULTS`) is absent."""
    path = RESULTS if path is None else path
    if not path.is_file():
        return None
    try:
        record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{RESULTS_NAME}: not readable JSON: {error}") from error
    return record


def collect(context: Any, path: Path | None = None) -> dict[str, Any] | None:
    record = read_results(path)
    if record is None:
        return None
    survivors = record["survivors"]
    explained = sum(s["triage"] in EXPLAINED for s in survivors)
    return {
        **record,
        "source": RESULTS_NAME,
        "passed": int(record["detected"]) + explained,
        "failed": len(survivors) - explained,
        "survivors": sorted(survivors, key=_survivor_order),
    }


def summarize(data: Mapping[str, Any]) -> dict[str, Any]:
    return {"passed": int(data["passed"]), "failed": int(data["failed"])}


def _survivor_order(s: Mapping[str, Any]) -> tuple[bool, str, str]:
    """Unexplained survivors first, then by file and mutant."""
    return s["triage"] in EXPLAINED, s["file"], s["mutant"]
