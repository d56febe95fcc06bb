"""The differential core: run both engines on the same subject and compare everything.

:func:`compare_network` runs a spec and its data; :func:`compare_op` runs one
registry op alone on random inputs with a random upstream gradient (never all
ones: backpropagating ones through softmax tests nothing, since
:math:`\\partial \\sum_i \\operatorname{softmax}(x)_i / \\partial x = 0`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

import manual
from manual.data import Data
from manual.layers import LAYERS
from manual.random import stream
from manual.registry import DEFAULT_TOLERANCES, OPS, OpInfo, Tolerance
from manual.spec import Node, Spec
from reference.core import sampling
from reference.core.names import TensorName
from reference.core.records import ComparisonRecord, TensorComparison
from reference.core.run import Run, run_manual, run_torch


def _dtype_name(dtype: np.dtype) -> str:
    """``str(dtype)``, remembered (numpy builds the name afresh on every call)."""
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = str(dtype)
    return name


_DTYPE_NAMES: dict[np.dtype, str] = {}


def _fields(name: str | TensorName, got: np.ndarray, want: np.ndarray, tolerance: Tolerance,
            keep_values: bool) -> dict[str, Any]:
    """The fields of a comparison record that do not depend on the values' errors."""
    base: dict[str, Any] = {"name": str(name), "shape": list(want.shape),
                            "dtype": _dtype_name(want.dtype), "rtol": tolerance.rtol,
                            "atol": tolerance.atol}
    if keep_values:
        base["manual"], base["reference"] = got.tolist(), want.tolist()
    if isinstance(name, TensorName):
        base.update(stage=name.stage, node=name.node, slot=name.slot, step=name.step,
                    edge=name.edge, check=name.check)
    return base


def _both_nan_problem(count: int, size: int, at: list[int]) -> str:
    return (f"NaN in both engines ({count} of {size} elements, first at {at}): a non-finite "
            "result, not an agreement")


def compare_arrays(
    name: str | TensorName, got: Any, want: Any, tolerance: Tolerance, keep_values: bool = True,
    *, equal_nan: bool = False,
) -> TensorComparison:
    """Compare the manual engine's array ``got`` with the reference ``want``.

    Shape, then dtype, then values with ``|got - want| <= atol + rtol * |want|``
    (an infinity matches the same infinity). As in ``torch.testing.assert_close``, NaN
    matches nothing, not even NaN, unless the caller expects it (``equal_nan=True``): NaN
    on both sides is then its own verdict, a failure whose ``problem`` says so.
    """
    got, want = np.asarray(got), np.asarray(want)
    problem = ""
    if got.shape != want.shape:
        problem = f"shape {got.shape} != reference {want.shape}"
    elif got.dtype != want.dtype:
        problem = f"dtype {got.dtype} != reference {want.dtype}"
    elif want.size:  # the values: compare_all computes the rule, for one tensor or many
        return compare_all([(name, got, want, tolerance)], keep_values, equal_nan=equal_nan)[0]
    base = _fields(name, got, want, tolerance, keep_values)
    if problem:
        return TensorComparison(max_abs_error=np.inf, max_rel_error=np.inf,
                                tolerance_ratio=np.inf, worst_index=[], passed=False,
                                problem=problem, **base)
    return TensorComparison(max_abs_error=0.0, max_rel_error=0.0, tolerance_ratio=0.0,
                            worst_index=[], passed=True, **base)


Comparand = tuple["str | TensorName", Any, Any, Tolerance]


def _first_in_segments(flags: np.ndarray, starts: np.ndarray) -> list[int]:
    """The offset, within each segment, of its first true flag (every segment has one)."""
    positions = np.flatnonzero(flags)
    found = np.minimum(np.searchsorted(positions, starts), len(positions) - 1)
    return (positions[found] - starts).tolist()


def _unravel(flat: int, shape: tuple[int, ...]) -> list[int]:
    """``np.unravel_index(flat, shape)`` as a list of ints, for one index."""
    index = []
    for extent in reversed(shape):
        flat, i = divmod(flat, extent)
        index.append(i)
    return index[::-1]


