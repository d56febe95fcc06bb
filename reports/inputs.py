"""What the commands that take a spec and a data file share: bounded loading, thread limits.

:func:`load` reads the spec, checks its size against the memory budget before anything is
allocated (:mod:`manual.budget`), then reads the data and checks again with the real batch.
:func:`limit_threads` gives every command one BLAS thread and one torch thread, as ``make``
does through ``OMP_NUM_THREADS``: the same bytes from ``make report`` and a bare
``backprop-harness report``, and no oversubscription on a shared machine.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from manual import budget


def _size(text: str) -> int:
    try:
        return budget.parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_budget_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-memory", type=_size, default=budget.DEFAULT_BUDGET, metavar="SIZE",
                        help=f"refuse a spec estimated to need more than this (default "
                             f"{budget.DEFAULT_BUDGET // 2**30}GiB; e.g. 16GiB)")


def load(args: argparse.Namespace) -> tuple[Any, Any]:
    """The spec and data named by ``args.spec`` and ``args.data``, size-checked."""
    import manual

    limit = getattr(args, "max_memory", budget.DEFAULT_BUDGET)
    spec = manual.load_spec(args.spec)
    budget.check(spec, 1, limit)
    data = manual.load_data(args.data, spec)
    budget.check(spec, len(data.x), limit)
    return spec, data


def limit_threads(torch: bool = True) -> None:
    """One BLAS thread, and one torch thread when torch is used (importing it if asked).

    threadpoolctl limits the libraries loaded so far, so numpy (and torch) come first.
    """
    import numpy  # noqa: F401 - loads the BLAS that threadpoolctl then limits
    from threadpoolctl import threadpool_limits

    if torch or "torch" in sys.modules:
        import torch as torch_module

        torch_module.set_num_threads(1)
    threadpool_limits(limits=1)
