"""Run a fuzz campaign: random architectures through both engines, outside pytest.

Draws N random specs (depth 1-6, widths 1-64, any activation anywhere, a compatible
loss, float32 or float64) with Hypothesis, runs each through a conformance protocol
(one pass, two accumulated passes, a stale-cache pass or an in-place check) and
compares every tensor. The first real failure stops the campaign and is shrunk to a
minimal spec, saved with the command that replays it. The campaign record (cases,
coverage, failures, largest error per op) is written to --out. With --replay DIR,
replays one saved case instead. --examples is capped at 100000 (about 15 minutes on
one core); --max-time stops earlier, and so does Ctrl-C: either way the record of the
cases run so far is written.

The campaign is split into --shards deterministic shards (default 8, each its own seed
and Hypothesis run; :mod:`reference.fuzz.shards`), run one after another here, on
--workers local processes, or on the Dask cluster at --scheduler; the merged record is the
same for any number of workers (apart from its wall time). A campaign of at least 500
cases must also have drawn both dtypes, every registry op, batch sizes 1, above 1 and large
and every edge class (:func:`reference.fuzz.campaign.coverage_gaps`; ops it never drew get focused
cases first, :func:`reference.fuzz.shards.top_up`): if not, it fails naming what is missing;
a smaller campaign says its coverage was not judged. Exit 0 when everything
agrees, 1 on a failure or a coverage gap, 2 on bad input, 130 when interrupted (after writing
the partial record).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "fuzz"
HELP = "run N random architectures through both engines (a fuzz campaign)"
ORDER = 40
DEFAULT_OUT = Path("out") / "fuzz" / "campaign.json"
DEFAULT_FAILURES = Path("out") / "fuzz-failures"
MAX_EXAMPLES = 100_000
MAX_SHARDS = 10_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--examples", type=int, default=200, metavar="N",
                        help=f"random architectures to run (default 200, at most "
                             f"{MAX_EXAMPLES})")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="seed of the campaign (default 0)")
    parser.add_argument("--json", action="store_true", help="print the record as JSON")
    parser.add_argument("--max-time", type=float, metavar="SECONDS",
                        help="stop after this long, keeping the cases run so far")
    parser.add_argument("--out", default=str(DEFAULT_OUT), metavar="FILE",
                        help=f"where to write the campaign record (default {DEFAULT_OUT}; "
                             f"- for standard output)")
    parser.add_argument("--failures", default=str(DEFAULT_FAILURES), metavar="DIR",
                        help=f"where a failing case is saved (default {DEFAULT_FAILURES}/<hash>)")
    parser.add_argument("--shards", type=int, default=None, metavar="K",
                        help="split the campaign into K deterministic shards (default 8; the "
                             "record depends on K, never on --workers)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="run the shards on N local processes (default 1: in this one)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run the shards on a Dask cluster (e.g. tcp://host:8786)")
    parser.add_argument("--replay", type=Path, metavar="DIR",
                        help="replay a saved failing case (a directory with case.json)")


def _replay(directory: Path) -> int:
    from reference.fuzz.campaign import failure_report, load_case, run_case

    case = load_case(directory)
    outcome = run_case(case)
    if outcome.failed:
        message, _ = failure_report(outcome, directory.parent)
        print(message)
        return 1
    note = f" (kink straddle excused at {outcome.kink})" if outcome.kink else ""
    if outcome.rounding:
        note = f" (float32 rounding within the measured bound: {outcome.rounding})"
    print(f"case {directory}: both engines agree (protocol {case.protocol}){note}")
    return 0


def run(args: argparse.Namespace) -> int:
    from manual.files import STDOUT, atomic_write, output_file
    from reports.inputs import limit_threads

    if not 1 <= args.examples <= MAX_EXAMPLES:
        raise ValueError(f"--examples must be an integer from 1 to {MAX_EXAMPLES}, got "
                         f"{args.examples} (use several seeds for a longer campaign)")
    if args.seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.max_time is not None and not 0 < args.max_time < float("inf"):
        raise ValueError(f"--max-time must be a positive number of seconds, got {args.max_time}")
    if args.shards is not None and not 1 <= args.shards <= MAX_SHARDS:
        raise ValueError(f"--shards must be an integer from 1 to {MAX_SHARDS}, got {args.shards}")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be a positive integer, got {args.workers}")
    if args.workers is not None and args.scheduler is not None:
        raise ValueError("--workers and --scheduler: give one (a Dask cluster has its own "
                         "workers)")
    if args.replay is not None:
        limit_threads()
        return _replay(args.replay)
    out = output_file(args.out, create_parents=args.out == str(DEFAULT_OUT))
    failures = Path(args.failures)
    if failures.exists() and not failures.is_dir():
        raise ValueError(f"--failures: {failures} is not a directory")
    limit_threads()

    from tqdm import tqdm

    from reference.fuzz.campaign import coverage_verdict, summary_line
    from reference.fuzz.shards import DEFAULT_SHARDS, run_sharded

    with tqdm(total=args.examples, desc="fuzz", unit="case", file=sys.stderr,
              disable=not sys.stderr.isatty()) as bar:
        record = run_sharded(args.examples, args.seed, progress=bar.update,
                             shards=args.shards or DEFAULT_SHARDS, workers=args.workers or 1,
                             scheduler=args.scheduler, failure_root=failures,
                             max_seconds=args.max_time)
    if out is not None:
        atomic_write(out, record.to_json() + "\n")
    if args.json or args.out == STDOUT:
        print(record.to_json())
    else:
        print(summary_line(record))
        for failure in record.failures:
            print(failure.message)
        print(f"record: {out}")
    if record.stopped.startswith("interrupted"):
        print(f"backprop-harness: {record.stopped}; the partial record is written",
              file=sys.stderr)
        return 130
    covered, verdict = coverage_verdict(record)
    quiet = args.json or args.out == STDOUT  # standard output holds the JSON record alone
    print(verdict, file=sys.stderr if quiet or not covered else sys.stdout)
    return 0 if record.passed and covered else 1