def compare_all(items: Sequence[Comparand], keep_values: bool = True, *,
                equal_nan: bool = False) -> list[TensorComparison]:
    """``[compare_arrays(name, got, want, tolerance, keep_values) for ...]``, in a few numpy
    passes over all of them at once: the one place the values rule is computed.

    Every pair of equal shape and dtype, not empty, joins one flat float64 array per side
    with per-element ``atol`` and ``rtol``; the errors and ratios are computed once, and each
    tensor's maxima, counts and first worst element come from segment reductions
    (``np.maximum.reduceat``). The other pairs get :func:`compare_arrays`'s shape, dtype or
    empty verdict; it sends the rest back here as a batch of one.
    """
    out: list[TensorComparison | None] = [None] * len(items)
    batch: list[tuple[int, dict[str, Any], tuple[int, ...], int]] = []
    gots, wants, atols, rtols = [], [], [], []
    for i, (name, got, want, tolerance) in enumerate(items):
        got, want = np.asarray(got), np.asarray(want)
        if got.shape != want.shape or got.dtype != want.dtype or want.size == 0:
            out[i] = compare_arrays(name, got, want, tolerance, keep_values,
                                    equal_nan=equal_nan)
            continue
        batch.append((i, _fields(name, got, want, tolerance, keep_values), want.shape,
                      want.size))
        gots.append(got.reshape(-1))
        wants.append(want.reshape(-1))
        atols.append(tolerance.atol)
        rtols.append(tolerance.rtol)
    if batch:
        flat = (np.concatenate(gots, dtype=np.float64, casting="unsafe"),
                np.concatenate(wants, dtype=np.float64, casting="unsafe"))
        for (i, base, shape, size), errors in zip(
                batch, _batch_errors(flat, [b[3] for b in batch], atols, rtols, equal_nan),
                strict=True):
            abs_max, rel_max, ratio_max, worst, bad, nan_count, nan_at = errors
            problem = _both_nan_problem(nan_count, size, _unravel(nan_at, shape)) \
                if nan_count else ""
            out[i] = TensorComparison(
                max_abs_error=abs_max, max_rel_error=rel_max, tolerance_ratio=ratio_max,
                worst_index=_unravel(worst, shape), passed=ratio_max <= 1.0, problem=problem,
                mismatched=bad, **base)
    return out  # type: ignore[return-value]


def _batch_errors(flat: tuple[np.ndarray, np.ndarray], segment_sizes: list[int],
                  atols: list[float], rtols: list[float], equal_nan: bool) -> Any:
    """Per segment: max abs error, max rel error, max ratio, the ratio's first argmax,
    elements over tolerance, NaN-in-both count and the first of them."""
    g, w = flat
    sizes = np.array(segment_sizes)
    starts = np.zeros(len(sizes), dtype=np.intp)
    np.cumsum(sizes[:-1], out=starts[1:])
    both_nan = np.isnan(g) & np.isnan(w)
    same = (g == w) | both_nan if equal_nan else g == w
    with np.errstate(invalid="ignore", divide="ignore"):
        error = np.where(same, 0.0, np.abs(g - w))
        error[np.isnan(error)] = np.inf
        # No error is no error, even where the reference is NaN (equal_nan) or nothing is
        # allowed (atol = rtol = 0): 0/0 there would fail an exact match.
        relative = np.where(error == 0, 0.0, np.where(w != 0, error / np.abs(w), np.inf))
        relative[np.isnan(relative)] = np.inf
        bound = np.repeat(np.array(atols), sizes) + np.repeat(np.array(rtols), sizes) * np.abs(
            np.where(np.isfinite(w), w, 0))
        ratio = np.where(error == 0, 0.0, error / bound)
    worst_ratio = np.maximum.reduceat(ratio, starts)
    # np.argmax's element: the first one equal to the maximum, or the first NaN.
    worst = ratio == np.repeat(worst_ratio, sizes)
    nan_worst = np.isnan(worst_ratio)
    if nan_worst.any():
        worst |= np.isnan(ratio) & np.repeat(nan_worst, sizes)
    nans = np.add.reduceat(both_nan, starts, dtype=np.intp).tolist() \
        if not equal_nan and both_nan.any() else [0] * len(sizes)
    return zip(np.maximum.reduceat(error, starts).tolist(),
               np.maximum.reduceat(relative, starts).tolist(), worst_ratio.tolist(),
               _first_in_segments(worst, starts),
               np.add.reduceat(ratio > 1.0, starts, dtype=np.intp).tolist(), nans,
               _first_in_segments(both_nan, starts) if any(nans) else nans, strict=True)


