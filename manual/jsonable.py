"""JSON for records: dataclasses to plain values, with non-finite floats written as text.

Strict JSON has no literal for NaN or infinity, so they are written as the strings
``"nan"``, ``"inf"`` and ``"-inf"`` and read back as floats. Both the manual engine's
records (gradient checks) and the harness's (:mod:`reference.core.records`) use these.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any

import numpy as np

NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def encode(value: Any) -> Any:
    """A JSON-safe copy: dataclasses to dicts, tuples and arrays to lists, non-finite floats to
    strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if isinstance(value, np.ndarray | np.generic):  # array-valued options of a user's layer
        return encode(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def decode_numbers(value: Any) -> Any:
    """Inverse of :func:`encode` for numeric content (a number or nested lists of numbers)."""
    if isinstance(value, list):
        return [decode_numbers(v) for v in value]
    if isinstance(value, str) and value in NONFINITE:
        return NONFINITE[value]
    return value


def decode_float(value: Any) -> float:
    """One number as :func:`encode` wrote it (``"inf"`` and friends included), as a float."""
    return float(decode_numbers(value))


def decode(tp: Any, value: Any) -> Any:
    """``value`` (decoded JSON, as :func:`encode` wrote it) read back as type ``tp``, guided by
    the type hints: dataclasses (fields left out keep their defaults), lists, tuples, dicts,
    optionals, floats (``"inf"`` and friends included) and ``Any`` (numbers, nested lists of
    numbers and anything else as it is)."""
    if value is None:
        return None
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = typing.get_type_hints(tp)
        return tp(**{f.name: decode(hints[f.name], value[f.name])
                     for f in dataclasses.fields(tp) if f.name in value})
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list:
        return [decode(args[0], v) for v in value]
    if origin is tuple:
        return tuple(decode(args[0] if args[-1] is Ellipsis else a, v)
                     for a, v in zip(args if args[-1] is not Ellipsis else [args[0]] * len(value),
                                     value, strict=True))
    if origin is dict:
        return {k: decode(args[1], v) for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return decode(inner[0], value) if len(inner) == 1 else decode_numbers(value)
    if tp is float:
        return decode_float(value)
    if tp is Any:
        return decode_numbers(value)
    return value


def dumps(record: Any, indent: int | None = 2) -> str:
    """``record`` as strict JSON (``allow_nan=False``: a stray NaN is an error, not output)."""
    return json.dumps(encode(record), indent=indent, allow_nan=False)
