"""Fuzz campaign scaling: cases per second in-process, on 2 local workers, on 2-worker Dask.

One campaign (``--examples``, ``--seed``, ``--shards``; the default is the issue's
``fuzz --examples 2000 --seed 3``) run three ways through
:func:`reference.fuzz.shards.run_sharded`:

1. ``--workers 1``: the shards one after another in this process;
2. ``--workers 2``: a process pool of two (forked: this script has one thread);
3. ``--scheduler``: a ``distributed.LocalCluster`` of two single-threaded worker processes
   on the loopback interface (started before the timing, like a cluster that is already up).

Each figure is wall time from the call to the merged record, so the two pools include
starting their processes (a Dask worker imports numpy, torch and Hypothesis when it starts,
before the timing; a spawned local worker would spend 3-4 s of CPU on that inside it) and the
Dask one its client connection and task shipping. The script checks that
the three merged records are equal apart from their wall time.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_fuzz_scaling.py [--examples N]
[--repeats R]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

from timing import machine_line

from reference.fuzz.campaign import CampaignRecord
from reference.fuzz.shards import DEFAULT_SHARDS, limit_worker_threads, run_sharded, start_method


def _timeless(record: CampaignRecord) -> dict[str, object]:
    data = json.loads(record.to_json())
    del data["elapsed_seconds"]
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--shards", type=int, default=DEFAULT_SHARDS)
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of the three ways, interleaved; medians are reported")
    args = parser.parse_args()
    limit_worker_threads()

    from distributed import LocalCluster

    labels = ["1 worker (in-process)", "2 local workers", "2-worker Dask LocalCluster"]
    seconds: dict[str, list[float]] = {label: [] for label in labels}
    records: dict[str, CampaignRecord] = {}
    methods: set[str] = set()

    def timed(label: str, **how: Any) -> None:
        # The threads of the pool before may take a moment to end.
        settle = time.perf_counter() + 10
        while "workers" in how and start_method() != "fork" and time.perf_counter() < settle:
            time.sleep(0.05)
        if "workers" in how and how["workers"] > 1:
            methods.add(start_method())
        start = time.perf_counter()
        records[label] = run_sharded(args.examples, args.seed, shards=args.shards, **how)
        seconds[label].append(time.perf_counter() - start)

    # Rounds, interleaved: this machine's speed drifts by tens of percent over a minute (one
    # in-process run took 16 s, another 27 s), so one run of each gives no ratio. The Dask
    # rounds come last: a client leaves threads in this process, and the local pool forks
    # only from a single-threaded one (else it spawns, and each worker pays the imports).
    for _ in range(args.repeats):
        timed(labels[0], workers=1)
        timed(labels[1], workers=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", silence_logs=40) as cluster:
        for _ in range(args.repeats):
            timed(labels[2], scheduler=cluster.scheduler_address)

    base = statistics.median(seconds[labels[0]])
    print(f"campaign: {args.examples} examples, seed {args.seed}, {args.shards} shards; "
          f"{os.cpu_count()} cores; {machine_line()}; median of {args.repeats}; "
          f"local pool started by {' and '.join(sorted(methods))}")
    for label in labels:
        median = statistics.median(seconds[label])
        same = ("same record" if _timeless(records[label]) == _timeless(records[labels[0]])
                else "RECORD DIFFERS")
        runs = ", ".join(f"{t:.1f}" for t in seconds[label])
        print(f"{label:28s} {records[label].cases:6d} cases in {median:6.1f} s = "
              f"{records[label].cases / median:6.1f} cases/s  ({base / median:.2f}x; {same}; "
              f"runs {runs} s)")


if __name__ == "__main__":
    main()
