"""Differential fuzzing of random architectures: one case, its failure report, a campaign.

:func:`run_case` runs a :class:`~reference.fuzz.strategies.FuzzCase` through its conformance
protocol and says whether it failed. A float32 failure whose only cause is a kink
straddle (the two engines' pre-activations land on opposite sides of a kink because
of rounding, so the derivative jumps between them) is *excused*, never reported: see
:func:`kink_straddle`. :func:`failure_report` writes the case to files and returns the
message a test shows (spec as JSON, first divergence, the reproduce command).
:func:`run_campaign` drives Hypothesis outside pytest and returns a
:class:`CampaignRecord`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import manual
from manual.data import Data
from manual.files import atomic_write
from manual.jsonable import decode
from manual.registry import ACTIVATIONS, LOSSES
from manual.spec import DTYPES, Spec
from reference.conformance.protocols import run_protocol
from reference.core.compare import compare_network, compare_op
from reference.core.records import ComparisonRecord, dumps
from reference.core.rounding import rounding_excuse
from reference.fuzz.edges import BATCH_CLASSES, EDGE_CLASSES, batch_classes
from reference.fuzz.ops import OpFuzzCase
from reference.fuzz.strategies import FuzzCase

DEFAULT_FAILURE_DIR = Path("out") / "fuzz-failures"
# Below this many cases a campaign's coverage is not judged. Hypothesis draws in clumps (each
# shard mutates its own earlier examples), so the rarest items come far below their expected
# count. Measured on the default 8 shards, drawn and not run (campaign seeds 100-149): at 500
# cases 1 seed of 50 missed an op (nll; the rarest op was otherwise drawn 1 to 30 times),
# every edge class was drawn at least 4 times and a large batch at least 8 times; at 800 cases
# 1 seed of 25 still missed nll; at 200 cases, 1 of 20 missed an op. So a sharded campaign
# of this size tops up the ops it never drew with focused cases (reference.fuzz.shards.top_up):
# an op still missing is out of the draws' reach, not bad luck.
COVERAGE_MIN_CASES = 500


@dataclass
class Outcome:
    """What one case produced; ``failed`` is a real failure (kink straddles are excused)."""

    case: FuzzCase
    record: ComparisonRecord | None
    error: str = ""
    kink: str = ""
    rounding: str = ""

    @property
    def failed(self) -> bool:
        if self.error:
            return True
        excused = self.kink or self.rounding
        return self.record is not None and not self.record.passed and not excused

    @property
    def where(self) -> str:
        if self.error:
            return f"manual engine raised {self.error}"
        return (self.record.first_divergence or "") if self.record else ""


def _straddles(m: np.ndarray, r: np.ndarray, kinks: Iterable[float]) -> bool:
    return any(bool(np.any(((m - k) * (r - k) <= 0) & (m != r))) for k in kinks)


def kink_straddle(spec: Spec, data: Data, record: ComparisonRecord) -> str:
    """Name the first layer whose input straddles a kink between the engines, or ``""``.

    Only when every forward tensor agrees within tolerance (so the inputs differ by
    rounding alone) can a straddle explain a gradient mismatch. ``record`` must keep
    values (``keep_values=True``). For a loss with a kink the variable is ``x - y``.
    """
    names = [(t, t.tensor_name) for t in record.tensors]
    forward = [(t, name) for t, name in names if name.stage == "forward"]
    if not all(t.passed for t, _ in forward):
        return ""
    values = {name.ref: (np.asarray(t.manual, dtype=np.float64),
                         np.asarray(t.reference, dtype=np.float64))
              for t, name in forward if name.ref != "loss"}
    for node in spec.nodes:
        op = ACTIVATIONS.get(node.type)
        if op is None or node.inputs[0] not in values:  # a graph input: both engines alike
            continue
        m, r = values[node.inputs[0]]
        if _straddles(m, r, op.domain.kinks(node.options)):
            return f"{node.name} ({node.type})"
    loss = LOSSES[spec.loss.type]
    kinks = loss.domain.kinks(spec.loss.options)
    if kinks and spec.output in values:
        m, r = values[spec.output]
        if m.shape == data.y.shape:
            m, r = m - data.y, r - data.y
        if _straddles(m, r, kinks):
            return f"loss ({spec.loss.type})"
    return ""


def run_case(case: FuzzCase) -> Outcome:
    """Run ``case`` through its protocol; a failure may be excused as a kink straddle or,
    in float32, as accumulated rounding within the measured bound of
    :mod:`reference.core.rounding`."""
    # log(0) in bce and exp overflow to inf are part of the ops' contract (PyTorch clamps
    # the same way); the comparison judges the values, so NumPy's warnings are noise here.
    with np.errstate(all="ignore"):
        try:
            record = run_protocol(case.protocol, case.spec, case.data)
        except Exception as error:  # any crash of an engine under test is a failure
            return Outcome(case, None, error=f"{type(error).__name__}: {error}")
        kink = rounding = ""
        if not record.passed:
            full = compare_network(case.spec, case.data, keep_values=True)
            kink = kink_straddle(case.spec, case.data, full)
            if not kink:
                rounding = rounding_excuse(case.spec, case.data, full, record)
    return Outcome(case, record, kink=kink, rounding=rounding)


def compare_op_case(case: OpFuzzCase) -> ComparisonRecord:
    """One op alone on the drawn input, target and upstream gradient, against PyTorch."""
    # Extreme draws may overflow inside an op's unused branch; the comparison judges.
    with np.errstate(all="ignore"):
        return compare_op(case.op, case.dtype, case.options, x=case.x, target=case.target,
                          dy=case.dy, keep_values=False)


def fails(case: FuzzCase) -> bool:
    """True when ``case`` fails for real (the condition :func:`hypothesis.find` minimises)."""
    return run_case(case).failed


def save_case(case: FuzzCase, directory: Path) -> dict[str, Path]:
    """Write ``spec.json``, ``data.json`` and ``case.json`` (spec, data, protocol)."""
    directory.mkdir(parents=True, exist_ok=True)
    data = {"x": case.data.x.tolist(), "y": case.data.y.tolist()}
    paths = {"spec": directory / "spec.json", "data": directory / "data.json",
             "case": directory / "case.json"}
    atomic_write(paths["spec"], case.spec.to_json(indent=2) + "\n")
    atomic_write(paths["data"], json.dumps(data) + "\n")
    case_json = {"spec": case.spec.to_dict(), "data": data, "protocol": case.protocol,
                 "edges": list(case.edges)}
    atomic_write(paths["case"], json.dumps(case_json) + "\n")
    return paths


def load_case(directory: str | Path) -> FuzzCase:
    """Read back a case written by :func:`save_case` (``DIR/case.json``)."""
    path = Path(directory) / "case.json"
    raw = manual.parse.load_json(path, "case")
    if not isinstance(raw, dict) or not {"spec", "data", "protocol"} <= set(raw):
        raise ValueError(f"case {path}: must be an object with spec, data and protocol")
    spec = manual.parse_spec(raw["spec"])
    data = manual.make_data(spec, raw["data"]["x"], raw["data"]["y"])
    return FuzzCase(spec, data, raw["protocol"], tuple(raw.get("edges", ())))


def reproduce_command(paths: dict[str, Path], protocol: str) -> str:
    """The command that replays a saved case."""
    if protocol == "single":
        return f"backprop-harness compare {paths['spec']} --data {paths['data']}"
    return f"backprop-harness fuzz --replay {paths['case'].parent}"


def case_directory(case: FuzzCase, root: Path | None = None) -> Path:
    """``root/<hash of the case>``: stable, so a replayed failure overwrites its own files."""
    digest = hashlib.sha1(case.spec.to_json().encode() + case.data.x.tobytes()
                          + case.data.y.tobytes() + case.protocol.encode()).hexdigest()[:12]
    return (root or DEFAULT_FAILURE_DIR) / digest


def failure_report(outcome: Outcome, root: Path | None = None) -> tuple[str, str]:
    """Save the case and return ``(message, reproduce command)``."""
    case = outcome.case
    paths = save_case(case, case_directory(case, root).resolve())
    command = reproduce_command(paths, case.protocol)
    edges = f", edges: {', '.join(case.edges)}" if case.edges else ""
    lines = [f"engines disagree (protocol {case.protocol}, {case.spec.dtype}, "
             f"{case.hidden_layers} hidden layers, batch {len(case.data.x)}{edges})",
             f"first divergence: {outcome.where}"]
    if outcome.record is not None:
        for t in outcome.record.failures[:6]:
            detail = t.problem or (f"max abs err {t.max_abs_error:.3g}, max rel err "
                                   f"{t.max_rel_error:.3g}, {t.tolerance_ratio:.3g} x tolerance")
            lines.append(f"  {t.name}: {detail}")
    lines += [f"spec: {case.spec.to_json()}", f"reproduce: {command}"]
    if case.protocol != "single":
        lines.append(f"one pass only: backprop-harness compare {paths['spec']} --data "
                     f"{paths['data']} (the failure needs the {case.protocol} protocol)")
    return "\n".join(lines), command


# ---- campaigns ---------------------------------------------------------------------------


@dataclass
class OpError:
    """The largest errors seen in one op's tensors (its layers' outputs, or the loss)."""

    cases: int = 0
    max_rel_error: float = 0.0
    max_tolerance_ratio: float = 0.0


@dataclass
class CampaignFailure:
    spec: dict[str, Any]
    protocol: str
    first_divergence: str
    hidden_layers: int
    reproduce: str
    message: str


@dataclass
class CampaignRecord:
    """A fuzz campaign: what it covered, the largest errors per op and dtype, its failures.

    ``cases`` counts the examples generated before any failure (shrinking not
    included); ``kink_excused`` counts failures explained by a kink straddle and
    ``rounding_excused`` float32 failures within the measured rounding bound
    (:mod:`reference.core.rounding`), with a few of the bounds in ``rounding_examples``.
    """

    examples: int
    seed: int
    cases: int = 0
    elapsed_seconds: float = 0.0
    passed: bool = True
    ops: dict[str, int] = field(default_factory=dict)
    dtypes: dict[str, int] = field(default_factory=dict)
    protocols: dict[str, int] = field(default_factory=dict)
    depths: dict[str, int] = field(default_factory=dict)
    batches: dict[str, int] = field(default_factory=dict)  # "1", ">1", "large" (>= 256)
    edges: dict[str, int] = field(default_factory=dict)  # reference.fuzz.edges
    uncovered: list[str] = field(default_factory=list)
    kink_excused: int = 0
    rounding_excused: int = 0
    rounding_examples: list[str] = field(default_factory=list)
    largest_error: dict[str, dict[str, OpError]] = field(default_factory=dict)
    failures: list[CampaignFailure] = field(default_factory=list)
    stopped: str = ""  # why the campaign ended before ``examples`` cases ('' if it did not)
    shards: int = 1  # how many shards were merged into it (reference.fuzz.shards)
    topped_up: list[str] = field(default_factory=list)  # ops given focused cases at the end

    def to_json(self, indent: int | None = 2) -> str:
        return dumps(self, indent)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CampaignRecord:
        decoded: CampaignRecord = decode(cls, raw)
        return decoded

    @classmethod
    def from_json(cls, text: str) -> CampaignRecord:
        return cls.from_dict(json.loads(text))

    def add(self, outcome: Outcome) -> None:
        """Count a passing (or excused) case: coverage and the largest errors per op."""
        case = outcome.case
        self.cases += 1
        self.kink_excused += bool(outcome.kink)
        if outcome.rounding:
            self.rounding_excused += 1
            if len(self.rounding_examples) < 5:
                self.rounding_examples.append(outcome.rounding)
        _bump(self.dtypes, case.spec.dtype)
        _bump(self.protocols, case.protocol)
        _bump(self.depths, str(case.hidden_layers))
        for name in batch_classes(len(case.data.x)):
            _bump(self.batches, name)
        for name in case.edges:
            _bump(self.edges, name)
        names = {layer.type for layer in case.spec.layers} | {case.spec.loss.type}
        for name in names:
            _bump(self.ops, name)
        if outcome.record is None:
            return
        by_op = _tensor_ops(case.spec)
        for t in outcome.record.tensors:
            tensor = t.tensor_name
            plain = tensor.step is None and tensor.check is None and not tensor.slot
            op = by_op.get((tensor.stage, tensor.node)) if plain else None
            if op is None:
                continue
            entry = self.largest_error.setdefault(op, {}).setdefault(case.spec.dtype, OpError())
            entry.cases += 1
            if math.isfinite(t.max_rel_error):
                entry.max_rel_error = max(entry.max_rel_error, t.max_rel_error)
            entry.max_tolerance_ratio = max(entry.max_tolerance_ratio, t.tolerance_ratio)


def _bump(counter: dict[str, int], key: str) -> None:
    counter[key] = counter.get(key, 0) + 1


def _tensor_ops(spec: Spec) -> dict[tuple[str, str], str]:
    """Which op each compared tensor, by (stage, node), belongs to: a chain layer's output or
    the gradient at it, or the loss (its value, and the gradient at the network's output)."""
    layers = {node.name: node.type for node in spec.nodes} if spec.chain else {}
    out = {(stage, name): kind for name, kind in layers.items()
           for stage in ("forward", "backward")}
    out |= {("forward", "loss"): spec.loss.type, ("backward", "output"): spec.loss.type}
    return out


@contextlib.contextmanager
def fixed_constants() -> Iterator[None]:
    """Draw without Hypothesis's *local constants* while inside.

    Hypothesis (6.131+) mixes into generation the literal constants of every project module
    loaded so far, so a campaign's cases changed with import order and with any edit to any
    module: ``make report`` and a bare ``backprop-harness report`` drew different cases.
    Here the seed and the strategies alone decide. (A private hook: when a Hypothesis
    release drops it, this does nothing and generation is as before.)
    """
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - a Hypothesis without the module
        yield
        return
    original = getattr(providers, "_get_local_constants", None)
    if original is None or not hasattr(providers, "Constants"):
        yield
        return
    empty = providers.Constants()
    # Hypothesis also caches the constants per choice type (CONSTANTS_CACHE) the first time
    # any test draws one: what an earlier draw cached in this process must not leak in.
    saved = getattr(providers, "CONSTANTS_CACHE", None)
    if saved is not None:
        providers.CONSTANTS_CACHE = type(saved)(1024)  # empty, the size Hypothesis uses
    providers._get_local_constants = lambda: empty
    try:
        yield
    finally:
        providers._get_local_constants = original
        if saved is not None:
            providers.CONSTANTS_CACHE = saved


class _Stopped(BaseException):
    """Ends a campaign early; a BaseException so that Hypothesis does not shrink it."""


def run_campaign(
    examples: int,
    seed: int = 0,
    *,
    progress: Callable[[int], Any] | None = None,
    failure_root: Path | None = None,
    strategy: Any = None,
    max_seconds: float | None = None,
) -> CampaignRecord:
    """Run ``examples`` random cases through both engines with Hypothesis, outside pytest.

    Generation is seeded (``seed``) and derandomised; the first real failure stops the
    campaign and is shrunk by Hypothesis to a minimal spec, which is recorded with the
    command that reproduces it. ``progress(n)`` is called after each generated case.
    The campaign stops early, keeping what it has counted, after ``max_seconds`` or on
    Ctrl-C; ``stopped`` then says why (a KeyboardInterrupt is re-raised by the caller's
    choice: here it is absorbed into the record).
    """
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis.errors import Flaky

    from reference.fuzz.strategies import fuzz_cases

    record = CampaignRecord(examples=examples, seed=seed)
    state: dict[str, Any] = {"failing": False, "last": None}

    # From Hypothesis's own defaults, not the profile loaded by the caller (pytest's ci
    # profile, HYPOTHESIS_PROFILE), so a shard draws the same cases in any process.
    @settings(settings.get_profile("default"), max_examples=examples, deadline=None,
              database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), print_blob=False,
              phases=[Phase.generate, Phase.shrink], report_multiple_bugs=False)
    @hypothesis_seed(seed)
    @given(strategy if strategy is not None else fuzz_cases())
    def campaign(case: FuzzCase) -> None:
        if deadline is not None and time.perf_counter() > deadline and not state["failing"]:
            raise _Stopped("time limit")
        outcome = run_case(case)
        if outcome.failed:
            state["failing"], state["last"] = True, outcome
            raise AssertionError(outcome.where)
        if not state["failing"]:
            record.add(outcome)
            if progress is not None:
                progress(1)

    start = time.perf_counter()
    deadline = None if max_seconds is None else start + max_seconds
    # The failure is recorded below; a flaky one (it passed when replayed) is recorded too.
    try:
        with fixed_constants(), contextlib.suppress(AssertionError, Flaky):
            campaign()
    except _Stopped as stop:
        record.stopped = f"{stop.args[0]} after {record.cases} of {examples} cases"
    except KeyboardInterrupt:
        record.stopped = f"interrupted after {record.cases} of {examples} cases"
    record.elapsed_seconds = round(time.perf_counter() - start, 3)
    record.uncovered = sorted((set(ACTIVATIONS) | set(LOSSES)) - set(record.ops))
    last: Outcome | None = state["last"]
    if last is not None:
        # Hypothesis replays the shrunk example last, so ``last`` is the minimal case.
        message, command = failure_report(last, failure_root)
        record.passed = False
        record.failures.append(CampaignFailure(
            spec=last.case.spec.to_dict(), protocol=last.case.protocol,
            first_divergence=last.where, hidden_layers=last.case.hidden_layers,
            reproduce=command, message=message))
    return record


