"""Fuzz campaign scaling: cases per second in-process, on 2 local workers, on 2-worker Dask.

One campaign (``--examples``, ``--seed``, ``--shards``; the default is the issue's
``fuzz --examples 2000 --seed 3``) run three ways through
:func:`reference.fuzz_shards.run_sharded`:

1. ``--workers 1``: the shards one after another in this process;
2. ``--workers 2``: a spawn-context process pool of two;
3. ``--scheduler``: a ``distributed.LocalCluster`` of two single-threaded worker processes
   on the loopback interface (started before the timing, like a cluster that is already up).

Each figure is wall time from the call to the merged record, so the two pools include
starting their processes (each imports numpy, torch and Hypothesis: about 3-4 s of CPU on
this machine) and the Dask one its client connection and task shipping. The script checks that
the three merged records are equal apart from their wall time.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_fuzz_scaling.py [--examples N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from reference.fuzz import CampaignRecord
from reference.fuzz_shards import DEFAULT_SHARDS, limit_worker_threads, run_sharded


def _timeless(record: CampaignRecord) -> dict[str, object]:
    data = json.loads(record.to_json())
    del data["elapsed_seconds"]
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--shards", type=int, default=DEFAULT_SHARDS)
    args = parser.parse_args()
    limit_worker_threads()

    from distributed import LocalCluster

    runs: dict[str, tuple[float, CampaignRecord]] = {}
    for label, workers in (("1 worker (in-process)", 1), ("2 local workers", 2)):
        start = time.perf_counter()
        record = run_sharded(args.examples, args.seed, shards=args.shards, workers=workers)
        runs[label] = (time.perf_counter() - start, record)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", silence_logs=40) as cluster:
        start = time.perf_counter()
        record = run_sharded(args.examples, args.seed, shards=args.shards,
                             scheduler=cluster.scheduler_address)
        runs["2-worker Dask LocalCluster"] = (time.perf_counter() - start, record)

    base_seconds, base = runs["1 worker (in-process)"]
    print(f"campaign: {args.examples} examples, seed {args.seed}, {args.shards} shards; "
          f"{os.cpu_count()} cores; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')!r}, "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')!r}")
    for label, (seconds, record) in runs.items():
        same = "same record" if _timeless(record) == _timeless(base) else "RECORD DIFFERS"
        print(f"{label:28s} {record.cases:6d} cases in {seconds:6.1f} s = "
              f"{record.cases / seconds:6.1f} cases/s  ({base_seconds / seconds:.2f}x; {same})")


if __name__ == "__main__":
    main()
