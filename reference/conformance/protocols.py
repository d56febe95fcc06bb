"""Protocol checks beyond one forward and one backward pass, and the registry-driven suite.

A single comparison (:func:`reference.core.compare.compare_network`) cannot see an engine
that overwrites gradients instead of accumulating them, keeps a stale cache, or
scribbles on the arrays it was given. These checks can:

- ``accumulate``: two backward passes without ``zero_grad``; PyTorch adds the two
  gradients into ``.grad``, so must the manual engine;
- ``stale_cache``: forward on batch A, forward on batch B, backward: the gradients
  must be those of B alone;
- ``no_mutation``: a forward, loss and backward pass leave ``x``, ``y``, the upstream
  gradient and the parameters bit-for-bit unchanged (and, for one op alone, its input
  and upstream gradient);
- ``op_kinks``: an op evaluated exactly at its kink points must follow PyTorch's
  convention there (relu'(0) = 0, ...).

Each check returns a :class:`~reference.core.records.ComparisonRecord`. :func:`suite` yields
every check of the conformance matrix (:mod:`reference.conformance.matrix`) plus these, so that
``any(not run() .passed ...)`` answers "does the conformance suite catch this engine?".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

import numpy as np

import manual
from manual.data import Data
from manual.random import stream
from manual.registry import ACTIVATIONS, OPS, OpInfo, Tolerance
from manual.spec import Spec
from reference.conformance import matrix
from reference.core import mirror, sampling
from reference.core.compare import compare_arrays, compare_network, compare_op, spec_tolerance
from reference.core.names import Check as ProtocolCheck
from reference.core.names import TensorName
from reference.core.records import ComparisonRecord, TensorComparison
from reference.core.rounding import EXCUSED, excuse, rounding_bounds
from reference.core.run import reference_dloss, run_manual, run_torch

PROTOCOLS = ("single", "accumulate", "stale_cache", "no_mutation")
UNCHANGED = Tolerance(0.0, 0.0, "must be left unchanged, bit for bit")


def unchanged(name: str | TensorName, after: Any, before: np.ndarray) -> TensorComparison:
    """Exact equality (NaN equal to NaN): the array was left as it was given (``name``: an
    input, the target, the upstream gradient, or a parameter as ``TensorName("unchanged",
    node, slot)``)."""
    tensor = name if isinstance(name, TensorName) else TensorName("unchanged", name)
    after = np.asarray(after)
    same = after.shape == before.shape and bool(np.array_equal(after, before, equal_nan=True))
    error = 0.0 if same else math.inf
    if not same and after.shape == before.shape and after.size:
        error = float(np.max(np.abs(after.astype(np.float64) - before.astype(np.float64))))
    return TensorComparison(
        name=str(tensor), stage=tensor.stage, node=tensor.node, slot=tensor.slot,
        shape=list(before.shape), dtype=str(before.dtype),
        max_abs_error=error, max_rel_error=0.0 if same else math.inf,
        tolerance_ratio=0.0 if same else math.inf, worst_index=[], rtol=0.0, atol=0.0,
        passed=same, problem="" if same else "modified in place")


def _record(subject: str, kind: str, dtype: str, seed: int, reason: str,
            tensors: list[TensorComparison], spec: Spec | None = None,
            options: Mapping[str, Any] | None = None) -> ComparisonRecord:
    failed = [t.name for t in tensors if not t.passed]
    return ComparisonRecord(
        subject=subject, kind=kind, dtype=dtype, seed=seed, passed=not failed,
        first_divergence=failed[0] if failed else None, tolerance_reason=reason,
        tensors=tensors, spec=spec.to_dict() if spec else None, options=dict(options or {}),
    )


def _torch_grads(spec: Spec, params: Mapping[str, np.ndarray],
                 passes: list[tuple[Data, Any]]) -> dict[str, np.ndarray]:
    """Backward once per (data, dloss) in ``passes`` with no zero_grad in between: ``.grad``
    sums, as the manual engine's ``grads`` must."""
    net = mirror.build(spec, params)
    noise = manual.draw_noise(spec, len(passes[0][0].x))
    grads: dict[str, np.ndarray] = {}
    for data, dloss in passes:  # each run starts from zero grads; the sum is .grad's
        run = run_torch(spec, data, dloss=dloss, noise=noise, net=net)
        grads = {k: grads[k] + v if k in grads else v for k, v in run.param_grads.items()}
    return grads


def _param_slots(spec: Spec) -> dict[str, tuple[str, str]]:
    """Every parameter's key (``layers.0.weight``) and its node and slot, in the spec's order."""
    return {f"{node.name}.{slot}": (node.name, slot) for node in spec.nodes
            for slot in node.signature.params}


