"""A fuzz campaign split into deterministic shards, run in-process, on local cores or on Dask.

A campaign of ``examples`` cases under ``seed`` with ``count`` shards is a fixed list of
:class:`Shard`: shard ``k`` runs ``examples // count`` cases (the first ``examples % count``
shards one more) with :func:`reference.fuzz.campaign.run_campaign` under its own integer seed, drawn
from ``manual.random.stream(seed, "experiment", f"fuzz shard {k}")`` (one shard uses ``seed``
itself, so ``count=1`` is exactly the unsharded campaign). Each shard is a separate
Hypothesis run, seeded, with no example database, so it draws the same cases wherever and
whenever it runs; :func:`merge` adds the shard records up in shard order. The merged record
for a given ``(examples, seed, count)`` is therefore the same for any number of workers and
any finishing order; only ``elapsed_seconds`` (wall time) differs.

The first failure stops the campaign as it does unsharded: when shard ``f`` fails, the
shards after ``f`` are cancelled and the record merges shards ``0..f`` only (so it does not
depend on which later shards happened to finish first). On Ctrl-C the workers are stopped
and the record merges the shards that had finished, with ``stopped`` saying so; the cases of
the shards still running are lost (more shards lose less).

The local pool (:class:`concurrent.futures.ProcessPoolExecutor`, fork or spawn) and a Dask
cluster (``distributed.Client``) go through one loop, :func:`_run_on_pool`: both take
``submit`` and give futures that an ``as_completed`` yields as they finish.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis.errors import HypothesisDeprecationWarning

from manual.random import stream
from manual.registry import ACTIVATIONS, LOSSES
from reference.fuzz.campaign import COVERAGE_MIN_CASES, CampaignRecord, OpError, run_campaign

DEFAULT_SHARDS = 8
TOP_UP_CASES = 8  # focused cases for each op a long campaign never drew (see top_up)


@dataclass(frozen=True)
class Shard:
    """One shard of a campaign: ``examples`` cases of Hypothesis under ``seed``."""

    index: int
    count: int
    examples: int
    seed: int


def plan(examples: int, seed: int, count: int = DEFAULT_SHARDS) -> list[Shard]:
    """The shards of a campaign: at most ``examples`` of them, sizes differing by at most one."""
    if examples < 1 or count < 1:
        raise ValueError(f"shards: examples and count must be positive, got {examples} "
                         f"and {count}")
    count = min(count, examples)
    base, extra = divmod(examples, count)
    return [Shard(k, count, base + (k < extra), shard_seed(seed, k, count))
            for k in range(count)]


def shard_seed(seed: int, index: int, count: int) -> int:
    """The campaign seed for a single shard, else a 63-bit draw of shard ``index``'s stream."""
    if count == 1:
        return seed
    return int(stream(seed, "experiment", f"fuzz shard {index}").integers(2**63))


def run_shard(shard: Shard, failure_root: str | None = None,
              deadline: float | None = None,
              progress: Callable[[int], Any] | None = None) -> CampaignRecord:
    """Run one shard; ``deadline`` is a ``time.time()`` instant shared by all the shards."""
    max_seconds = None
    if deadline is not None:
        max_seconds = deadline - time.time()
        if max_seconds <= 0:
            record = CampaignRecord(examples=shard.examples, seed=shard.seed)
            record.stopped = f"time limit after 0 of {shard.examples} cases"
            return record
    return run_campaign(shard.examples, shard.seed, progress=progress,
                        failure_root=None if failure_root is None else Path(failure_root),
                        max_seconds=max_seconds)


def limit_worker_threads() -> None:
    """One BLAS and one torch thread per worker process (as ``reports.inputs.limit_threads``)."""
    import numpy  # noqa: F401 - loads the BLAS that threadpoolctl then limits
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(limits=1)


def _start_local_worker() -> None:
    # The parent handles Ctrl-C and stops the workers; a worker interrupted by the terminal's
    # SIGINT on its own would die mid-task and break the pool before the parent could merge.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_worker_threads()


def _run_shard_on_dask(shard: Shard, failure_root: str | None,
                       deadline: float | None) -> CampaignRecord:
    limit_worker_threads()  # a Dask worker has no initializer of ours; this is idempotent
    with warnings.catch_warnings():
        # Hypothesis warns when the global `random` state moves during a draw. In a Dask
        # worker, Dask's own threads run beside the task and move it; the strategies never
        # do (the same shards in-process or in a local pool give no such warning).
        warnings.filterwarnings("ignore", message="Do not use the `random` module inside",
                                category=HypothesisDeprecationWarning)
        return run_shard(shard, failure_root, deadline)


# ---- merging -----------------------------------------------------------------------------


