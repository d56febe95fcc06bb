"""Declarations of op options: their defaults and what values they accept.

The registry declares each op's options with these, and spec validation uses
them to reject an unknown option or a bad value with a message that names the
layer and the option.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Real:
    """A finite real number, optionally bounded (``low < value`` when ``open_low``)."""

    default: float
    low: float = -math.inf
    high: float = math.inf
    open_low: bool = False
    nonzero: bool = False

    def check(self, value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number, got {value!r}"
        if not math.isfinite(value):
            return f"must be finite, got {value!r}"
        if value < self.low or (self.open_low and value == self.low) or value > self.high:
            left = "(" if self.open_low else "["
            return f"must lie in {left}{self.low}, {self.high}], got {value!r}"
        if self.nonzero and value == 0:
            return "must not be zero"
        return None


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of strings."""

    default: str
    choices: tuple[str, ...]

    def check(self, value: object) -> str | None:
        if value not in self.choices:
            return f"must be one of {', '.join(map(repr, self.choices))}, got {value!r}"
        return None


@dataclass(frozen=True)
class Flag:
    """A boolean."""

    default: bool

    def check(self, value: object) -> str | None:
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"


@dataclass(frozen=True)
class Int:
    """An integer (never a bool), at least ``low``; ``required`` is checked by the signature."""

    default: int | None
    low: int = 0
    required: bool = False

    def check(self, value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer, got {value!r}"
        if value < self.low:
            return f"must be at least {self.low}, got {value!r}"
        return None


@dataclass(frozen=True)
class Ints:
    """An integer, or a list of integers (one per spatial dimension: the signature checks the
    length and stores the tuple), each at least ``low``: ``kernel_size``, ``stride``.

    ``words`` are strings accepted too (``padding``'s ``"same"``, ``"valid"``); a ``None``
    default accepts null (pooling's stride: the kernel size), and ``empty`` an empty list (the
    same, as in PyTorch).
    """

    default: object = None
    low: int = 1
    words: tuple[str, ...] = ()
    empty: bool = False
    required: bool = False

    def check(self, value: object) -> str | None:
        if isinstance(value, str) and value in self.words:
            return None
        if value is None and self.default is None and not self.required:
            return None
        items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(items, list) or not (items or self.empty) or any(
                isinstance(v, bool) or not isinstance(v, int) for v in items):
            also = "".join(f", {w!r}" for w in self.words)
            return f"must be an integer or a list of integers{also}, got {value!r}"
        if any(v < self.low for v in items):
            return f"must be at least {self.low}, got {value!r}"
        return None


@dataclass(frozen=True)
class Given:
    """A value whose check needs the input shapes: the layer's signature validates it."""

    default: object = None
    required: bool = False

    def check(self, value: object) -> str | None:
        return None


@dataclass(frozen=True)
class Values:
    """An array of finite numbers given as a (nested) list, or null: a loss's class ``weight``,
    ``pos_weight``. Its shape is checked against the input at the first call."""

    default: None = None

    def check(self, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, list) or not value:
            return f"must be a non-empty list of numbers or null, got {value!r}"
        items = list(value)
        while items and all(isinstance(v, list) for v in items):
            items = [w for v in items for w in v]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                   for v in items):
            return f"must be a (nested) list of finite numbers, got {value!r}"
        return None


Option = Real | Choice | Flag | Int | Values

REDUCTION = Choice("mean", ("mean", "sum", "none"))

LayerOption = Real | Choice | Flag | Int | Ints | Given | Values
