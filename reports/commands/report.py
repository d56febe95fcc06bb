"""Run the default verification and write the HTML report and its data.

Writes ``index.html`` (one self-contained page: no network, no fonts) and
``results.json`` into the output folder, replacing the folder as one unit. The same
seed and versions give byte-identical files. Exit 0 when every check passes,
1 when any fails or a section cannot be drawn (the report is written either way),
2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from manual.jsonable import decode_float

NAME = "report"
HELP = "run the verification and write index.html + results.json"
ORDER = 90
DEFAULT_OUT = Path("out/report")


def _section_keys() -> list[str]:
    from reports.sections import discover

    return [module.KEY for module in discover()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                        help=f"output folder (default: {DEFAULT_OUT}); new, or one holding "
                             f"only a previous report: it is replaced as a whole")
    parser.add_argument("--profile", choices=("quick", "full"), default="quick",
                        help="quick (default, about a minute) or full (more seeds and cases)")
    parser.add_argument("--seed", type=int, default=0, help="the run's seed (default: 0)")
    parser.add_argument("--section", action="append", metavar="KEY", dest="sections",
                        help=f"run only this section (repeatable; default: all): "
                             f"{', '.join(_section_keys())}")


def run(args: argparse.Namespace) -> int:
    from manual.files import output_dir
    from reports import report
    from reports.inputs import limit_threads

    if args.seed < 0:
        raise ValueError(f"--seed: must be non-negative, got {args.seed}")
    if str(args.out) == "-":
        raise ValueError("--out: the report is a folder (index.html and results.json), "
                         "so - (standard output) cannot hold it")
    output_dir(args.out, allowed=report.REPORT_FILES, create_parents=args.out == DEFAULT_OUT)
    limit_threads()
    start = time.perf_counter()
    results, problems = report.run(args.out, args.profile, args.seed, only=args.sections)
    summary = results["summary"]
    for problem in problems:
        print(f"backprop-harness: warning: {problem}", file=sys.stderr)
    page = args.out / "index.html"
    print(summary_table(summary))
    print(f"{summary['verdict'].upper()}: {summary['passed']} checks passed, "
          f"{summary['failed']} failed; wrote {page} ({page.stat().st_size / 1024:.0f} KiB) "
          f"and {args.out / 'results.json'} in {time.perf_counter() - start:.1f} s",
          file=sys.stderr)
    return 0 if summary["verdict"] == "pass" and not problems else 1


def summary_table(summary: dict) -> str:
    """Per section: checks passed and failed; per dtype: the worst error and the headroom."""
    lines = [f"{'section':<16} {'passed':>7} {'failed':>7}  status"]
    for key, entry in summary["sections"].items():
        lines.append(f"{key:<16} {entry['passed']:>7} {entry['failed']:>7}  {entry['status']}")
    lines.append(f"{'dtype':<16} {'worst rel err':>14} {'err/tol':>8} {'headroom':>9}")
    for dtype, entry in summary["by_dtype"].items():
        # Non-finite figures are stored as the strings "inf"/"nan" (records stay valid JSON).
        worst, ratio, headroom = (decode_float(entry[k]) for k in
                                  ("max_rel_error", "tolerance_ratio", "headroom"))
        lines.append(f"{dtype:<16} {worst:>14.3g} {ratio:>8.3g} {headroom:>8.3g}x")
    return "\n".join(lines)
