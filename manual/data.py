"""Input data for a spec: each graph input (``x`` for a chain, ``(N, *shape)``) and ``y``.

Validated once, at load, against the spec: shapes, finiteness, class labels in
range, probabilities in [0, 1]. The target is checked by :func:`manual.targets.validate_target`
against the output with its batch, ``(N, *spec.output_shape)``: class losses read the classes
on dim 1, so index targets are ``(N, d1, ...)``. Arrays come back in the spec's dtype (class
indices and ``index`` inputs as int64).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from manual.finite import array_problem
from manual.parse import load_json
from manual.registry import LOSSES
from manual.spec import Spec
from manual.targets import as_array, validate_target


@dataclass(frozen=True)
class Data:
    """``x`` is the spec's first graph input, ``others`` the rest by name, ``y`` the target."""

    x: NDArray[Any]
    y: NDArray[Any]
    others: Mapping[str, NDArray[Any]] = field(default_factory=dict)

    def feed(self, spec: Spec) -> dict[str, NDArray[Any]]:
        """Every graph input by name."""
        return {spec.inputs[0].name: self.x, **self.others}


def _cast(array: NDArray[Any], name: str, dtype: str) -> NDArray[Any]:
    """``array`` in ``dtype``; a value finite as given but not in ``dtype`` is refused."""
    with np.errstate(over="ignore"):  # an overflowing cast is named just below
        cast = array.astype(dtype)
    problem = array_problem(name, cast, dtype)
    if problem:
        raise ValueError(problem)
    return cast


def _graph_input(spec: Spec, index: int, raw: object, field_name: str, n: int | None
                 ) -> NDArray[Any]:
    item = spec.inputs[index]
    x = as_array(raw, f"data.{field_name}")
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
    return _cast(x, f"data.{field_name}", spec.dtype)


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
    with np.errstate(over="ignore"):  # an overflowing cast is named by _cast
        y = validate_target(LOSSES[spec.loss.type], spec.loss.options,
                            (x.shape[0], *spec.output_shape), y_raw, spec.dtype)
    return Data(x, y if y.dtype.kind != "f" else _cast(y, "data.y", spec.dtype), rest)


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
