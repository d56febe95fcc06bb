"""The differential core: run both engines on the same subject and compare everything.

:func:`compare_network` runs a spec and its data; :func:`compare_op` runs one
registry op alone on random inputs with a random upstream gradient (never all
ones: backpropagating ones through softmax tests nothing, since
:math:`\\partial \\sum_i \\operatorname{softmax}(x)_i / \\partial x = 0`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

import manual
from manual.data import Data
from manual.registry import DEFAULT_TOLERANCES, OPS, OpInfo, Tolerance
from manual.spec import Spec
from reference import engine, sampling
from reference.records import ComparisonRecord, TensorComparison


def compare_arrays(
    name: str, got: Any, want: Any, tolerance: Tolerance, keep_values: bool = True
) -> TensorComparison:
    """Compare the manual engine's array ``got`` with the reference ``want``.

    Shape, then dtype, then values with ``|got - want| <= atol + rtol * |want|``
    (NaN matches NaN, an infinity matches the same infinity).
    """
    got, want = np.asarray(got), np.asarray(want)
    rtol, atol = tolerance.rtol, tolerance.atol
    values = {"manual": got.tolist(), "reference": want.tolist()} if keep_values else {}
    base = {"name": name, "shape": list(want.shape), "dtype": str(want.dtype),
            "rtol": rtol, "atol": atol, **values}
    problem = ""
    if got.shape != want.shape:
        problem = f"shape {got.shape} != reference {want.shape}"
    elif got.dtype != want.dtype:
        problem = f"dtype {got.dtype} != reference {want.dtype}"
    if problem:
        return TensorComparison(max_abs_error=np.inf, max_rel_error=np.inf,
                                tolerance_ratio=np.inf, worst_index=[], passed=False,
                                problem=problem, **base)
    if want.size == 0:
        return TensorComparison(max_abs_error=0.0, max_rel_error=0.0, tolerance_ratio=0.0,
                                worst_index=[], passed=True, **base)
    g, w = got.astype(np.float64), want.astype(np.float64)
    same = (g == w) | (np.isnan(g) & np.isnan(w))
    with np.errstate(invalid="ignore", divide="ignore"):
        error = np.where(same, 0.0, np.abs(g - w))
        error = np.where(np.isnan(error), np.inf, error)
        relative = np.where(w != 0, error / np.abs(w), np.where(error == 0, 0.0, np.inf))
        ratio = error / (atol + rtol * np.abs(np.where(np.isfinite(w), w, 0)))
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    return TensorComparison(
        max_abs_error=float(error.max()), max_rel_error=float(relative.max()),
        tolerance_ratio=float(ratio.max()), worst_index=[int(i) for i in worst],
        passed=bool(ratio.max() <= 1.0), mismatched=int(np.count_nonzero(ratio > 1.0)), **base,
    )


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


def spec_tolerance(spec: Spec) -> Tolerance:
    """The loosest override among the spec's ops, or the dtype's default."""
    ops = [OPS[layer.type] for layer in spec.layers if layer.type in OPS] + [OPS[spec.loss.type]]
    overrides = [op.tolerances[spec.dtype] for op in ops if spec.dtype in op.tolerances]
    if not overrides:
        return DEFAULT_TOLERANCES[spec.dtype]
    return Tolerance(max(t.rtol for t in overrides), max(t.atol for t in overrides),
                     "; ".join(sorted({t.reason for t in overrides})))


def default_dloss(spec: Spec, loss_shape: tuple[int, ...]) -> np.ndarray:
    """1 for a reduced loss (as ``loss.backward()``); a seeded random array for ``none``."""
    if not loss_shape:
        return np.asarray(1.0, dtype=spec.dtype)
    rng = np.random.default_rng([spec.seed, 1])
    return rng.standard_normal(loss_shape).astype(spec.dtype)


def _first_divergence(spec: Spec, by_name: Mapping[str, TensorComparison]) -> str | None:
    def where(i: int) -> str:
        return f"layers.{i} ({spec.layers[i].type})"

    n = len(spec.layers)
    for i in range(n):
        if not by_name[f"forward: layers.{i}"].passed:
            return f"forward: {where(i)}"
    if not by_name["forward: loss"].passed:
        return f"forward: loss ({spec.loss.type})"
    if not by_name["backward: output"].passed:
        return f"backward: loss ({spec.loss.type})"
    for i in range(n - 1, -1, -1):
        below = f"backward: layers.{i - 1}" if i else "backward: input"
        own = [t for name, t in by_name.items() if name.startswith(f"backward: layers.{i}.")]
        if not by_name[below].passed or not all(t.passed for t in own):
            return f"backward: {where(i)}"
    return None


def compare_network(
    spec: Spec,
    data: Data,
    *,
    params: Mapping[str, np.ndarray] | None = None,
    dloss: np.ndarray | None = None,
    keep_values: bool = True,
) -> ComparisonRecord:
    """Run ``spec`` on ``data`` in both engines and compare every tensor.

    The record holds the loss, the output, every layer's output and upstream
    gradient, the input gradient and every parameter gradient (``layers.{i}.weight``).
    """
    params = dict(manual.initial_parameters(spec) if params is None else params)
    net = manual.build(spec, {k: v.copy() for k, v in params.items()})
    output = net.forward(data.x.copy())
    loss = net.loss(output, data.y)
    if dloss is None:
        dloss = default_dloss(spec, np.shape(loss))
    net.backward(dloss)
    ref = engine.run(engine.build(spec, params), data.x, data.y, dloss)

    tolerance = spec_tolerance(spec)
    pairs: list[tuple[str, Any, Any]] = [("forward: loss", loss, ref.loss)]
    pairs += [(f"forward: layers.{i}", m, r) for i, (m, r) in
              enumerate(zip(net.outputs, ref.outputs, strict=True))]
    pairs += [("backward: output", net.upstream[-1] if net.upstream else net.input_grad,
               ref.loss_grad)]
    pairs += [(f"backward: layers.{i}", net.upstream[i], ref.upstream[i])
              for i in range(len(spec.layers) - 1)]
    pairs += [("backward: input", net.input_grad, ref.input_grad)]
    grads = net.named_grads()
    pairs += [(f"backward: {name}", grads.get(name), ref.grads[name]) for name in ref.grads]
    tensors = [compare_arrays(name, m, r, tolerance, keep_values) for name, m, r in pairs]
    by_name = {t.name: t for t in tensors}
    return ComparisonRecord(
        subject=spec.name or "network", kind="network", dtype=spec.dtype, seed=spec.seed,
        passed=all(t.passed for t in tensors), first_divergence=_first_divergence(spec, by_name),
        tolerance_reason=tolerance.reason, tensors=tensors, spec=spec.to_dict(),
    )


def compare_op(
    op: OpInfo | str,
    dtype: str,
    options: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    shape: tuple[int, int] = (6, 5),
    target_kind: str | None = None,
    x: np.ndarray | None = None,
    target: np.ndarray | None = None,
    dy: np.ndarray | None = None,
    keep_values: bool = True,
) -> ComparisonRecord:
    """Run one op alone in both engines on inputs from its domain (or on ``x``).

    The upstream gradient is drawn at random (unless ``dy`` is given). For a loss,
    ``target`` is drawn of ``target_kind`` (the first kind it accepts by default)
    unless it is given.
    """
    op = OPS[op] if isinstance(op, str) else op
    options = cast_options(options or {}, dtype)
    reference_options = torch_options(options)
    rng = np.random.default_rng(seed)
    if x is None:
        x = sampling.op_input(op, shape, rng, dtype)
    else:
        x, shape = np.asarray(x, dtype=dtype), np.shape(x)
    tolerance = op.tolerance(dtype)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    fn = engine.torch_callable(op)
    if op.kind == "loss":
        kind = target_kind or ("" if target is not None else op.targets[0])
        if target is None:
            target = sampling.target(kind, shape, rng, dtype, options)
        y, cache = op.forward(x.copy(), target, **options)
        ty = fn(tx, torch.from_numpy(target.copy()), **reference_options)
    else:
        kind = ""
        y, cache = op.forward(x.copy(), **options)
        ty = fn(tx, **reference_options)
    if dy is None:
        dy = rng.standard_normal(np.shape(y)).astype(dtype)
    dx = op.backward(dy.copy(), cache)
    ty.backward(torch.from_numpy(dy.copy()))
    tensors = [
        compare_arrays("forward: output", y, ty.detach().numpy(), tolerance, keep_values),
        compare_arrays("backward: input", dx, tx.grad.numpy(),  # type: ignore[union-attr]
                       tolerance, keep_values),
    ]
    passed = all(t.passed for t in tensors)
    divergence = None if passed else next(t.name for t in tensors if not t.passed)
    own = op.name not in OPS  # a user's op is not "an activation"
    return ComparisonRecord(
        subject=op.name, kind=("loss" if op.targets else "op") if own else op.kind,
        dtype=dtype, seed=seed, passed=passed,
        first_divergence=divergence, tolerance_reason=tolerance.reason, tensors=tensors,
        options={**options, **({"target": kind} if kind else {})},
    )
