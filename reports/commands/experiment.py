"""Run an experiment in both engines and check it against theory.

``vanishing``: deep MLPs over activations and initializations; per-layer gradient norms
and activation statistics from the manual engine and PyTorch on the same weights and data;
the measured slope of ln E[(dL/dh)^2] against mean-field theory; He et al.'s and Glorot &
Bengio's predictions; the seed's remedies. Prints a summary (or the record as JSON with
--json; --out FILE also writes it there). A progress bar goes to stderr. Exit 0 when every
check meets its target, 1 when one does not, 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys

NAME = "experiment"
HELP = "run an experiment (vanishing: exploding/vanishing gradients vs mean-field theory)"
ORDER = 30
EXPERIMENTS = ("vanishing",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=EXPERIMENTS, help="the experiment to run")
    parser.add_argument("--profile", choices=("quick", "full"), default="quick",
                        help="quick (default, under a minute) or full (the issue's targets: "
                             "width 500, depth 50, 10 seeds)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed (default: 0)")
    parser.add_argument("--json", action="store_true", help="print the record as JSON")
    parser.add_argument("--out", metavar="FILE",
                        help="also write the JSON record here (- for standard output)")


def summary(record: object) -> str:
    """The checks as a plain-text table, then the remedies."""
    from reports.experiments.vanishing import ExperimentRecord

    if not isinstance(record, ExperimentRecord):
        raise TypeError(f"summary: needs an ExperimentRecord, got {type(record).__name__}")
    lines = [f"vanishing ({record.profile} profile, seed {record.seed}): "
             f"{record.passed} checks passed, {record.failed} failed",
             f"{'setting':<28} {'quantity':<34} {'engine':<7} {'measured':>10} {'theory':>10} "
             f"{'error':>9} {'tol':>6}  verdict"]
    for c in record.checks:
        lines.append(f"{c.name:<28} {c.quantity:<34} {c.engine:<7} {c.measured:>10.4f} "
                     f"{c.predicted:>10.4f} {c.error:>+9.4f} {c.tolerance:>6.3g}  "
                     f"{'ok' if c.passed else 'FAIL'}  ({c.unit})")
    lines.append("")
    lines.append("remedies (manual engine; baseline -> treated):")
    lines.append(f"{'remedy':<34} {'‖∂L/∂W₁‖/‖∂L/∂W_L‖':>24} {'rms ∂L/∂h₁ / ∂L/∂h_L':>24} "
                 f"{'mean ‖∂L/∂W‖':>22}")
    for r in record.remedies:
        cells = [f"{d['baseline']['manual']:.3g} -> {d['treated']['manual']:.3g}"
                 for d in (r.ratio, r.delta_ratio, r.grad_scale)]
        lines.append(f"{r.name:<34} {cells[0]:>24} {cells[1]:>24} {cells[2]:>22}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from manual.files import STDOUT, atomic_write, output_file
    from reference.core.records import dumps
    from reports.experiments import vanishing
    from reports.inputs import limit_threads

    if args.seed < 0:
        raise ValueError(f"--seed: must be non-negative, got {args.seed}")
    out = output_file(args.out) if args.out is not None else None  # before any work
    limit_threads()
    total = vanishing.runs_in(vanishing.PROFILES[args.profile])
    with tqdm(total=total, desc=f"vanishing ({args.profile})", unit="run", file=sys.stderr,
              leave=False, disable=not sys.stderr.isatty()) as bar:
        record = vanishing.run_experiment(args.profile, args.seed, progress=bar.update)
    text = dumps(record)
    if out is not None:
        atomic_write(out, text + "\n")
    print(text if args.json or args.out == STDOUT else summary(record))
    return 0 if record.failed == 0 else 1
