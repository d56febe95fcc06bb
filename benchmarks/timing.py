"""Timing shared by the benchmarks: two steps timed alternately, medians compared."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

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
