"""Plain-word verdicts on a user's tensor against PyTorch's, built on ``compare_arrays``.

:func:`compare_named` turns the terse problems of :func:`reference.core.compare.compare_arrays`
into what a user can act on: a gradient that is ``None``; a shape that broadcasts to the
reference's but is not it (``(1, D)`` for ``(D,)``); a dtype leak, and whether the values
agree after casting; how many elements differ and both values at the worst one.
:func:`constant_factor` finds one factor relating two sets of tensors (the seed's sigmoid'
applied twice makes every later gradient 0.056 times PyTorch's).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from manual.registry import Tolerance
from reference.core.compare import compare_arrays
from reference.core.names import TensorName
from reference.core.records import TensorComparison

# Unchanged means equal element for element: zero tolerance (an exact match has ratio 0).
EXACT = Tolerance(0.0, 0.0, "exact: the array must be unchanged")
# Ratios of one constant factor agree to this relative spread (float32 rounding included).
FACTOR_SPREAD = 1e-4


def _number(value: Any) -> str:
    return f"{float(value):.4g}"


def _failed(name: str | TensorName, want: np.ndarray, tolerance: Tolerance, problem: str,
            keep_values: bool) -> TensorComparison:
    """A tensor that cannot be compared at all (missing, raised): wrong, with ``problem``."""
    placeholder = np.zeros((*want.shape, 0), dtype=want.dtype)  # never the reference's shape
    record = compare_arrays(name, placeholder, want, tolerance, keep_values)
    return dataclasses.replace(record, problem=problem, manual=None)


def values_message(record: TensorComparison, got: np.ndarray, want: np.ndarray,
                   context: Mapping[str, np.ndarray] | None = None) -> str:
    """``18 of 150 elements differ; at [0, 1] mine 0.37, torch 0 (x = 0)``."""
    index = tuple(record.worst_index)
    where = f"at {list(index)} mine {_number(got[index])}, torch {_number(want[index])}"
    extra = [f"{k} = {_number(v[index])}" for k, v in (context or {}).items()
             if np.shape(v) == want.shape]
    if extra:
        where += f" ({', '.join(extra)})"
    count = record.mismatched or 1
    # One element is always "a multiple": a factor says something from two on.
    factor = constant_factor([(got, want)]) if np.count_nonzero(want) >= 2 else None
    scaled = f"; every element is {factor:.4g} x PyTorch's" if factor is not None else ""
    return f"{count} of {want.size} elements differ; {where}{scaled}"


def compare_named(
    name: str | TensorName, got: Any, want: np.ndarray, tolerance: Tolerance,
    keep_values: bool = True,
    context: Mapping[str, np.ndarray] | None = None,
) -> TensorComparison:
    """Compare ``got`` with ``want`` and explain a failure in plain words.

    ``context`` (arrays by name, e.g. the inputs) adds their values at the worst index
    when they have the tensor's shape.
    """
    want = np.asarray(want)
    if got is None:
        return _failed(name, want, tolerance, f"returned None (want shape {want.shape})",
                       keep_values)
    got = np.asarray(got)
    record = compare_arrays(name, got, want, tolerance, keep_values)
    if record.passed or want.size == 0:
        return record
    if got.shape != want.shape:
        return dataclasses.replace(record, problem=_shape_message(name, got, want, tolerance))
    if got.dtype != want.dtype:
        cast = compare_arrays(name, got.astype(want.dtype), want, tolerance, False)
        leak = f"dtype {got.dtype} != reference {want.dtype}"
        if cast.passed:
            problem = (f"{leak}; values agree after casting "
                       f"(err/tol {cast.tolerance_ratio:.2g})")
        else:
            problem = (f"{leak}; values also differ after casting: "
                       + values_message(cast, got.astype(want.dtype), want, context))
        return dataclasses.replace(record, problem=problem)
    return dataclasses.replace(record, problem=values_message(record, got, want, context))


def _shape_message(name: str | TensorName, got: np.ndarray, want: np.ndarray,
                   tolerance: Tolerance) -> str:
    plain = f"shape {got.shape} != reference {want.shape}"
    try:  # (1, D) against (D,): arithmetic with it would silently broadcast
        np.broadcast_shapes(got.shape, want.shape)
        broadcasts = True
    except ValueError:
        broadcasts = False
    if not broadcasts or got.size != want.size:
        return plain
    reshaped = compare_arrays(name, got.reshape(want.shape).astype(want.dtype, copy=False),
                              want, tolerance, False)
    verdict = ("values agree after reshaping" if reshaped.passed
               else f"values also differ after reshaping (err/tol "
                    f"{reshaped.tolerance_ratio:.3g})")
    return (f"shape {got.shape} broadcasts to the reference's {want.shape} but is not its "
            f"shape; {verdict}")


def unchanged(name: str | TensorName, after: np.ndarray, before: np.ndarray) -> TensorComparison:
    """Whether ``after`` is still ``before`` (an array handed to the user's code)."""
    record = compare_arrays(name, after, before, EXACT, keep_values=False)
    if record.passed:
        return record
    if after.shape != before.shape or after.dtype != before.dtype:
        return dataclasses.replace(record, problem=f"modified in place ({record.problem})")
    index = tuple(record.worst_index)
    return dataclasses.replace(
        record, problem=f"modified in place: {record.mismatched} of {before.size} elements "
                        f"changed ({list(index)}: {_number(before[index])} -> "
                        f"{_number(after[index])})")


def constant_factor(pairs: Sequence[tuple[Any, Any]]) -> float | None:
    """The one factor ``c`` with ``mine = c * torch`` across every pair, or ``None``.

    Elements where PyTorch's value is zero must be zero in ``mine`` too; ``c`` must differ
    from 1 by more than the spread allowed.
    """
    ratios = []
    for mine, torch_value in pairs:
        m, t = np.asarray(mine, dtype=np.float64), np.asarray(torch_value, dtype=np.float64)
        if m.shape != t.shape or not (np.all(np.isfinite(m)) and np.all(np.isfinite(t))):
            return None
        zero = np.abs(t) <= 1e-300
        if np.any(m[zero] != 0):
            return None
        ratios.append(m[~zero] / t[~zero])
    values = np.concatenate(ratios) if ratios else np.zeros(0)
    if values.size == 0:
        return None
    c = float(np.median(values))
    if c == 0 or np.max(np.abs(values - c)) > FACTOR_SPREAD * abs(c):
        return None
    return c if abs(c - 1) > FACTOR_SPREAD else None