def merge(records: Iterable[CampaignRecord], examples: int, seed: int, shards: int,
          elapsed_seconds: float = 0.0, stopped: str = "") -> CampaignRecord:
    """Add shard records up, in the order given (shard order): counts summed, maxima taken."""
    out = CampaignRecord(examples=examples, seed=seed, shards=shards,
                         elapsed_seconds=round(elapsed_seconds, 3))
    reasons: list[str] = []
    for record in records:
        out.cases += record.cases
        out.passed = out.passed and record.passed
        out.kink_excused += record.kink_excused
        out.rounding_excused += record.rounding_excused
        out.rounding_examples = (out.rounding_examples + record.rounding_examples)[:5]
        for total, part in ((out.ops, record.ops), (out.dtypes, record.dtypes),
                            (out.protocols, record.protocols), (out.depths, record.depths),
                            (out.batches, record.batches), (out.edges, record.edges)):
            for key, n in part.items():
                total[key] = total.get(key, 0) + n
        for op, by_dtype in record.largest_error.items():
            for dtype, error in by_dtype.items():
                entry = out.largest_error.setdefault(op, {}).setdefault(dtype, OpError())
                entry.cases += error.cases
                entry.max_rel_error = max(entry.max_rel_error, error.max_rel_error)
                entry.max_tolerance_ratio = max(entry.max_tolerance_ratio,
                                                error.max_tolerance_ratio)
        out.failures += record.failures
        if record.stopped:
            reasons.append(record.stopped.split(" after ")[0])
    for counter in ("ops", "dtypes", "protocols", "depths", "batches", "edges"):
        setattr(out, counter, dict(sorted(getattr(out, counter).items())))
    out.largest_error = {op: dict(sorted(by.items())) for op, by in
                         sorted(out.largest_error.items())}
    out.uncovered = sorted((set(ACTIVATIONS) | set(LOSSES)) - set(out.ops))
    reason = stopped or (reasons[0] if reasons else "")
    if reason:
        out.stopped = f"{reason} after {out.cases} of {examples} cases"
    return out


# ---- running -----------------------------------------------------------------------------


def run_sharded(
    examples: int,
    seed: int = 0,
    *,
    shards: int = DEFAULT_SHARDS,
    workers: int = 1,
    scheduler: str | None = None,
    failure_root: Path | None = None,
    max_seconds: float | None = None,
    progress: Callable[[int], Any] | None = None,
) -> CampaignRecord:
    """Run the campaign's shards and merge them in shard order (see the module docstring).

    ``workers=1`` without a scheduler runs the shards one after another in this process
    (``progress`` then ticks per case, else per finished shard). ``scheduler`` is the
    address of a Dask scheduler (``tcp://host:8786``); ``workers`` is then ignored.
    """
    if workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers}")
    planned = plan(examples, seed, shards)
    root = None if failure_root is None else str(failure_root.resolve())
    deadline = None if max_seconds is None else time.time() + max_seconds
    start = time.perf_counter()
    done: dict[int, CampaignRecord] = {}
    stopped = ""
    try:
        if scheduler is not None:
            _run_on_dask(scheduler, planned, root, deadline, done, progress)
        elif workers == 1:
            _run_here(planned, root, deadline, done, progress)
        else:
            _run_locally(workers, planned, root, deadline, done, progress)
    except KeyboardInterrupt:
        stopped = "interrupted"
    failing = [k for k, record in done.items() if not record.passed]
    last = min(failing) if failing else len(planned) - 1
    kept = [done[k] for k in sorted(done) if k <= last]
    merged = merge(kept, examples, seed, len(planned), time.perf_counter() - start, stopped)
    return top_up(merged, kept, root, start)


def top_up(merged: CampaignRecord, kept: list[CampaignRecord], root: str | None,
           start: float) -> CampaignRecord:
    """A finished, passing campaign of at least ``COVERAGE_MIN_CASES`` cases that never drew
    some registry op gets :data:`TOP_UP_CASES` cases focused on each (``fuzz_cases(include=
    [op])``), run here after the shards and merged after them; ``topped_up`` names the ops.

    Hypothesis draws in clumps, so a rare op can go undrawn by bad luck (measured: about one
    campaign seed in 50 at 500 cases, always ``nll``); focused cases make the coverage a
    property of the campaign, not of its seed. The top-up's seeds come from the campaign's,
    so the record still depends on ``examples``, ``seed`` and ``shards`` alone. An op that
    the focused draws cannot reach stays uncovered, and the coverage check names it."""
    from reference.fuzz.strategies import fuzz_cases

    if merged.stopped or not merged.passed or merged.cases < COVERAGE_MIN_CASES:
        return merged
    missing = sorted((set(ACTIVATIONS) | set(LOSSES)) - set(merged.ops))
    extra = []
    for op in missing:
        op_seed = int(stream(merged.seed, "experiment", f"fuzz top-up {op}").integers(2**32))
        record = run_campaign(TOP_UP_CASES, op_seed, strategy=fuzz_cases(include=[op]),
                              failure_root=None if root is None else Path(root))
        extra.append(record)
        if not record.passed:
            break
    if not extra:
        return merged
    out = merge([*kept, *extra], merged.examples, merged.seed, merged.shards,
                time.perf_counter() - start)
    out.topped_up = missing[:len(extra)]
    return out


