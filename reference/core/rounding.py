r"""Float32 rounding that legitimately exceeds ``assert_close``'s defaults, measured not guessed.

Two correct float32 engines sum in different orders, and the difference grows with
depth, width, batch and the magnitude of the terms: a weight gradient
:math:`\sum_n \delta_n x_n^\top` over a batch of rows of :math:`|x| \approx 4` turns a
one-ulp difference in the upstream gradient into more than ``atol = 1e-5``. No fixed
tolerance separates that from a bug, and loosening the registry would hide real bugs
in small networks. So the fuzzer does not loosen anything up front. When a float32
tensor fails the elementwise rule, it is judged again against a *measured* bound:
the same spec, parameters and data run through PyTorch in float64 (the inputs are
exactly representable), and

.. math::
    \max |m - r_{32}| \le \text{atol} + \text{rtol} \max |r_{64}|
                         + \kappa \max |r_{32} - r_{64}|, \qquad \kappa = 4

i.e. the manual engine may differ from PyTorch's float32 result by the tolerance at the
tensor's scale plus a few times PyTorch's own float32 rounding error on that tensor.
A wrong derivative misses this bound by orders of magnitude; accumulated rounding
meets it. The excuse is recorded with its numbers (``Outcome.rounding``) and counted.
:func:`measured_bounds` is the same rule for two runs at hand (a layer step and its float64
replay, :mod:`reference.core.driver`), :func:`tensor_bound` for one tensor's two reference values
(a user's layer, :mod:`reference.checks.arbitrate`), and :func:`excuse` applies bounds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

import manual
from manual.data import Data
from manual.spec import Spec
from reference.core.compare import Where, run_tensors, run_value
from reference.core.records import ComparisonRecord, TensorComparison
from reference.core.run import Run, default_dloss, run_torch

KAPPA = 4.0
# A protocol check's gradient carries the rounding of its single-pass gradient times this
# (two accumulated passes: twice).
_PROTOCOL_FACTOR = {"accumulate": 2.0, "stale_cache": 1.0}


def _float64_values(spec: Spec, data: Data, loss_shape: tuple[int, ...],
                    params: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Every tensor of a single comparison, computed by PyTorch in float64."""
    def wide(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: v.astype(np.float64) if v.dtype.kind == "f" else v
                for k, v in arrays.items()}

    start = manual.initial_parameters(spec) if params is None else params
    dloss = np.asarray(default_dloss(spec, loss_shape), dtype=np.float64)
    y = data.y if data.y.dtype.kind == "i" else data.y.astype(np.float64)
    wide_spec = dataclasses.replace(spec, dtype="float64")
    wide_data = Data(data.x.astype(np.float64), y, wide(data.others))
    run = run_torch(wide_spec, wide_data, params=wide(start),
                    state=wide(manual.initial_state(spec)), dloss=dloss,
                    noise=wide(manual.draw_noise(spec, len(data.x))))
    return {key: value for key, (_, value, _) in run_tensors(wide_spec, run).items()}


def rounding_bounds(spec: Spec, data: Data, single: ComparisonRecord,
                    record: ComparisonRecord,
                    params: Mapping[str, np.ndarray] | None = None
                    ) -> dict[str, tuple[float, str]] | None:
    """The measured bound of every failing tensor of ``record``, with how it was made, or
    ``None`` when some failure is not float32 rounding (or nothing failed).

    ``single`` is the single-pass comparison of the same case with values kept
    (``keep_values=True``); ``record`` is the failing record (the same one, or a
    protocol check's); ``params`` the explicit parameters, if the case had them.
    Tensors that must stay unchanged (and shape or dtype problems) are never excused.
    """
    if spec.dtype != "float32" or record.passed:
        return None
    shadow = _float64_values(spec, data, tuple(np.shape(single.tensor("forward: loss")
                                                        .reference)), params)
    measured = {t.name: (np.asarray(t.reference, dtype=np.float64),
                         np.asarray(shadow[t.name], dtype=np.float64))
                for t in single.tensors if t.name in shadow and t.reference is not None}
    bounds: dict[str, tuple[float, str]] = {}
    for t in record.failures:
        name, factor = _single_name(t)
        found = None if t.problem or name not in measured else tensor_bound(
            t, *measured[name], factor)
        if found is None or not t.max_abs_error <= found[0]:
            return None
        bounds[t.name] = found
    return bounds


