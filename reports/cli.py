"""The ``backprop-harness`` command line.

Each subcommand is a module in :mod:`reports.commands` with ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; they are found by name, so
adding a command is adding one module. Exit codes: 0 when everything agrees,
1 on a mismatch or failed check, 2 on bad input or any other error (one line on
stderr, no traceback: a closed pipe, a full disk, a permission, memory), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from reports import commands

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_STATUS = ("Exit status: 0 all agree, 1 a mismatch or failed check, 2 bad input or an "
               "error (one line on stderr), 130 interrupted.")
TRACEBACK_VARIABLE = "BACKPROP_HARNESS_TRACEBACK"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")

    def _print_message(self, message: str, file: Any = None) -> None:
        # argparse swallows OSError here, so --help into /dev/full would exit 0 having
        # written nothing; let main() report it instead.
        if message:
            (file or sys.stderr).write(message)


def _commands() -> list[ModuleType]:
    found = [importlib.import_module(f"{commands.__name__}.{info.name}")
             for info in pkgutil.iter_modules(commands.__path__)]
    return sorted((m for m in found if hasattr(m, "run")), key=lambda m: m.ORDER)


def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("backprop-harness")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:
    top = _Parser(
        prog="backprop-harness",
        description="Verify a hand-written NumPy backprop engine against PyTorch autograd.",
        epilog=EXIT_STATUS,
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    for module in _commands():
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=EXIT_STATUS)
        command.set_defaults(run=module.run)
        module.add_arguments(command)
    return top


def _say(message: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # stderr gone: nothing left to tell
        print(f"backprop-harness: {message}", file=sys.stderr, flush=True)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of unwritable output
    does not print 'Exception ignored' after our one line."""
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (pytest's capture)
        pass


def _os_error(error: OSError) -> str:
    where = f" ({error.filename})" if error.filename else ""
    if error.errno == errno.ENOSPC:
        return f"error: cannot write: no space left on the device{where}"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"error: permission denied{where}: {error.strerror}"
    return f"error: {error.strerror or error}{where}"


def _run(argv: Sequence[str] | None) -> int:
    top = parser()
    args = top.parse_args(argv)
    if args.command is None:
        top.print_help()
        return EXIT_BAD_INPUT
    code = int(args.run(args))
    sys.stdout.flush()  # a full device or closed pipe is found here, inside the handlers
    return code


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(argv)
    except SystemExit:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            _quiet_stdout()
            _say("error: cannot write to standard output")
            raise SystemExit(EXIT_BAD_INPUT) from None
        raise
    except (ValueError, TypeError) as error:
        _say(f"error: {error}")
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        _say("error: standard output was closed (broken pipe)")
    except OSError as error:
        if error.errno == errno.ENOSPC or error.filename is None:
            _quiet_stdout()
        _say(_os_error(error))
    except RecursionError:
        _say("error: input nested too deeply to process")
    except MemoryError:
        _say("error: out of memory; try a smaller spec or batch (see --max-memory)")
    except Exception as error:  # a bug: still one line, and the traceback on request
        if os.environ.get(TRACEBACK_VARIABLE):
            raise
        _say(f"internal error: {type(error).__name__}: {error} (set {TRACEBACK_VARIABLE}=1 "
             f"for the traceback)")
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