def _run_here(planned: list[Shard], root: str | None, deadline: float | None,
              done: dict[int, CampaignRecord], progress: Callable[[int], Any] | None) -> None:
    for shard in planned:
        record = run_shard(shard, root, deadline, progress)
        done[shard.index] = record
        if not record.passed or record.stopped:
            if record.stopped.startswith("interrupted"):
                raise KeyboardInterrupt  # run_campaign absorbed it; the merge says why
            return


def start_method() -> str:
    """``fork`` where this process has one thread, else ``spawn``.

    A spawned worker imports numpy, torch and Hypothesis again (3-4 s of CPU each, a quarter
    of a 2000-case campaign on two workers); a forked one starts with them loaded. Forking is
    only safe without other threads (a lock one of them holds stays locked in the child), so
    the OS's count is asked, which also sees BLAS and OpenMP pools that ``threading`` does
    not (they exist once numpy or torch has run with more than one thread)."""
    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:  # not Linux: no count, no fork
        return "spawn"
    return "fork" if threads == 1 else "spawn"


class _LocalPool:
    """A process pool (see :func:`start_method`) whose workers ignore SIGINT and run one
    thread each."""

    def __init__(self, workers: int) -> None:
        self.others = {p.pid for p in multiprocessing.active_children()}  # not this pool's
        self.executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context(start_method()),
            initializer=_start_local_worker)

    def submit(self, shard: Shard, root: str | None, deadline: float | None) -> Any:
        return self.executor.submit(run_shard, shard, root, deadline)

    @staticmethod
    def as_completed(futures: list[Any]) -> Iterator[Any]:
        return concurrent.futures.as_completed(futures)

    def cancel(self, futures: list[Any]) -> None:
        for future in futures:
            future.cancel()

    def close(self, abandon: bool) -> None:
        if abandon:
            # Running shards ignore SIGINT and cannot be cancelled: end their processes.
            # (Python 3.14 has ProcessPoolExecutor.terminate_workers for this.)
            terminate = getattr(self.executor, "terminate_workers", None)
            if terminate is not None:
                terminate()
                return
            # End this pool's worker processes until none is left: the executor may still
            # start one for a task queued before the cancel.
            self.executor.shutdown(wait=False, cancel_futures=True)
            while mine := [p for p in multiprocessing.active_children()
                           if p.pid not in self.others]:
                for process in mine:
                    process.terminate()
                for process in mine:
                    process.join()
            self.executor.shutdown(wait=True)
            return
        self.executor.shutdown(wait=True, cancel_futures=True)


class _DaskPool:
    """A ``distributed.Client``: the same submit / as_completed / cancel as the local pool."""

    CONNECT_TIMEOUT = "30s"

    def __init__(self, address: str) -> None:
        from distributed import Client

        try:
            self.client = Client(address, set_as_default=False,
                                 timeout=self.CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as error:
            raise ValueError(f"--scheduler: cannot reach a Dask scheduler at {address} "
                             f"({error})") from None

    def submit(self, shard: Shard, root: str | None, deadline: float | None) -> Any:
        key = f"fuzz-shard-{shard.index}-of-{shard.count}-{uuid.uuid4().hex[:8]}"
        return self.client.submit(_run_shard_on_dask, shard, root, deadline, key=key)

    def as_completed(self, futures: list[Any]) -> Iterator[Any]:
        from distributed import as_completed

        # Its own client's loop, not the process's default client (set_as_default=False).
        return iter(as_completed(futures, loop=self.client.loop))

    def cancel(self, futures: list[Any]) -> None:
        if futures:
            self.client.cancel(futures)

    def close(self, abandon: bool) -> None:
        self.client.close()  # the scheduler cancels what this client still had running


def _run_locally(workers: int, planned: list[Shard], root: str | None, deadline: float | None,
                 done: dict[int, CampaignRecord],
                 progress: Callable[[int], Any] | None) -> None:
    _run_on_pool(_LocalPool(min(workers, len(planned))), planned, root, deadline, done, progress)


def _run_on_dask(address: str, planned: list[Shard], root: str | None, deadline: float | None,
                 done: dict[int, CampaignRecord],
                 progress: Callable[[int], Any] | None) -> None:
    _run_on_pool(_DaskPool(address), planned, root, deadline, done, progress)


def _run_on_pool(pool: _LocalPool | _DaskPool, planned: list[Shard], root: str | None,
                 deadline: float | None, done: dict[int, CampaignRecord],
                 progress: Callable[[int], Any] | None) -> None:
    """Submit every shard, collect them as they finish, cancel those after a failure."""
    futures = {pool.submit(shard, root, deadline): shard.index for shard in planned}
    last = len(planned) - 1  # the highest shard still wanted
    abandon = True  # unless every shard finished, stop the workers rather than wait
    try:
        for future in pool.as_completed(list(futures)):
            index = futures[future]
            if index > last or future.cancelled():
                continue
            record: CampaignRecord = future.result()
            done[index] = record
            if progress is not None:
                progress(record.cases)
            if not record.passed and index < last:
                last = index
                pool.cancel([f for f, k in futures.items() if k > last])
            if all(k in done for k in range(last + 1)):
                break
        abandon = len(done) < len(planned)
    finally:
        pool.close(abandon)
