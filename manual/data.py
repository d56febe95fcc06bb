"""Input data for a spec: each graph input (``x`` for a chain, ``(N, *shape)``) and ``y``.

Validated once, at load, against the spec: shapes, finiteness, class labels in
range, probabilities in [0, 1]. Arrays come back in the spec's dtype (class
indices and ``index`` inputs as int64).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from manual.spec import Spec, load_json


@dataclass(frozen=True)
class Data:
    """``x`` is the spec's first graph input, ``others`` the rest by name, ``y`` the target."""

    x: NDArray[Any]
    y: NDArray[Any]
    others: Mapping[str, NDArray[Any]] = field(default_factory=dict)

    def feed(self, spec: Spec) -> dict[str, NDArray[Any]]:
        """Every graph input by name."""
        return {spec.inputs[0].name: self.x, **self.others}


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


def _class_indices(y: NDArray[Any], n: int, classes: int, loss: str,
                   rest: tuple[int, ...] = ()) -> NDArray[Any]:
    if y.shape != (n, *rest):
        raise ValueError(f"data.y: {loss} needs {n} class indices (shape {(n, *rest)}) or "
                         f"probabilities of shape {(n, classes, *rest)}, got shape {y.shape}")
    if y.dtype.kind == "f":
        raise ValueError(f"data.y: {loss} class indices must be integers, got {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise ValueError(f"data.y: {loss} class indices must lie in [0, {classes - 1}] "
                         f"(the output has {classes} classes), found {y.min()}..{y.max()}")
    return y.astype(np.int64)


def validate_target(spec: Spec, y_raw: object, n: int) -> NDArray[Any]:
    """Check ``y`` against what the spec's loss needs and cast it."""
    loss, classes, out = spec.loss.type, spec.output_width, spec.output_shape
    y = _as_array(y_raw, "y")
    if loss in ("nll", "cross_entropy") and y.ndim == len(out):
        return _class_indices(y, n, classes, loss, out[1:])
    if loss == "nll":
        return _class_indices(y, n, classes, loss, out[1:])
    if y.shape != (n, *out):
        raise ValueError(f"data.y: {loss} needs a target shaped like the output, "
                         f"{(n, *out)}, got {y.shape}")
    if loss in ("bce", "bce_with_logits", "cross_entropy"):
        _in_unit_interval(y, "y", loss)
    if loss == "kl_div" and not spec.loss.options.get("log_target", False) and y.min() < 0:
        raise ValueError("data.y: kl_div needs non-negative probabilities as target "
                         "(or set log_target), found negative values")
    return y.astype(spec.dtype)


def _graph_input(spec: Spec, index: int, raw: object, field_name: str, n: int | None
                 ) -> NDArray[Any]:
    item = spec.inputs[index]
    x = _as_array(raw, field_name)
    if x.ndim != len(item.shape) + 1 or x.shape[1:] != item.shape:
        want = "(N, " + ", ".join(map(str, item.shape)) + ")"
        rows = " (a batch of rows)" if len(item.shape) == 1 else ""
        raise ValueError(f"data.{field_name}: must have shape {want}{rows}, got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"data.{field_name}: the batch is empty")
    if n is not None and x.shape[0] != n:
        raise ValueError(f"data.{field_name}: has {x.shape[0]} samples, but data.x has {n}")
    if item.kind == "index":
        if x.dtype.kind == "f" or (x.size and x.min() < 0):
            raise ValueError(f"data.{field_name}: input {item.name!r} holds indices: "
                             f"non-negative integers")
        return x.astype(np.int64)
    return x.astype(spec.dtype)


def make_data(spec: Spec, x_raw: object, y_raw: object,
              others: Mapping[str, object] | None = None) -> Data:
    """Validate raw inputs and ``y`` (nested lists or arrays) against ``spec``.

    ``x_raw`` is the first graph input; ``others`` gives the rest by name.
    """
    x = _graph_input(spec, 0, x_raw, "x", None)
    others = dict(others or {})
    missing = [i.name for i in spec.inputs[1:] if i.name not in others]
    if missing:
        raise ValueError(f"data: missing input {missing[0]!r}")
    rest = {item.name: _graph_input(spec, index, others[item.name], item.name, x.shape[0])
            for index, item in enumerate(spec.inputs) if index}
    return Data(x, validate_target(spec, y_raw, x.shape[0]), rest)


def load_data(path: str | Path, spec: Spec) -> Data:
    """Load a data file (a JSON object with ``x`` and ``y``) and validate it."""
    raw = load_json(path, "data")
    names = [item.name for item in spec.inputs]
    if not isinstance(raw, dict):
        raise ValueError(f"data {path}: must be a JSON object with 'x' and 'y'")
    # Each input by its name; "x" also names the first one (a chain's input is "input").
    keys = dict.fromkeys(names, "")
    if "x" not in keys:
        keys = {"x" if i == 0 else n: n for i, n in enumerate(names)}
        if names[0] in raw and "x" not in raw:
            raw = {("x" if k == names[0] else k): v for k, v in raw.items()}
    else:
        keys = {n: n for n in names}
    for key in (*keys, "y"):
        if key not in raw:
            raise ValueError(f"data {path}: missing field {key!r}")
    unknown = sorted(set(raw) - {*keys, "y"})
    if unknown:
        raise ValueError(f"data {path}: unknown field {unknown[0]!r} "
                         f"(known: {', '.join(sorted({*keys, 'y'}))})")
    first, *rest = keys
    return make_data(spec, raw[first], raw["y"], {keys[k]: raw[k] for k in rest})
