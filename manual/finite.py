"""Values that are finite as JSON numbers but not in the spec's dtype.

``1e308`` is a fine float64 and ``inf`` in float32; ``1e-50`` becomes 0 in float32. Both
engines compute in the spec's dtype, so every number a spec or data file gives is checked
after the cast (a node's options when parsing reads them, once): a weight or data value must
stay finite, and an option must still satisfy its declaration (``celu``'s ``alpha`` must not
round to zero). The message names the field:
``layers[1] (leaky_relu): negative_slope 1e+39 overflows float32`` (a graph's node is
``node 'skip' (leaky_relu)``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from manual.options import Given, LayerOption, Real


def _cast(value: Any, dtype: str) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.asarray(value, dtype=np.float64).astype(dtype)


def array_problem(name: str, value: Any, dtype: str) -> str | None:
    """``"NAME overflows float32"`` when an array of finite numbers leaves ``dtype``'s range."""
    limit = float(np.finfo(dtype).max)
    try:
        cast = _cast(value, dtype)
    except OverflowError:  # a JSON integer beyond float64 itself
        cast = np.array([np.inf])
    if cast.size and not np.all(np.isfinite(cast)):
        return f"{name} overflows {dtype} (a value beyond ±{limit:.3g})"
    return None


def option_problem(declared: LayerOption | None, name: str, value: Any, dtype: str
                   ) -> str | None:
    """An option that overflows ``dtype``, or breaks its declaration once cast.

    A :class:`Real` is cast and checked again. A :class:`Given` value holding a float
    (attention's ``scale``) must stay finite; integers there are counts and shapes
    (``kernel_size``), which are never cast to the dtype.
    """
    if isinstance(value, bool):
        return None
    if isinstance(declared, Given):
        return array_problem(name, value, dtype) if _numbers(value, floats=True) else None
    if not isinstance(declared, Real):
        return None
    try:
        cast = float(_cast(value, dtype))
    except OverflowError:
        cast = math.inf
    if not np.isfinite(cast):
        return f"{name} {value!r} overflows {dtype}"
    problem = declared.check(cast)
    if problem and cast != value:
        return f"{name} {value!r} becomes {cast!r} in {dtype}, and then {problem}"
    return None


def _numbers(value: Any, floats: bool = False) -> bool:
    """A number or a (nested) list holding only numbers (never bools); with ``floats``, at
    least one of them a float."""
    stack, seen_float = [value], False
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, bool) or not isinstance(item, int | float):
            return False
        seen_float = seen_float or isinstance(item, float)
    return seen_float or not floats


def options_problem(declared: Mapping[str, LayerOption], options: Mapping[str, Any],
                    dtype: str, values: Collection[str] = ()) -> str | None:
    """The first of ``options`` (declared by ``declared``) that ``dtype`` cannot hold;
    ``values`` names the options that give a parameter's values (``linear``'s ``weight``)."""
    for name, value in options.items():
        if name in values:
            problem = array_problem(name, value, dtype) if _numbers(value) else None
        else:
            problem = option_problem(declared.get(name), name, value, dtype)
        if problem:
            return problem
    return None
