"""Run a fuzz campaign: random architectures through both engines, outside pytest.

Draws N random specs (depth 1-6, widths 1-64, any activation anywhere, a compatible
loss, float32 or float64) with Hypothesis, runs each through a conformance protocol
(one pass, two accumulated passes, a stale-cache pass or an in-place check) and
compares every tensor. The first real failure stops the campaign and is shrunk to a
minimal spec, saved with the command that replays it. The campaign record (cases,
coverage, failures, largest error per op) is written to --out. With --replay DIR,
replays one saved case instead. Exit 0 when everything agrees, 1 on a failure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "fuzz"
HELP = "run N random architectures through both engines (a fuzz campaign)"
ORDER = 40
DEFAULT_OUT = Path("out") / "fuzz" / "campaign.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--examples", type=int, default=200, metavar="N",
                        help="random architectures to run (default 200)")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="seed of the campaign (default 0)")
    parser.add_argument("--json", action="store_true", help="print the record as JSON")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="FILE",
                        help=f"where to write the campaign record (default {DEFAULT_OUT})")
    parser.add_argument("--replay", type=Path, metavar="DIR",
                        help="replay a saved failing case (a directory with case.json)")


def _one_thread() -> None:
    """Small networks: a second BLAS/torch thread costs more than it gives."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(limits=1)


def _replay(directory: Path) -> int:
    from reference.fuzz import failure_report, load_case, run_case

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
    if args.examples < 1:
        raise ValueError(f"--examples must be a positive integer, got {args.examples}")
    if args.seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {args.seed}")
    _one_thread()
    if args.replay is not None:
        return _replay(args.replay)

    from tqdm import tqdm

    from reference.fuzz import run_campaign, summary_line
    from reports.files import atomic_write

    out: Path = args.out
    with tqdm(total=args.examples, desc="fuzz", unit="case", file=sys.stderr,
              disable=not sys.stderr.isatty()) as bar:
        record = run_campaign(args.examples, args.seed, progress=bar.update,
                              failure_root=out.parent / "failures")
    atomic_write(out, record.to_json() + "\n")
    if args.json:
        print(record.to_json())
    else:
        print(summary_line(record))
        for failure in record.failures:
            print(failure.message)
        print(f"record: {out}")
    return 0 if record.passed else 1