def cast_options(options: Mapping[str, Any], dtype: str) -> dict[str, Any]:
    """``options`` with every floating array (also inside dicts) cast to ``dtype``."""
    def cast(value: Any) -> Any:
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            return value.astype(dtype)
        if isinstance(value, dict):
            return {k: cast(v) for k, v in value.items()}
        return value

    return {name: cast(value) for name, value in options.items()}


def torch_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with every array (also inside dicts) as a tensor, for the torch side."""
    def convert(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return torch.from_numpy(value.copy())
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value

    return {name: convert(value) for name, value in options.items()}


def spec_tolerance(spec: Spec, stage: str = "forward") -> Tolerance:
    """The loosest override among the spec's layers and loss for ``stage``, or the default."""
    overrides = [LAYERS[node.type].tolerance(spec.dtype, stage) for node in spec.nodes]
    overrides.append(OPS[spec.loss.type].tolerance(spec.dtype, stage))
    overrides = [t for t in overrides if t.reason != "default"]
    if not overrides:
        return DEFAULT_TOLERANCES[spec.dtype]
    return Tolerance(max(t.rtol for t in overrides), max(t.atol for t in overrides),
                     "; ".join(sorted({t.reason for t in overrides})))


def grad_name(spec: Spec, ref: str) -> TensorName:
    r"""The name of :math:`\partial L/\partial` a value (``backward: output`` at the output)."""
    return TensorName("backward", "output" if ref == spec.output else ref)


def _edge_name(spec: Spec, node: Node, j: int) -> TensorName:
    """The tensor that says whether ``node`` sent the right gradient along input edge ``j``."""
    ref = node.inputs[j]
    if ref in spec.shared():
        repeated = node.inputs.count(ref) > 1
        return TensorName("edge", node.name, ref, edge=j if repeated else None)
    return grad_name(spec, ref)


def first_divergence(spec: Spec, by_name: Mapping[str, TensorComparison]) -> str | None:
    """Forward: the first node (in topological order) whose output or state differs; else
    the loss; else the first node, going backward, whose input-edge or parameter gradients
    differ. For a chain this is round 1's answer."""
    def failed(name: TensorName | str) -> bool:
        tensor = by_name.get(str(name))
        return tensor is not None and not tensor.passed

    for node in spec.nodes:
        outputs = [TensorName("forward", node.name)]
        outputs += [TensorName("forward", node.name, o) for o in list(node.signature.outputs)[1:]]
        if any(failed(name) for name in outputs):
            return f"forward: {node.name} ({node.type})"
        if any(failed(TensorName("state", node.name, k)) for k in node.signature.state):
            return f"state: {node.name} ({node.type})"
    if failed("forward: loss"):
        return f"forward: loss ({spec.loss.type})"
    if failed("backward: output"):
        return f"backward: loss ({spec.loss.type})"
    for node in reversed(spec.nodes):
        edges = [_edge_name(spec, node, j) for j in range(len(node.inputs))]
        own = [TensorName("backward", node.name, k) for k in node.signature.params]
        if any(failed(name) for name in [*edges, *own]):
            return f"backward: {node.name} ({node.type})"
    # A gradient no edge reads (a node's own output, where its consumers read a named
    # output) still names the engines' parting, by its tensor.
    return next((name for name, tensor in by_name.items() if not tensor.passed), None)


