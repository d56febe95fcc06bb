"""Sharded fuzz campaigns: the same merged record in-process, on local workers and on Dask."""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from reference.fuzz import shards as fuzz_shards
from reference.fuzz.campaign import CampaignFailure, CampaignRecord, OpError, run_campaign
from reference.fuzz.shards import Shard, merge, plan, run_sharded
from reference.zoo import core as zoo
from reports.cli import main


def _timeless(record: CampaignRecord) -> dict[str, Any]:
    """The record as JSON data without its wall time, the one field that may differ."""
    data = json.loads(record.to_json())
    del data["elapsed_seconds"]
    return data


@pytest.fixture(scope="module")
def in_process() -> CampaignRecord:
    return run_sharded(24, seed=3, shards=4, workers=1)


def test_plan_splits_examples_evenly_with_distinct_seeds() -> None:
    shards = plan(10, seed=5, count=4)
    assert [s.examples for s in shards] == [3, 3, 2, 2]
    assert [s.index for s in shards] == [0, 1, 2, 3]
    assert len({s.seed for s in shards}) == 4
    assert shards == plan(10, seed=5, count=4)  # a pure function of its arguments
    assert {s.seed for s in shards}.isdisjoint(s.seed for s in plan(10, seed=6, count=4))
    assert len(plan(3, seed=5, count=8)) == 3  # never an empty shard
    assert plan(7, seed=5, count=1) == [Shard(0, 1, 7, 5)]


def test_one_shard_is_the_unsharded_campaign() -> None:
    sharded, plain = run_sharded(8, seed=2, shards=1), run_campaign(8, seed=2)
    assert sharded.shards == plain.shards == 1
    assert _timeless(sharded) == _timeless(plain)


def test_merge_sums_counts_and_takes_the_largest_errors() -> None:
    a = CampaignRecord(examples=3, seed=11, cases=3, ops={"relu": 2, "mse": 3},
                       dtypes={"float32": 3}, kink_excused=1, rounding_excused=1,
                       rounding_examples=["r1"],
                       largest_error={"relu": {"float32": OpError(2, 1e-7, 0.5)}})
    b = CampaignRecord(examples=2, seed=12, cases=2, ops={"tanh": 1, "mse": 2},
                       dtypes={"float64": 1, "float32": 1}, rounding_excused=2,
                       rounding_examples=["r2", "r3"],
                       largest_error={"relu": {"float32": OpError(1, 3e-7, 0.25)},
                                      "tanh": {"float64": OpError(1, 1e-16, 0.01)}})
    out = merge([a, b], examples=5, seed=1, shards=2, elapsed_seconds=1.23456)
    assert (out.examples, out.seed, out.shards, out.cases) == (5, 1, 2, 5)
    assert out.ops == {"mse": 5, "relu": 2, "tanh": 1}
    assert out.dtypes == {"float32": 4, "float64": 1}
    assert (out.kink_excused, out.rounding_excused) == (1, 3)
    assert out.rounding_examples == ["r1", "r2", "r3"]
    assert out.largest_error["relu"]["float32"] == OpError(3, 3e-7, 0.5)
    assert out.largest_error["tanh"]["float64"] == OpError(1, 1e-16, 0.01)
    assert "relu" not in out.uncovered and "sigmoid" in out.uncovered
    assert out.passed and not out.stopped and out.elapsed_seconds == 1.235


def test_in_process_shards_cover_the_campaign(in_process: CampaignRecord) -> None:
    assert in_process.passed and in_process.cases == 24 and in_process.shards == 4
    assert sum(in_process.dtypes.values()) == sum(in_process.protocols.values()) == 24
    assert not in_process.stopped


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_two_local_workers_give_the_in_process_record(in_process: CampaignRecord, method: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fuzz_shards, "start_method", lambda: method)
    pooled = run_sharded(24, seed=3, shards=4, workers=2)
    assert _timeless(pooled) == _timeless(in_process)
    assert not multiprocessing.active_children()


def test_workers_are_forked_only_from_a_single_threaded_process() -> None:
    # A fresh process with one BLAS/OpenMP thread has no other thread: it forks. (This
    # process may not be alone: pytest-xdist's worker has threads of its own.)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    fresh = subprocess.run([sys.executable, "-c", "from reference.fuzz.shards import "
                            "start_method; print(start_method())"], env=env, check=True,
                           capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert fresh.stdout.strip() == "fork"
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert fuzz_shards.start_method() == "spawn"
    finally:
        release.set()
        other.join()


def test_fuzz_command_records_do_not_depend_on_workers(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}.json"
        argv = ["fuzz", "--examples", "12", "--seed", "3", "--shards", "3", "--workers",
                workers, "--json", "--out", str(out)]
        assert main(argv) == 0
        printed = json.loads(capsys.readouterr().out)
        del printed["elapsed_seconds"]
        records.append(printed)
    assert records[0] == records[1]
    assert records[0]["cases"] == 12 and records[0]["shards"] == 3


