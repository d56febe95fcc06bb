"""Fuzzing: a campaign of random architectures, and the bug zoo's kill table.

The campaign (:func:`reference.fuzz.campaign.run_campaign`) draws random specs with Hypothesis and
runs each through both engines under a conformance protocol; the record holds its
coverage, the largest error per op and dtype, and any failure with its shrunk spec and
the command that replays it. The zoo (:mod:`reference.zoo.core`) injects each mutant and
asks the conformance suite and the fuzzer to kill it. In the ``quick`` profile the
fuzzer's counterexamples are not shrunk (their size is an upper bound) to keep the
section under half a minute.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from manual.spec import DTYPES

KEY = "fuzz"
TITLE = "Fuzzing random architectures and the bug zoo"
ORDER = 50
EXAMPLES = {"quick": 100, "full": 1000}
ZOO_BUDGET = 60  # the ci profile's max_examples
SHRINK = {"quick": False, "full": True}


def collect(context: Any) -> dict[str, Any]:
    from reference.core.records import encode
    from reference.fuzz.campaign import run_campaign
    from reference.zoo import core as zoo
    from reference.zoo import kill as zoo_kill

    profile = context.profile if context.profile in EXAMPLES else "quick"
    bar = context.progress("fuzz campaign", EXAMPLES[profile])
    campaign = run_campaign(EXAMPLES[profile], context.seed, progress=bar.update)
    bar.close()
    bar = context.progress("bug zoo", len(zoo.MUTANTS))
    kills = []
    for mutant in zoo.MUTANTS:
        kills.append(zoo_kill.kill(mutant, ZOO_BUDGET, shrink=SHRINK[profile]))
        bar.update(1)
    bar.close()
    survivors = sum(not k.killed for k in kills)
    record = encode(campaign)
    # Wall-clock time would make two runs of the same seed differ; speed belongs to
    # benchmarks/bench_fuzz_throughput.py.
    del record["elapsed_seconds"]
    return {
        "profile": profile,
        "campaign": record,
        "zoo": encode(kills),
        "zoo_budget": ZOO_BUDGET,
        "shrunk": SHRINK[profile],
        "passed": campaign.cases + len(kills) - survivors,
        "failed": len(campaign.failures) + survivors,
        "errors": _errors(campaign.largest_error),
        "ops": _op_rows(record),
    }


def _errors(largest: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """The worst relative error and error / tolerance per dtype, over every op."""
    out: dict[str, dict[str, float]] = {}
    for by_dtype in largest.values():
        for dtype, entry in by_dtype.items():
            worst = out.setdefault(dtype, {"max_rel_error": 0.0, "tolerance_ratio": 0.0})
            worst["max_rel_error"] = max(worst["max_rel_error"], entry.max_rel_error)
            worst["tolerance_ratio"] = max(worst["tolerance_ratio"], entry.max_tolerance_ratio)
    return out


def _op_rows(campaign: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per op: cases that used it and its largest errors in each dtype."""
    rows = []
    for op in sorted(set(campaign["ops"]) | set(campaign["uncovered"])):
        row: dict[str, Any] = {"op": op, "cases": campaign["ops"].get(op, 0)}
        for dtype in DTYPES:
            entry = campaign["largest_error"].get(op, {}).get(dtype)
            # None (null in JSON): not covered, which is not the same as a NaN error.
            row[dtype] = entry or {"cases": 0, "max_rel_error": None,
                                   "max_tolerance_ratio": None}
        rows.append(row)
    return rows