def rounding_excuse(spec: Spec, data: Data, single: ComparisonRecord,
                    record: ComparisonRecord,
                    params: Mapping[str, np.ndarray] | None = None) -> str:
    """Why ``record``'s failures are float32 rounding (the tightest-fitting one's bound), or
    ``""`` if they are not (see :func:`rounding_bounds`)."""
    bounds = rounding_bounds(spec, data, single, record, params)
    if not bounds:
        return ""
    errors = {t.name: t.max_abs_error for t in record.failures}
    name = max(bounds, key=lambda n: errors[n] / bounds[n][0])
    bound, how = bounds[name]
    return f"{name}: error {errors[name]:.3g} <= {bound:.3g} ({how})"


def _single_name(tensor: TensorComparison) -> tuple[str, float]:
    """The single-pass tensor whose rounding ``tensor`` carries, and by what factor."""
    name = tensor.tensor_name
    if name.check is None:
        return tensor.name, 1.0
    return str(dataclasses.replace(name, check=None)), _PROTOCOL_FACTOR[name.check]


def tensor_bound(t: TensorComparison, r32: np.ndarray, r64: np.ndarray, factor: float = 1.0
                 ) -> tuple[float, str] | None:
    """The measured bound of ``t`` from PyTorch's float32 and float64 values of the tensor
    whose rounding it carries ``factor`` times, and how it was made."""
    if r32.shape != r64.shape or not r32.size:
        return None
    scale, rounding = float(np.max(np.abs(r64))), float(np.max(np.abs(r32 - r64)))
    bound = t.atol + t.rtol * scale * factor + KAPPA * rounding * factor
    return bound, (f"atol + rtol x scale {scale * factor:.3g} + {KAPPA:g} x float32 rounding "
                   f"{rounding * factor:.3g} measured against float64")


def measured_bounds(tensors: list[TensorComparison], where: Mapping[str, Where], ref32: Run,
                    ref64: Run) -> dict[str, tuple[float, str]] | None:
    """:func:`rounding_bounds`' rule for the failing ``tensors`` of a float32 run ``ref32``
    against its float64 replay ``ref64``: each failure's bound, or ``None`` when one is not
    rounding (a shape or dtype problem, or an error beyond the bound). ``where`` is
    :func:`~reference.core.compare.judged` (a tensor of a later step by its name without it).
    """
    bounds: dict[str, tuple[float, str]] = {}
    for t in tensors:
        if t.passed:
            continue
        item = where.get(str(dataclasses.replace(t.tensor_name, step=None)))
        if t.problem or item is None:
            return None
        _, field, key, _ = item
        found = tensor_bound(t, np.asarray(run_value(ref32, field, key), dtype=np.float64),
                       np.asarray(run_value(ref64, field, key), dtype=np.float64))
        if found is None or not t.max_abs_error <= found[0]:
            return None
        bounds[t.name] = found
    return bounds or None


def excuse(tensors: list[TensorComparison], bounds: Mapping[str, tuple[float, str]]) -> None:
    """Pass each bounded tensor, judged by its bound (error / bound, at most 1)."""
    for tensor in tensors:
        if tensor.name in bounds:
            bound, how = bounds[tensor.name]
            tensor.tolerance_ratio = tensor.max_abs_error / bound
            tensor.passed = True
            tensor.problem = f"within the measured float32 rounding bound {bound:.3g} ({how})"


EXCUSED = "float32 rounding within a bound measured against float64"