@pytest.mark.parametrize("argv", [["--shards", "0"], ["--workers", "0"],
                                  ["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]],
                         ids=["shards", "workers", "both"])
def test_fuzz_command_rejects_bad_shard_options(argv: list[str], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fuzz", *argv, "--out", str(tmp_path / "c.json")]) == 2
    assert "error:" in capsys.readouterr().err


def test_the_first_failing_shard_ends_the_campaign(tmp_path: Path) -> None:
    """Shards run in-process see the mutant; shrinking makes the failure minimal."""
    with zoo.ZOO["tanh_one_minus_y"].inject():
        record = run_sharded(60, seed=0, shards=3, failure_root=tmp_path)
    assert not record.passed and len(record.failures) == 1
    assert record.cases < 60 and not record.stopped


class _Scripted:
    """A pool whose shards finish in a chosen order with chosen records (no processes)."""

    order: ClassVar[list[int]] = []
    failing: ClassVar[set[int]] = set()
    interrupt_after: ClassVar[int | None] = None
    cancelled: ClassVar[list[int]] = []
    closed: ClassVar[list[bool]] = []

    def __init__(self, workers: int) -> None:
        self.futures: dict[Any, int] = {}

    def submit(self, shard: Shard, root: str | None, deadline: float | None) -> Any:
        future: concurrent.futures.Future[CampaignRecord] = concurrent.futures.Future()
        self.futures[future] = shard.index
        record = CampaignRecord(examples=shard.examples, seed=shard.seed, cases=shard.examples,
                                ops={"relu": shard.examples})
        if shard.index in self.failing:
            record.passed = False
            record.failures = [CampaignFailure({}, "single", f"shard {shard.index}", 1, "", "")]
        future.set_result(record)
        return future

    def as_completed(self, futures: list[Any]) -> Iterator[Any]:
        by_index = {self.futures[f]: f for f in futures}
        for n, index in enumerate(self.order):
            if self.interrupt_after is not None and n == self.interrupt_after:
                raise KeyboardInterrupt
            yield by_index[index]

    def cancel(self, futures: list[Any]) -> None:
        self.cancelled.extend(sorted(self.futures[f] for f in futures))

    def close(self, abandon: bool) -> None:
        self.closed.append(abandon)


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> type[_Scripted]:
    monkeypatch.setattr(fuzz_shards, "_LocalPool", _Scripted)
    _Scripted.order, _Scripted.failing, _Scripted.interrupt_after = [3, 1, 2, 0], set(), None
    _Scripted.cancelled, _Scripted.closed = [], []
    return _Scripted


def test_finishing_order_does_not_change_the_merge(scripted: type[_Scripted]) -> None:
    first = run_sharded(10, seed=4, shards=4, workers=2)
    scripted.order = [0, 1, 2, 3]
    second = run_sharded(10, seed=4, shards=4, workers=2)
    assert _timeless(first) == _timeless(second)
    assert first.cases == 10 and scripted.closed == [False, False]


def test_a_failure_keeps_the_shards_before_it_and_cancels_the_rest(
        scripted: type[_Scripted]) -> None:
    scripted.failing = {1, 3}
    record = run_sharded(8, seed=4, shards=4, workers=2)  # shard 3 fails first, then 1
    assert [f.first_divergence for f in record.failures] == ["shard 1"]
    assert record.cases == 4 and not record.passed  # shards 0 and 1, two cases each
    assert scripted.cancelled == [2, 3]  # once shard 1 failed (shard 3 was last anyway)
    assert scripted.closed == [True]


def test_ctrl_c_keeps_the_finished_shards(scripted: type[_Scripted]) -> None:
    scripted.interrupt_after = 2  # shards 3 and 1 have finished
    record = run_sharded(8, seed=4, shards=4, workers=2)
    assert record.cases == 4 and record.passed
    assert record.stopped == "interrupted after 4 of 8 cases"
    assert scripted.closed == [True]


def test_ctrl_c_stops_the_real_workers() -> None:
    def interrupt(_: int) -> None:
        raise KeyboardInterrupt

    record = run_sharded(40, seed=1, shards=4, workers=2, progress=interrupt)
    assert record.stopped.startswith("interrupted after ")
    assert 10 <= record.cases < 40 and record.cases % 10 == 0  # whole shards only
    assert not multiprocessing.active_children()


def test_ctrl_c_in_process_keeps_the_cases_run_so_far() -> None:
    seen = []

    def count(n: int) -> None:
        seen.append(n)
        if len(seen) == 15:
            raise KeyboardInterrupt

    record = run_sharded(40, seed=1, shards=4, progress=count)
    assert record.cases == 15 and record.stopped == "interrupted after 15 of 40 cases"


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[str]:
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                       silence_logs=40)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def test_dask_cluster_gives_the_in_process_record(dask_cluster: str,
                                                  in_process: CampaignRecord) -> None:
    on_dask = run_sharded(24, seed=3, shards=4, scheduler=dask_cluster)
    assert _timeless(on_dask) == _timeless(in_process)


def test_unreachable_scheduler_is_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fuzz_shards._DaskPool, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(ValueError, match="cannot reach a Dask scheduler"):
        fuzz_shards._DaskPool("tcp://127.0.0.1:1")



def test_a_long_campaign_tops_up_the_ops_it_never_drew(monkeypatch: pytest.MonkeyPatch) -> None:
    # 12 cases leave ops undrawn; judged as a long campaign, each gets focused cases.
    monkeypatch.setattr(fuzz_shards, "COVERAGE_MIN_CASES", 13)  # not long: no top-up
    bare = run_sharded(12, seed=5, shards=2, workers=1)
    assert not bare.topped_up and bare.cases == 12
    missing = sorted(set(bare.uncovered))
    assert missing, "the short campaign should leave ops undrawn"
    monkeypatch.setattr(fuzz_shards, "COVERAGE_MIN_CASES", 10)
    topped = run_sharded(12, seed=5, shards=2, workers=1)
    assert topped.passed and topped.topped_up == missing and topped.uncovered == []
    assert topped.cases == 12 + fuzz_shards.TOP_UP_CASES * len(missing)
    assert all(topped.ops[op] >= 1 for op in missing)
    pooled = run_sharded(12, seed=5, shards=2, workers=2)
    assert _timeless(pooled) == _timeless(topped)
