"""Shared by the benchmarks: two steps timed alternately, medians compared; the machine line."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

from threadpoolctl import threadpool_info

Step = Callable[[], object]


def paired_medians(first: Step, second: Step, budget: float = 1.0, min_runs: int = 7,
                   max_runs: int = 2000) -> tuple[float, float]:
    """Median seconds of two steps timed alternately (after one warm-up each), so that drift
    in the machine's load affects both alike: at least ``min_runs`` pairs, then until
    ``budget`` seconds have passed or ``max_runs`` pairs have run."""
    first(), second()
    times: tuple[list[float], list[float]] = ([], [])
    start = time.perf_counter()
    while len(times[0]) < min_runs or time.perf_counter() - start < budget:
        for step, out in ((first, times[0]), (second, times[1])):
            t0 = time.perf_counter()
            step()
            out.append(time.perf_counter() - t0)
        if len(times[0]) >= max_runs:
            break
    return statistics.median(times[0]), statistics.median(times[1])


def machine_line() -> str:
    """What a quoted figure depends on: the BLAS libraries threadpoolctl sees (kernel,
    threads) and the OpenBLAS variables that slow numpy's kernels where they are set."""
    blas = [(i["internal_api"], i.get("architecture"), i["num_threads"])
            for i in threadpool_info()]
    variables = ", ".join(f"{k}={os.environ.get(k, 'unset')}"
                          for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"))
    return f"numpy BLAS {blas}; {variables}"
