"""``make mutate``: mutmut over manual/ and reference/core/compare.py, killed by the conformance
suite, its results written to ``mutation/results.json`` (see ``mutation/README.md``).

Run from the repository root with the project's Python::

    python mutation/mutate.py [TARGET ...] [--max-children N]
    python mutation/mutate.py --summarize-only [TARGET ...]
    python mutation/mutate.py [TARGET ...] --only NAME_OR_GLOB ...

A ``TARGET`` is a path (``manual/ops/``, ``manual/network.py``) or a mutmut name glob
(``manual.ops.softmax.*``); without one, :data:`DEFAULT_TARGETS`. ``--summarize-only``
re-reads the results mutmut left in ``mutants/`` without running anything
(``wall_seconds`` is then ``null``); ``--only`` re-runs just the named mutants (say, the
last run's survivors after new tests were added) and summarizes the targets with the other
results as cached. The run's log goes to ``mutants/mutmut-run.log``; nothing outside
``mutants/`` and ``mutation/results.json`` is written.

The configuration (sources, what is copied, the killer test files) is ``[tool.mutmut]`` in
pyproject.toml; the triage of survivors is ``mutation/triage.toml``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "mutation" / "results.json"
TRIAGE = ROOT / "mutation" / "triage.toml"
MUTANTS = ROOT / "mutants"
DEFAULT_TARGETS = ("manual/ops/", "manual/layers/core.py", "manual/network.py",
                   "reference/core/compare.py")
TRIAGE_CLASSES = ("killed", "equivalent", "unreachable")

# mutmut 3.8.1's exit code -> status (mutmut/stats.py); anything else is "suspicious".
STATUS_BY_EXIT_CODE: dict[int | None, str] = {
    1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 2: "interrupted",
    None: "not checked", 34: "skipped", 35: "suspicious", 36: "timeout",
    37: "caught by type check", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout",
    -11: "segfault", -9: "segfault",
}
# A timeout or a crash is a detection: the mutant made the killer tests misbehave.
DETECTED = ("killed", "timeout", "segfault", "caught by type check")
UNDETECTED = ("survived", "suspicious")


def status(exit_code: int | None) -> str:
    return STATUS_BY_EXIT_CODE.get(exit_code, "suspicious")


def mutant_glob(target: str) -> str:
    """``manual/ops/`` -> ``manual.ops.*``, ``manual/network.py`` -> ``manual.network.*``;
    a name glob is returned as it is."""
    if "/" not in target and not target.endswith(".py"):
        return target
    stem = target.removesuffix(".py").rstrip("/")
    return stem.replace("/", ".") + ".*"


def read_exit_codes(mutants: Path = MUTANTS) -> dict[str, tuple[str, int | None]]:
    """Every mutant mutmut generated: name -> (source path, exit code), from its ``.meta``
    files (one per mutated source file)."""
    out: dict[str, tuple[str, int | None]] = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        source = meta.relative_to(mutants).as_posix().removesuffix(".meta")
        codes = json.loads(meta.read_text(encoding="utf-8")).get("exit_code_by_key", {})
        for name, code in codes.items():
            out[name] = (source, code)
    return out


def load_triage(path: Path = TRIAGE) -> dict[str, dict[str, str]]:
    """``mutation/triage.toml``: mutant name -> ``{"class": ..., "reason": ...}``."""
    if not path.is_file():
        return {}
    table = tomllib.loads(path.read_text(encoding="utf-8"))
    entries = table.get("mutants", {})
    for name, entry in entries.items():
        if entry.get("class") not in TRIAGE_CLASSES or not entry.get("reason"):
            raise ValueError(f"{path.name}: {name}: needs class in {TRIAGE_CLASSES} and a reason")
    return entries


def function_of(name: str) -> str:
    """``manual.ops.softmax.x_softmax_forward__mutmut_5`` -> ``softmax_forward``;
    methods (``xǁClassǁmethod``) -> ``Class.method``."""
    mangled = name.rpartition(".")[2].partition("__mutmut_")[0]
    if mangled.startswith("xǁ"):
        return ".".join(part for part in mangled[2:].split("ǁ") if part)
    return mangled.removeprefix("x_")


def summarize(codes: Mapping[str, tuple[str, int | None]], triage: Mapping[str, Mapping[str, str]],
              globs: Iterable[str], *, wall_seconds: float | None = None,
              max_children: int | None = None, killer: Iterable[str] = (),
              changes: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The record of one run over the mutants matching ``globs``: counts, the score, counts
    per file and every survivor with its triage.

    score = detected / (detected + undetected), with ``no tests`` (no killer test reaches
    the function) and ``not checked`` left out of both; ``score_excluding_equivalent``
    also drops the survivors triaged as equivalent from the denominator.
    """
    globs = list(globs)
    chosen = {name: v for name, v in codes.items() if any(fnmatch(name, g) for g in globs)}
    counts = Counter(status(code) for _, code in chosen.values())
    per_file: dict[str, Counter[str]] = {}
    survivors = []
    for name, (source, code) in sorted(chosen.items()):
        state = status(code)
        per_file.setdefault(source, Counter())[state] += 1
        if state in UNDETECTED:
            entry = triage.get(name, {})
            survivors.append({
                "mutant": name, "file": source, "function": function_of(name), "status": state,
                "triage": entry.get("class", "untriaged"), "reason": entry.get("reason", ""),
                "change": (changes or {}).get(name, ""),
            })
    detected = sum(counts[s] for s in DETECTED)
    undetected = sum(counts[s] for s in UNDETECTED)
    triage_counts = Counter(s["triage"] for s in survivors)
    equivalent = triage_counts["equivalent"]
    return {
        "tool": "mutmut 3.8.1",
        "targets": globs,
        "killer": list(killer),
        "max_children": max_children,
        "wall_seconds": None if wall_seconds is None else round(wall_seconds, 1),
        "mutants": len(chosen),
        "counts": dict(sorted(counts.items())),
        "detected": detected,
        "undetected": undetected,
        "score": _ratio(detected, detected + undetected),
        "score_excluding_equivalent": _ratio(detected, detected + undetected - equivalent),
        "triage_counts": dict(sorted(triage_counts.items())),
        "files": [_file_row(source, c) for source, c in sorted(per_file.items())],
        "survivors": survivors,
    }


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _file_row(source: str, c: Counter[str]) -> dict[str, Any]:
    detected = sum(c[s] for s in DETECTED)
    undetected = sum(c[s] for s in UNDETECTED)
    return {"file": source, "mutants": sum(c.values()), "detected": detected,
            "survived": undetected, "no_tests": c["no tests"], "not_checked": c["not checked"],
            "score": _ratio(detected, detected + undetected)}


