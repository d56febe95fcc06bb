"""The ``backprop-harness`` command line.

Each subcommand is a module in :mod:`reports.commands` with ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; they are found by name, so
adding a command is adding one module. Exit codes: 0 when everything agrees,
1 on a mismatch or failed check, 2 on bad input (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from reports import commands

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _commands() -> list[ModuleType]:
    found = [importlib.import_module(f"{commands.__name__}.{info.name}")
             for info in pkgutil.iter_modules(commands.__path__)]
    return sorted((m for m in found if hasattr(m, "run")), key=lambda m: m.ORDER)


def parser() -> argparse.ArgumentParser:
    top = _Parser(
        prog="backprop-harness",
        description="Verify a hand-written NumPy backprop engine against PyTorch autograd.",
        epilog="Exit status: 0 all agree, 1 mismatch or failed check, 2 bad input.",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _commands():
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.__doc__)
        command.set_defaults(run=module.run)
        module.add_arguments(command)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ValueError as error:
        print(f"backprop-harness: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("backprop-harness: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