Where = tuple["TensorName | str", str, Any, str]  # name, Run field, key in it, pass


def _gradient_free(spec: Spec) -> set[str]:
    """The graph inputs that carry no gradient: index inputs, and those only ever read at an
    input position that carries none (an attention mask, a loss's target)."""
    read = {ref for node in spec.nodes for j, ref in enumerate(node.inputs)
            if j not in node.signature.no_grad}
    return {i.name for i in spec.inputs if i.kind == "index" or i.name not in read}


def judged(spec: Spec, *, loss: bool = True) -> dict[str, Where]:
    """Every tensor a run of ``spec`` is judged on, by printed name: its name, the
    :class:`Run` field and key that hold it, and its pass (``forward`` or ``backward``).
    Without a ``loss`` (the upstream given at the output) neither the loss nor the gradient
    at the output is judged: both engines were handed them."""
    free = _gradient_free(spec)
    items: list[Where] = [("forward: loss", "loss", None, "forward")] if loss else []
    for node in spec.nodes:
        items.append((TensorName("forward", node.name), "values", node.name, "forward"))
        items += [(TensorName("forward", node.name, o), "values", f"{node.name}.{o}", "forward")
                  for o in list(node.signature.outputs)[1:]]
        items += [(TensorName("state", node.name, k), "state", f"{node.name}.{k}", "forward")
                  for k in node.signature.state]
    if loss:
        items.append((grad_name(spec, spec.output), "grad_at", spec.output, "backward"))
    items += [(TensorName("backward", n.name), "grad_at", n.name, "backward")
              for n in spec.nodes if n.name != spec.output]
    shared = spec.shared()
    items += [(_edge_name(spec, node, j), "grad_in", (node.name, j), "backward")
              for node in spec.nodes for j, ref in enumerate(node.inputs)
              if ref in shared and ref not in free and j not in node.signature.no_grad]
    items += [(TensorName("backward", i.name), "grad_at", i.name, "backward")
              for i in spec.inputs if i.name not in free]
    items += [(TensorName("backward", node.name, k), "param_grads", f"{node.name}.{k}",
               "backward") for node in spec.nodes for k in node.signature.params]
    return {str(item[0]): item for item in items}


def run_value(run: Run, field: str, key: Any) -> Any:
    """The value :func:`judged` locates by a :class:`Run` field and key (``None``: the loss)."""
    return run.loss if key is None else getattr(run, field).get(key)


def run_tensors(spec: Spec, run: Run) -> dict[str, tuple[TensorName | str, Any, str]]:
    """Every tensor a run of ``spec`` is judged on, by printed name: (name, value, pass).

    The names come from the spec, so two runs line up even where one lacks a value.
    """
    return {printed: (name, run_value(run, field, key), stage)
            for printed, (name, field, key, stage) in judged(spec).items()}


def compare_runs(spec: Spec, mine: Run, ref: Run, *, keep_values: bool = False,
                 tolerances: Mapping[str, Tolerance] | None = None,
                 equal_nan: bool = False) -> list[TensorComparison]:
    """Every tensor of two runs of ``spec``, compared (forward and backward tolerances apart;
    ``tolerances`` by pass when the caller has them already). Runs given their upstream at the
    output (``grad_at_output``) are judged without the loss."""
    if tolerances is None:
        tolerances = {stage: spec_tolerance(spec, stage) for stage in ("forward", "backward")}
    where = judged(spec, loss=ref.grad_at_output is None)
    return compare_all([(name, run_value(mine, field, key), run_value(ref, field, key),
                         tolerances[stage]) for name, field, key, stage in where.values()],
                       keep_values, equal_nan=equal_nan)