def changes_of(names: Iterable[str], sources: Mapping[str, str]) -> dict[str, str]:
    """The changed lines of each mutant (``-``/``+`` lines of mutmut's diff), by name."""
    try:
        from mutmut.mutation.diff_apply import get_diff_for_mutant
    except ImportError:
        return {}
    out = {}
    cwd = Path.cwd()
    os.chdir(ROOT)
    try:
        for name in names:
            diff = get_diff_for_mutant(name, path=sources[name])
            out[name] = "\n".join(line for line in diff.splitlines()
                                  if line[:1] in "+-" and line[:3] not in ("+++", "---"))
    finally:
        os.chdir(cwd)
    return out


def killer_files() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return list(config["tool"]["mutmut"]["pytest_add_cli_args_test_selection"])


def run_mutmut(globs: list[str], max_children: int) -> tuple[int, float]:
    """``mutmut run`` on ``globs`` (one BLAS/torch thread per child, Hypothesis's ci profile:
    derandomised, no example database); returns its exit code and wall time."""
    MUTANTS.mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "HYPOTHESIS_PROFILE": "ci"}
    command = [sys.executable, "-c", "from mutmut.__main__ import cli; cli()", "run",
               "--max-children", str(max_children), *globs]
    start = time.monotonic()
    with (MUTANTS / "mutmut-run.log").open("w", encoding="utf-8") as log:
        code = subprocess.call(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return code, time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="paths or mutmut name globs")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--summarize-only", action="store_true")
    parser.add_argument("--wall-seconds", type=float, default=None,
                        help="with --summarize-only: the wall time of the run summarized")
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME",
                        help="run only these mutant names or globs (the summary covers TARGETs)")
    args = parser.parse_args(argv)
    globs = [mutant_glob(t) for t in (args.targets or DEFAULT_TARGETS)]
    wall = args.wall_seconds
    if not args.summarize_only:
        code, wall = run_mutmut([mutant_glob(t) for t in args.only] or globs, args.max_children)
        if code != 0:
            print(f"mutmut run failed (exit {code}); see mutants/mutmut-run.log", file=sys.stderr)
            return 1
    codes = read_exit_codes()
    triage = load_triage()
    first = summarize(codes, triage, globs)
    survivors = [s["mutant"] for s in first["survivors"]]
    record = summarize(codes, triage, globs, wall_seconds=wall,
                       max_children=args.max_children if wall is not None else None,
                       killer=killer_files(),
                       changes=changes_of(survivors, {n: codes[n][0] for n in survivors}))
    RESULTS.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    untriaged = record["triage_counts"].get("untriaged", 0)
    print(f"{record['mutants']} mutants, score {record['score']}, {record['undetected']} "
          f"survived ({untriaged} untriaged); wall {record['wall_seconds']} s -> "
          f"{RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