def _manual_net(spec: Spec, params: Mapping[str, np.ndarray]) -> manual.Network:
    return manual.build(spec, {k: v.copy() for k, v in params.items()})


def _grad_record(check: ProtocolCheck, spec: Spec, manual_grads: Mapping[str, np.ndarray],
                 torch_grads: Mapping[str, np.ndarray]) -> ComparisonRecord:
    tolerance = spec_tolerance(spec, "backward")
    tensors = [compare_arrays(TensorName("backward", node, slot, check=check),
                              manual_grads.get(key), torch_grads[key], tolerance,
                              keep_values=False)
               for key, (node, slot) in _param_slots(spec).items() if key in torch_grads]
    return _record(spec.name or "network", "network", spec.dtype, spec.seed,
                   tolerance.reason, tensors, spec, {"check": check})


def check_single(spec: Spec, data: Data) -> ComparisonRecord:
    """One forward and backward pass, every tensor compared (the differential core).

    A float32 failure within the *measured* rounding bound (torch re-run in float64, as the
    fuzzer judges it: :mod:`reference.core.rounding`) passes, with the bound in the reason: near
    saturation a gradient such as bce's :math:`(x - t)/(x(1 - x))` amplifies the forward's
    allowed rounding of :math:`x` by :math:`1/(1 - x)`. A real mistake misses the bound by
    orders of magnitude.
    """
    record = compare_network(spec, data, keep_values=spec.dtype == "float32")
    bounds = rounding_bounds(spec, data, record, record)
    if bounds:  # judged by the bound applied: error / bound, which is at most 1
        excuse(record.tensors, bounds)
        record.passed, record.first_divergence = True, None
        record.tolerance_reason += f"; {EXCUSED}"
    for tensor in record.tensors:
        tensor.manual = tensor.reference = None
    return record


def check_accumulate(spec: Spec, data: Data) -> ComparisonRecord:
    """Two backward passes without ``zero_grad``: gradients add up, as in ``.grad``."""
    params = manual.initial_parameters(spec)
    dloss = reference_dloss(spec, data)
    net = _manual_net(spec, params)
    noise = manual.draw_noise(spec, len(data.x))
    for _ in range(2):
        run_manual(spec, data, dloss=dloss, noise=noise, net=net)
    want = _torch_grads(spec, params, [(data, dloss)] * 2)
    return _grad_record("accumulate", spec, net.named_grads(), want)


def other_batch(x: np.ndarray) -> np.ndarray:
    """A second batch that differs from ``x`` everywhere unless ``x`` is 1/3: ``0.5 - x``."""
    return (np.asarray(0.5, dtype=x.dtype) - x).astype(x.dtype)


def check_stale_cache(spec: Spec, data: Data) -> ComparisonRecord:
    """Forward on batch A, then forward, loss and backward on B: gradients are B's alone."""
    params = manual.initial_parameters(spec)
    dloss = reference_dloss(spec, data)
    net = _manual_net(spec, params)
    noise = manual.draw_noise(spec, len(data.x))
    net.forward({k: other_batch(v) if v.dtype.kind == "f" else v
                 for k, v in data.feed(spec).items()}, noise)
    mine = run_manual(spec, data, dloss=dloss, noise=noise, net=net)
    ref = run_torch(spec, data, params=params, dloss=dloss, noise=noise)
    record = _grad_record("stale_cache", spec, net.named_grads(), ref.param_grads)
    # The input gradient also depends on the cache; torch's comes from a fresh pass.
    first = spec.inputs[0].name
    record.tensors.append(compare_arrays(TensorName("backward", "input", check="stale_cache"),
                                         mine.grad_at.get(first),
                                         ref.grad_at[first], spec_tolerance(spec, "backward"),
                                         keep_values=False))
    return _record(record.subject, "network", spec.dtype, spec.seed, record.tolerance_reason,
                   record.tensors, spec, {"check": "stale_cache"})


def check_no_mutation(spec: Spec, data: Data) -> ComparisonRecord:
    """A whole pass leaves x, y, the upstream gradient and the parameters unchanged."""
    params = manual.initial_parameters(spec)
    dloss = np.array(reference_dloss(spec, data), dtype=spec.dtype)
    x, y = data.x.copy(), data.y.copy()
    net = manual.build(spec, params)
    before = {"x": x.copy(), "y": y.copy(), "dloss": dloss.copy(),
              **{k: v.copy() for k, v in params.items()}}
    net.loss(net.forward({**data.feed(spec), spec.inputs[0].name: x},
                         manual.draw_noise(spec, len(x))), y)
    net.backward(dloss)
    after = {"x": x, "y": y, "dloss": dloss, **net.named_parameters()}
    names = {key: TensorName("unchanged", node, slot)
             for key, (node, slot) in _param_slots(spec).items()}
    tensors = [unchanged(names.get(key, key), after[key], want) for key, want in before.items()]
    return _record(spec.name or "network", "network", spec.dtype, spec.seed, UNCHANGED.reason,
                   tensors, spec, {"check": "no_mutation"})