def compare_network(
    spec: Spec,
    data: Data,
    *,
    params: Mapping[str, np.ndarray] | None = None,
    state: Mapping[str, np.ndarray] | None = None,
    dloss: np.ndarray | None = None,
    noise: Mapping[str, np.ndarray] | None = None,
    keep_values: bool = True,
) -> ComparisonRecord:
    """Run ``spec`` on ``data`` in both engines and compare every tensor.

    The record holds the loss, every node's output and state, the gradient at every value
    (``backward: output`` at the output, ``backward: input`` at a chain's input), each shared
    value's per-edge gradient and every parameter gradient (``backward: layers.0.weight``).
    Both engines get the same starting slots, upstream gradient and noise (a dropout mask
    drawn by the harness).
    """
    params = dict(manual.initial_parameters(spec) if params is None else params)
    state = dict(manual.initial_state(spec) if state is None else state)
    if noise is None:
        noise = manual.draw_noise(spec, len(data.x))
    ref = run_torch(spec, data, params=params, state=state, dloss=dloss, noise=noise)
    mine = run_manual(spec, data, params=params, state=state, dloss=ref.dloss, noise=noise)
    tolerances = {stage: spec_tolerance(spec, stage) for stage in ("forward", "backward")}
    tensors = compare_runs(spec, mine, ref, keep_values=keep_values, tolerances=tolerances)
    passed = all(t.passed for t in tensors)
    divergence = None if passed else first_divergence(spec, {t.name: t for t in tensors})
    reasons = {tolerance.reason for tolerance in tolerances.values()}
    return ComparisonRecord(
        subject=spec.name or "network", kind="network", dtype=spec.dtype, seed=spec.seed,
        passed=passed, first_divergence=divergence,
        tolerance_reason="; ".join(sorted(reasons)), tensors=tensors, spec=spec.to_dict(),
    )


def compare_op(
    op: OpInfo | str,
    dtype: str,
    options: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    shape: tuple[int, ...] = (6, 5),
    target_kind: str | None = None,
    x: np.ndarray | None = None,
    target: np.ndarray | None = None,
    dy: np.ndarray | None = None,
    keep_values: bool = True,
    equal_nan: bool = False,
) -> ComparisonRecord:
    """Run one op alone in both engines on inputs from its domain (or on ``x``, any shape).

    One case of :func:`reference.core.driver.compare_layer`: the op as a one-node layer whose
    input is ``input`` and whose node is ``output``, so the tensors are ``forward: output``
    and ``backward: input``. The upstream gradient is drawn at random in PyTorch's shape
    (unless ``dy`` is given), so a wrong-shaped output is a verdict. For a loss, ``target`` is
    drawn of ``target_kind`` (the first kind it accepts by default) unless it is given.
    ``equal_nan`` is for a case whose NaN the caller expects (a mean over targets that are all
    ignored is 0/0 in PyTorch).
    """
    from reference.core.driver import LayerSample, compare_layer  # the driver builds on this

    op = OPS[op] if isinstance(op, str) else op
    options = cast_options(options or {}, dtype)
    rng = stream(seed, "matrix", op.name)
    if x is None:
        x = sampling.op_input(op, shape, rng, dtype)
    else:
        x, shape = np.asarray(x, dtype=dtype), np.shape(x)
    inputs, kind = [x], ""
    if op.kind == "loss":
        kind = target_kind or ("" if target is not None else op.targets[0])
        if target is None:
            target = sampling.target(kind, shape, rng, dtype, options)
        inputs.append(np.asarray(target))

    def draw(shape: tuple[int, ...]) -> np.ndarray:  # PyTorch's output shape
        return rng.standard_normal(shape).astype(dtype)

    upstream = dy if dy is not None else draw
    record = compare_layer(op, LayerSample(inputs, options, upstream={"output": upstream}),
                           dtype, seed=seed, node="output", refs=("input", "target"),
                           keep_values=keep_values, equal_nan=equal_nan)
    own = op.name not in OPS  # a user's op is not "an activation"
    record.kind = ("loss" if op.targets else "op") if own else op.kind
    record.subject, record.spec = op.name, None
    record.first_divergence = next((t.name for t in record.tensors if not t.passed), None)
    record.options = {**options, **({"target": kind} if kind else {})}
    return record
