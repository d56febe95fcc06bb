"""Input data for a spec: ``x`` of shape ``(N, D)`` and the loss's target ``y``.

Validated once, at load, against the spec: shapes, finiteness, class labels in
range, probabilities in [0, 1]. Arrays come back in the spec's dtype (class
indices as int64).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from manual.finite import array_problem
from manual.spec import Spec, load_json


@dataclass(frozen=True)
class Data:
    x: NDArray[Any]
    y: NDArray[Any]


def _as_array(value: object, name: str) -> NDArray[Any]:
    try:
        array = np.asarray(value)
    except ValueError:
        array = np.asarray(None, dtype=object)
    if array.dtype.kind not in "iuf":
        raise ValueError(f"data.{name}: must be a number or a rectangular array of numbers")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"data.{name}: contains NaN or infinity")
    return array


def _in_unit_interval(array: NDArray[Any], name: str, loss: str) -> None:
    if array.size and (array.min() < 0 or array.max() > 1):
        raise ValueError(f"data.{name}: {loss} needs probabilities in [0, 1], found values in "
                         f"[{array.min():g}, {array.max():g}]")


def _class_indices(y: NDArray[Any], n: int, classes: int, loss: str) -> NDArray[Any]:
    if y.shape != (n,):
        raise ValueError(f"data.y: {loss} needs {n} class indices (shape ({n},)) or "
                         f"probabilities of shape ({n}, {classes}), got shape {y.shape}")
    if y.dtype.kind == "f":
        raise ValueError(f"data.y: {loss} class indices must be integers, got {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise ValueError(f"data.y: {loss} class indices must lie in [0, {classes - 1}] "
                         f"(the output has {classes} classes), found {y.min()}..{y.max()}")
    return y.astype(np.int64)


def validate_target(spec: Spec, y_raw: object, n: int) -> NDArray[Any]:
    """Check ``y`` against what the spec's loss needs and cast it."""
    loss, classes = spec.loss.type, spec.output_width
    y = _as_array(y_raw, "y")
    if loss in ("nll", "cross_entropy") and y.ndim == 1:
        return _class_indices(y, n, classes, loss)
    if loss == "nll":
        return _class_indices(y, n, classes, loss)
    if y.shape != (n, classes):
        raise ValueError(f"data.y: {loss} needs a target shaped like the output, ({n}, "
                         f"{classes}), got {y.shape}")
    if loss in ("bce", "bce_with_logits", "cross_entropy"):
        _in_unit_interval(y, "y", loss)
    if loss == "kl_div" and not spec.loss.options.get("log_target", False) and y.min() < 0:
        raise ValueError("data.y: kl_div needs non-negative probabilities as target "
                         "(or set log_target), found negative values")
    return y.astype(spec.dtype)


def make_data(spec: Spec, x_raw: object, y_raw: object) -> Data:
    """Validate raw ``x`` and ``y`` (nested lists or arrays) against ``spec``."""
    x = _as_array(x_raw, "x")
    d = spec.input_shape[0]
    if x.ndim != 2 or x.shape[1] != d:
        raise ValueError(f"data.x: must have shape (N, {d}) (a batch of rows), got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("data.x: the batch is empty")
    with np.errstate(over="ignore"):  # an overflowing cast is named just below
        x, y = x.astype(spec.dtype), validate_target(spec, y_raw, x.shape[0])
    for name, array in (("x", x), ("y", y)):
        problem = array_problem(f"data.{name}", array, spec.dtype) if array.dtype.kind == "f" \
            else None
        if problem:
            raise ValueError(problem)
    return Data(x, y)


def load_data(path: str | Path, spec: Spec) -> Data:
    """Load a data file (a JSON object with ``x`` and ``y``) and validate it."""
    raw = load_json(path, "data")
    if not isinstance(raw, dict):
        raise ValueError(f"data {path}: must be a JSON object with 'x' and 'y'")
    for key in ("x", "y"):
        if key not in raw:
            raise ValueError(f"data {path}: missing field {key!r}")
    unknown = sorted(set(raw) - {"x", "y"})
    if unknown:
        raise ValueError(f"data {path}: unknown field {unknown[0]!r} (known: x, y)")
    return make_data(spec, raw["x"], raw["y"])