CHECKS: Mapping[str, Callable[[Spec, Data], ComparisonRecord]] = {
    "single": check_single, "accumulate": check_accumulate,
    "stale_cache": check_stale_cache, "no_mutation": check_no_mutation,
}


def run_protocol(protocol: str, spec: Spec, data: Data) -> ComparisonRecord:
    """Run the named check (one of :data:`PROTOCOLS`)."""
    if protocol not in CHECKS:
        raise ValueError(f"protocol: unknown {protocol!r} (known: {', '.join(PROTOCOLS)})")
    return CHECKS[protocol](spec, data)


def op_no_mutation(op: OpInfo | str, dtype: str, options: Mapping[str, Any] | None = None,
                   *, seed: int = 0, shape: tuple[int, int] = (6, 5)) -> ComparisonRecord:
    """One op's forward and backward leave its input, target and upstream gradient unchanged."""
    op = OPS[op] if isinstance(op, str) else op
    options = dict(options or {})
    rng = stream(seed, "matrix", op.name)
    x = sampling.op_input(op, shape, rng, dtype)
    arrays = {"x": x}
    if op.kind == "loss":
        arrays["target"] = sampling.target(op.targets[0], shape, rng, dtype, options)
    before = {k: v.copy() for k, v in arrays.items()}  # before the forward: it may write too
    if op.kind == "loss":
        out, cache = op.forward(x, arrays["target"], **options)
    else:
        out, cache = op.forward(x, **options)
    arrays["dy"] = rng.standard_normal(np.shape(out)).astype(dtype)
    before["dy"] = arrays["dy"].copy()
    op.backward(arrays["dy"], cache)
    tensors = [unchanged(name, arrays[name], want) for name, want in before.items()]
    return _record(op.name, op.kind, dtype, seed, UNCHANGED.reason, tensors,
                   options={**options, "check": "no_mutation"})


def op_kinks(op: OpInfo | str, dtype: str, options: Mapping[str, Any] | None = None
             ) -> ComparisonRecord:
    """An activation at exactly its kink points (and ±1 around them), against PyTorch."""
    op = OPS[op] if isinstance(op, str) else op
    options = dict(options or {})
    points = [k + s for k in op.domain.kinks(options) for s in (0.0, -1.0, 1.0)]
    record = compare_op(op, dtype, options, x=np.asarray([points]))
    record.options["check"] = "kinks"
    return record


Check = Callable[[], ComparisonRecord]


def _op_checks(case: matrix.OpCase) -> Iterator[tuple[str, Check]]:
    yield f"op {case.id}", partial(compare_op, case.op, case.dtype, case.options,
                                   target_kind=case.target_kind)
    yield f"no_mutation {case.id}", partial(op_no_mutation, case.op, case.dtype, case.options)
    if case.op.name in ACTIVATIONS and case.op.domain.kinks(case.options):
        yield f"kinks {case.id}", partial(op_kinks, case.op, case.dtype, case.options)


def suite(dtypes: tuple[str, ...] = matrix.DTYPES) -> Iterator[tuple[str, Check]]:
    """Every check of the conformance suite as ``(id, thunk)``, cheapest first.

    The registry-driven matrix (every op alone, every activation x loss network) plus
    the op-level kink and no-mutation checks and the network protocol checks, run on
    the matrix's networks.
    """
    for case in matrix.op_cases(dtypes):
        yield from _op_checks(case)
    for net_case in matrix.network_cases(dtypes):
        spec = net_case.spec()
        data = matrix.network_data(spec)
        for protocol in PROTOCOLS:
            yield f"{protocol} {net_case.id}", partial(run_protocol, protocol, spec, data)
    for name in matrix.GRAPHS:
        for dtype in dtypes:
            spec = matrix.graph_spec(name, dtype)
            data = matrix.graph_data(spec)
            for protocol in PROTOCOLS:
                yield f"{protocol} graph {name}-{dtype}", partial(run_protocol, protocol, spec,
                                                                  data)


def first_failure(dtypes: tuple[str, ...] = matrix.DTYPES) -> tuple[str, str] | None:
    """The first check of :func:`suite` that fails, as ``(id, where)``; an exception counts."""
    for check_id, thunk in suite(dtypes):
        try:
            record = thunk()
        except Exception as error:  # a crash in the engine is a failed check
            return check_id, f"raised {type(error).__name__}: {error}"
        if not record.passed:
            return check_id, record.first_divergence or "failed"
    return None
