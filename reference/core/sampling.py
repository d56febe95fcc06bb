"""Seeded random inputs and targets inside each op's domain (numpy only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from manual.registry import OpInfo

TARGET_KINDS = ("real", "probability", "class_index", "class_probability", "distribution")


def op_input(
    op: OpInfo, shape: tuple[int, ...], rng: np.random.Generator, dtype: str
) -> np.ndarray:
    """Uniform draws over the op's domain, in ``dtype``."""
    low, high = op.domain.inputs
    return rng.uniform(low, high, size=shape).astype(dtype)


def _rows_of_probabilities(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    z = rng.standard_normal(shape)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def target(
    kind: str, shape: tuple[int, ...], rng: np.random.Generator, dtype: str,
    options: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """A target of ``kind`` for an output of ``shape`` (``(N, C)``).

    ``distribution`` is a row of probabilities, or its log when the loss's
    options say ``log_target`` (``kl_div``).
    """
    options = options or {}
    if kind == "real":
        return rng.standard_normal(shape).astype(dtype)
    if kind == "probability":
        return rng.uniform(0, 1, size=shape).astype(dtype)
    if kind == "class_index":
        return rng.integers(0, shape[-1], size=shape[:-1]).astype(np.int64)
    probabilities = _rows_of_probabilities(shape, rng)
    if kind == "distribution" and options.get("log_target", False):
        return np.log(probabilities).astype(dtype)
    if kind in ("class_probability", "distribution"):
        return probabilities.astype(dtype)
    raise ValueError(f"unknown target kind {kind!r} (known: {', '.join(TARGET_KINDS)})")
