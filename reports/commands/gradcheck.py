"""Check a network's backprop gradients against numerical ones (numpy only, no PyTorch).

Every parameter tensor and the input are checked in float64: ``full`` perturbs every element
(central differences), ``sparse`` k random elements per tensor, ``projection`` one random
direction per tensor (falling back to ``full`` on a tensor that fails, to say where), and
``complex`` uses the complex step (refused when the network holds a non-analytic op). Prints a
table (or the record as JSON with --json). Exit 0 when every tensor passes, 1 on a failure,
2 on bad input.
"""

from __future__ import annotations

import argparse
import sys

from reports.inputs import add_budget_argument

NAME = "gradcheck"
HELP = "check backprop gradients against numerical ones (full, sparse, projection, complex)"
ORDER = 20


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


def _natural(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    value = _natural(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from manual.gradcheck import MODES

    parser.add_argument("spec", metavar="SPEC.json", help="the network spec")
    parser.add_argument("--data", required=True, metavar="DATA.json",
                        help="a JSON object with 'x' (N, D) and 'y' (the loss's target)")
    parser.add_argument("--mode", choices=MODES, default="full",
                        help="which elements to perturb and how (default: full)")
    parser.add_argument("--eps", type=_positive_float, default=None,
                        help="the step h (default: eps_mach^(1/3) ~ 6e-6 for central "
                             "differences, 1e-20 for the complex step; refused outside "
                             "[1e-7, 1e-3] (complex: [1e-150, 1e-5]), a warning beyond 10x "
                             "from the default)")
    parser.add_argument("--seed", type=_natural, default=0,
                        help="seed for sparse elements and projection directions (default: 0)")
    parser.add_argument("-k", type=_positive_int, default=16,
                        help="elements per tensor in sparse mode (default: 16)")
    parser.add_argument("--json", action="store_true", help="print the record as JSON")
    add_budget_argument(parser)


def _number(value: float) -> str:
    return f"{value:.2e}" if value == value else "nan"


def table(record: object) -> str:
    """One line per tensor: elements checked, worst relative error and where, kinks, verdict."""
    from manual.gradcheck import ACCEPTABLE, GOOD, GradcheckRecord

    if not isinstance(record, GradcheckRecord):
        raise TypeError(f"table: needs a GradcheckRecord, got {type(record).__name__}")
    header = (f"{'tensor':<18} {'shape':<9} {'checked':>7} {'max rel err':>11} {'at':<9} "
              f"{'max abs err':>11} {'noise':>9} {'kinks':>5}  verdict")
    lines = [f"{record.subject}: {record.mode} check in float64 (source {record.source_dtype}), "
             f"eps {record.eps:.3g}, seed {record.seed}, {record.forwards} perturbed evaluations",
             header, "-" * len(header)]
    for t in record.tensors:
        shape = "x".join(map(str, t.shape)) or "scalar"
        where = ",".join(map(str, t.worst_index)) or "-"
        verdict = t.verdict if t.passed else "WRONG"
        if t.refined:
            verdict += f" ({t.refined} judged at h/10)"
        if t.located_by:
            verdict += f" (located by {t.located_by})"
        elif t.problem:
            verdict += f" ({t.problem})"
        lines.append(f"{t.name:<18} {shape:<9} {t.checked:>7} {_number(t.max_rel_error):>11} "
                     f"{where:<9} {_number(t.max_abs_error):>11} {_number(t.noise):>9} "
                     f"{t.kinks_crossed:>5}  {verdict}")
    if record.problem:
        lines.append(f"FAIL: {record.problem}")
        return "\n".join(lines)
    failed = len(record.failures)
    bands = (f"Bands: good <= {GOOD:g}; <= {ACCEPTABLE:g} acceptable only where a kink was "
             f"crossed or the error shrank with the step; above, wrong (or 'kink': crossed a "
             f"kink, not judged).")
    if failed:
        lines.append(f"FAIL: {failed} of {len(record.tensors)} tensors have a wrong gradient. "
                     + bands)
    else:
        lines.append(f"OK: all {len(record.tensors)} tensors pass. " + bands)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from manual.gradcheck import check_network
    from manual.gradcheck.modes import check_step
    from reports.inputs import limit_threads, load

    warning = check_step(args.mode, args.eps)  # refused before any file is read
    if warning:
        print(f"backprop-harness: warning: {warning}", file=sys.stderr)
    limit_threads(torch=False)
    spec, data = load(args)
    record = check_network(spec, data, args.mode, eps=args.eps, seed=args.seed, k=args.k)
    print(record.to_json() if args.json else table(record))
    return 0 if record.passed else 1
