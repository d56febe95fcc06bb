"""The batched comparison (``compare_all``) gives exactly ``compare_arrays``'s records.

``compare_runs`` (so ``compare_network`` and every protocol) judges a case's tensors in one
batch; these tests hold the batch to the one-tensor rule on random and hostile inputs, field
by field (through JSON, so that NaN, the sign of a zero and every problem string count).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from manual.registry import Tolerance
from reference.core.compare import compare_all, compare_arrays
from reference.core.names import TensorName
from reference.core.records import dumps

TOLERANCES = [Tolerance(1e-7, 1e-7, "float64"), Tolerance(1.3e-6, 1e-5, "float32"),
              Tolerance(0.5, 0.25, "wide"), Tolerance(0.0, 0.0, "exact"),
              Tolerance(1e-3, 0.0, "no atol")]
HOSTILE = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 1e-300, 1e308, -1e308, 5e-324]


def one_by_one(items: list[tuple[Any, Any, Any, Tolerance]], keep_values: bool,
               equal_nan: bool) -> list[str]:
    return [dumps(compare_arrays(name, got, want, tolerance, keep_values, equal_nan=equal_nan),
                  None) for name, got, want, tolerance in items]


def batched(items: list[tuple[Any, Any, Any, Tolerance]], keep_values: bool,
            equal_nan: bool) -> list[str]:
    return [dumps(record, None) for record in compare_all(items, keep_values,
                                                          equal_nan=equal_nan)]


def random_items(rng: np.random.Generator, hostile: bool) -> list[tuple[Any, Any, Any,
                                                                        Tolerance]]:
    items: list[tuple[Any, Any, Any, Tolerance]] = []
    for i in range(int(rng.integers(1, 25))):
        shape = tuple(int(d) for d in rng.integers(0 if hostile else 1, 5,
                                                   size=int(rng.integers(0, 4))))
        dtype = rng.choice(["float64", "float32"] + (["int64", "bool"] if hostile else []))
        want = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4)
        tolerance = TOLERANCES[int(rng.integers(len(TOLERANCES)))]
        # errors around the tolerance: well inside, near the boundary and well outside
        scale = tolerance.atol + tolerance.rtol * np.abs(want)
        got = want + scale * rng.choice([0.0, 0.5, 0.999, 1.001, 3.0], size=shape) \
            * rng.choice([-1.0, 1.0], size=shape)
        if hostile:
            picks = rng.random(shape) < 0.3
            want = np.where(picks, rng.choice(HOSTILE, size=shape), want)
            picks = rng.random(shape) < 0.3
            got = np.where(picks, rng.choice(HOSTILE, size=shape), got)
            zeros = rng.random(shape) < 0.2
            want = np.where(zeros, 0.0, want)
        with np.errstate(all="ignore"):
            got, want = got.astype(dtype), want.astype(dtype)
            if hostile and rng.random() < 0.15:
                got = got.astype("float32" if dtype != "float32" else "float64")
        if hostile and rng.random() < 0.1:
            got = np.zeros((*shape, 2), dtype=dtype)
        name: Any = TensorName("backward", f"n{i}", "weight") if i % 2 else f"forward: t{i}"
        items.append((name, got, want, tolerance))
    return items


@pytest.mark.parametrize("hostile", [False, True], ids=["random", "hostile"])
@pytest.mark.parametrize("equal_nan", [False, True], ids=["nan-fails", "equal_nan"])
def test_batch_gives_compare_arrays_records(hostile: bool, equal_nan: bool) -> None:
    rng = np.random.default_rng(17 + 2 * hostile + equal_nan)
    for trial in range(60):
        items = random_items(rng, hostile)
        keep = bool(trial % 3 == 0)
        with np.errstate(all="ignore"):
            assert batched(items, keep, equal_nan) == one_by_one(items, keep, equal_nan)


def boundary_items() -> list[tuple[Any, Any, Any, Tolerance]]:
    """Each case of the rule, one tensor each, all in one batch."""
    wide = Tolerance(0.5, 0.25, "wide")  # at want = 1 the bound is exactly 0.75
    return [
        ("at the bound", np.array([1.75, 0.25]), np.array([1.0, 0.0]), wide),
        ("just past", np.array([np.nextafter(1.75, 2.0)]), np.array([1.0]), wide),
        ("nan both", np.array([[1.0, np.nan], [np.nan, 2.0]]),
         np.array([[1.0, np.nan], [np.nan, 2.0]]), wide),
        ("nan one side", np.array([np.nan, 1.0]), np.array([1.0, np.nan]), wide),
        ("inf same", np.array([np.inf, -np.inf]), np.array([np.inf, -np.inf]), wide),
        ("inf opposite", np.array([np.inf]), np.array([-np.inf]), wide),
        ("inf against finite", np.array([1.0, np.inf]), np.array([1.0, 3.0]), wide),
        ("zeros in want", np.array([0.0, 1e-8, 0.0]), np.array([0.0, 0.0, -0.0]),
         Tolerance(1e-7, 1e-7, "float64")),
        ("exact tolerance", np.array([0.0, 1.0]), np.array([0.0, 1.0]),
         Tolerance(0.0, 0.0, "exact")),
        ("empty", np.zeros((0, 3)), np.zeros((0, 3)), wide),
        ("shape", np.zeros((3, 2)), np.zeros((2, 3)), wide),
        ("dtype", np.zeros(2, np.float32), np.zeros(2), wide),
        ("missing", None, np.zeros(2), wide),
        ("scalar", np.float32(2.0), np.float32(2.5), wide),
        ("ties for worst", np.array([2.0, 2.0, 0.0]), np.array([1.0, 1.0, 0.0]), wide),
        (TensorName("edge", "sum", "act1", edge=1), np.ones((2, 2)), np.ones((2, 2)), wide),
    ]


@pytest.mark.parametrize("equal_nan", [False, True], ids=["nan-fails", "equal_nan"])
def test_batch_agrees_on_every_case_of_the_rule(equal_nan: bool) -> None:
    items = boundary_items()
    with np.errstate(all="ignore"):
        assert batched(items, True, equal_nan) == one_by_one(items, True, equal_nan)
        records = compare_all(items, equal_nan=equal_nan)
    verdicts = {str(item[0]): record.passed for item, record in zip(items, records,
                                                                     strict=True)}
    assert verdicts["at the bound"] and not verdicts["just past"]
    assert verdicts["nan both"] is equal_nan and not verdicts["nan one side"]
    assert verdicts["inf same"] and not verdicts["inf opposite"]
    assert not verdicts["shape"] and not verdicts["dtype"] and verdicts["empty"]
    assert records[-2].worst_index == [0]  # the first of tied worst elements, as np.argmax


def test_batch_of_one_and_of_none() -> None:
    items = boundary_items()
    for item in items:
        with np.errstate(all="ignore"):
            assert batched([item], False, False) == one_by_one([item], False, False)
    assert compare_all([]) == []
