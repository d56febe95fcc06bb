"""Run a spec through both engines and compare the loss, outputs and every gradient.

Prints a table (or the record as JSON with --json). Exit 0 when every tensor
agrees within tolerance, 1 on a mismatch, 2 on bad input.
"""

from __future__ import annotations

import argparse

from reports.inputs import add_budget_argument

NAME = "compare"
HELP = "run a spec through both engines and compare every tensor"
ORDER = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC.json", help="the network spec")
    parser.add_argument("--data", required=True, metavar="DATA.json",
                        help="a JSON object with 'x' (N, D) and 'y' (the loss's target)")
    parser.add_argument("--json", action="store_true", help="print the record as JSON")
    parser.add_argument("--no-values", action="store_true",
                        help="leave both engines' values out of the JSON record")
    add_budget_argument(parser)


def run(args: argparse.Namespace) -> int:
    from reports.inputs import limit_threads, load

    limit_threads()
    from reference.core.compare import compare_network
    from reports.tables import comparison_table

    spec, data = load(args)
    record = compare_network(spec, data, keep_values=not args.no_values)
    print(record.to_json() if args.json else comparison_table(record))
    return 0 if record.passed else 1
