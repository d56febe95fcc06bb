"""Values that are finite as JSON numbers but not in the spec's dtype.

``1e308`` is a fine float64 and ``inf`` in float32; ``1e-50`` becomes 0 in float32. Both
engines compute in the spec's dtype, so every number a spec or data file gives is checked
after the cast: a weight or data value must stay finite, and an option must still satisfy
its declaration (``celu``'s ``alpha`` must not round to zero). The message names the field:
``layers[1] (leaky_relu): negative_slope 1e+39 overflows float32``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from manual.options import Real

if TYPE_CHECKING:
    from manual.registry import OpInfo
    from manual.spec import Spec


def _cast(value: Any, dtype: str) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.asarray(value, dtype=np.float64).astype(dtype)


def array_problem(name: str, value: Any, dtype: str) -> str | None:
    """``"NAME overflows float32"`` when an array of finite numbers leaves ``dtype``'s range."""
    cast = _cast(value, dtype)
    if cast.size and not np.all(np.isfinite(cast)):
        limit = float(np.finfo(dtype).max)
        return f"{name} overflows {dtype} (a value beyond ±{limit:.3g})"
    return None


def option_problem(op: OpInfo, name: str, value: Any, dtype: str) -> str | None:
    """An option of ``op`` that overflows ``dtype``, or breaks its declaration once cast."""
    declared = op.options.get(name)
    if not isinstance(declared, Real) or isinstance(value, bool):
        return None
    cast = float(_cast(value, dtype))
    if not np.isfinite(cast):
        return f"{name} {value!r} overflows {dtype}"
    problem = declared.check(cast)
    if problem and cast != value:
        return f"{name} {value!r} becomes {cast!r} in {dtype}, and then {problem}"
    return None


def _options_problem(op: OpInfo, options: Mapping[str, Any], dtype: str) -> str | None:
    for name, value in options.items():
        problem = option_problem(op, name, value, dtype)
        if problem:
            return problem
    return None


def check_spec(spec: Spec) -> None:
    """Raise a ``ValueError`` naming the layer and field of the first value ``spec.dtype``
    cannot hold."""
    from manual.registry import ACTIVATIONS, LOSSES

    for index, layer in enumerate(spec.layers):
        where = f"layers[{index}] ({layer.type})"
        if layer.type == "linear":
            for key in ("weight", "bias"):
                given = layer.options.get(key)
                problem = array_problem(key, given, spec.dtype) if isinstance(given, list) \
                    else None
                if problem:
                    raise ValueError(f"{where}: {problem}")
        elif layer.type in ACTIVATIONS:
            problem = _options_problem(ACTIVATIONS[layer.type], layer.options, spec.dtype)
            if problem:
                raise ValueError(f"{where}: {problem}")
    problem = _options_problem(LOSSES[spec.loss.type], spec.loss.options, spec.dtype)
    if problem:
        raise ValueError(f"loss ({spec.loss.type}): {problem}")