def coverage_gaps(record: CampaignRecord, *, dtypes: tuple[str, ...] = DTYPES,
                  ops: Iterable[str] | None = None, batches: tuple[str, ...] = BATCH_CLASSES,
                  edges: tuple[str, ...] = EDGE_CLASSES) -> list[str]:
    """What ``record`` never drew: a dtype, a registry op (activations and losses, by
    default), a batch class (1, >1, large) or an edge class; ``[]`` when it drew them all."""
    wanted_ops = sorted(set(ACTIVATIONS) | set(LOSSES)) if ops is None else sorted(ops)
    return ([f"dtype {d}" for d in dtypes if not record.dtypes.get(d)]
            + [f"op {op}" for op in wanted_ops if not record.ops.get(op)]
            + [f"batch size {b}" for b in batches if not record.batches.get(b)]
            + [f"edge class {e}" for e in edges if not record.edges.get(e)])


def coverage_verdict(record: CampaignRecord, min_cases: int = COVERAGE_MIN_CASES
                     ) -> tuple[bool, str]:
    """``(ok, line)``: a campaign of at least ``min_cases`` cases must have drawn everything
    :func:`coverage_gaps` asks for; a smaller one is not judged (``ok``, and the line says so)."""
    if record.cases < min_cases:
        return True, (f"coverage not judged: {record.cases} cases, fewer than {min_cases}")
    gaps = coverage_gaps(record)
    if gaps:
        return False, f"coverage: {record.cases} cases never drew {', '.join(gaps)}"
    return True, (f"coverage: both dtypes, every op, batch sizes 1, >1 and large and every "
                  f"edge class drawn in {record.cases} cases")


def summary_line(record: CampaignRecord) -> str:
    """One line for a terminal: cases, rate, coverage, failures."""
    rate = record.cases / record.elapsed_seconds if record.elapsed_seconds else 0.0
    dtypes = ", ".join(f"{k} {v}" for k, v in sorted(record.dtypes.items()))
    return (f"{record.cases} cases in {record.elapsed_seconds:.1f} s ({rate:.0f}/s); "
            f"{len(record.ops)} ops covered; {dtypes}; {record.kink_excused} kink straddles "
            f"and {record.rounding_excused} float32 rounding excused; "
            f"{len(record.failures)} failure(s)"
            + (f"; stopped early: {record.stopped}" if record.stopped else ""))

