"""Hypothesis strategies for the values a case runs on: floats inside an op's domain (its
kinks mixed in), arrays, targets of every kind a loss accepts, a spec's parameters and its data.

- :func:`parameters`: explicit weights and biases for a spec;
- :func:`datasets`: ``x`` inside the first op's domain (kink points included) and a target of
  a kind the loss accepts (class labels in range, probabilities in [0, 1], ...);
  :func:`edge_datasets` adds the edges of :mod:`reference.fuzz.edges`;
- :func:`targets`, :func:`floats`, :func:`arrays`, :func:`domain_values`: the pieces.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import manual
from manual.data import Data
from manual.registry import ACTIVATIONS, LOSSES, OpInfo
from manual.spec import Spec
from reference.core import sampling
from reference.fuzz import edges as edge

DEFAULT_DOMAIN = (-4.0, 4.0)


def bits(dtype: str) -> Literal[32, 64]:
    return 32 if dtype == "float32" else 64


@functools.cache
def floats(dtype: str, low: float, high: float) -> st.SearchStrategy[float]:
    """Finite floats of ``dtype`` in [low, high] (bounds rounded inward to the dtype)."""
    if dtype == "float32":
        low32, high32 = np.float32(low), np.float32(high)
        if low32 < low:
            low32 = np.nextafter(low32, np.float32(np.inf))
        if high32 > high:
            high32 = np.nextafter(high32, np.float32(-np.inf))
        low, high = float(low32), float(high32)
    return st.floats(low, high, width=bits(dtype), allow_nan=False, allow_infinity=False)


def parameters(spec: Spec, bound: float = 1.0) -> st.SearchStrategy[dict[str, np.ndarray]]:
    """Explicit values for every parameter of ``spec`` (the shapes its nodes' signatures give),
    each entry in ``[-bound, bound]``."""
    shapes = {f"{node.name}.{key}": slot.shape for node in spec.nodes
              for key, slot in node.signature.params.items()}
    elements = floats(spec.dtype, -bound, bound)
    return st.fixed_dictionaries(
        {name: hnp.arrays(spec.dtype, shape, elements=elements) for name, shape in
         shapes.items()})


def domain_values(op: OpInfo | None, dtype: str, options: Mapping[str, Any],
                   domain: tuple[float, float] | None = None) -> st.SearchStrategy[float]:
    """Floats in the op's domain, with its kink points (inside the domain) mixed in."""
    low, high = domain or (op.domain.inputs if op is not None else DEFAULT_DOMAIN)
    kinks = tuple(sorted(k for k in (op.domain.kinks(options) if op else ()) if low <= k <= high))
    return _values_with_kinks(dtype, low, high, kinks)


@functools.cache
def _values_with_kinks(dtype: str, low: float, high: float, kinks: tuple[float, ...]
                       ) -> st.SearchStrategy[float]:
    values = floats(dtype, low, high)
    return st.one_of(values, st.sampled_from(kinks)) if kinks else values


@functools.lru_cache(maxsize=4096)
def arrays(dtype: Any, shape: tuple[int, ...], elements: st.SearchStrategy[Any]
            ) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(dtype, shape, elements=elements)


def targets(
    kind: str, shape: tuple[int, int], dtype: str, options: Mapping[str, Any] | None = None,
) -> st.SearchStrategy[np.ndarray]:
    """A target of ``kind`` for an output of shape ``(N, C)`` (as
    :mod:`reference.core.sampling`)."""
    options = options or {}
    n, c = shape
    if kind == "real":
        return arrays(dtype, shape, floats(dtype, -4, 4))
    if kind == "probability":
        return arrays(dtype, shape, floats(dtype, 0, 1))
    if kind == "class_index":
        return arrays(np.int64, (n,), _class_labels(c))
    if kind not in ("class_probability", "distribution"):
        raise ValueError(f"kind: unknown target kind {kind!r}")

    def normalise(weights: np.ndarray) -> np.ndarray:
        rows = weights / weights.sum(axis=-1, keepdims=True)
        if kind == "distribution" and options.get("log_target", False):
            rows = np.log(rows)
        return rows.astype(dtype)

    return arrays(np.float64, shape, floats("float64", 0.01, 1.0)).map(normalise)


@functools.cache
def _class_labels(classes: int) -> st.SearchStrategy[int]:
    return st.integers(0, classes - 1)


def datasets(spec: Spec, max_batch: int = 32) -> st.SearchStrategy[Data]:
    """``x`` of shape ``(N, D)``, ``N`` in ``[1, max_batch]``, and a target for the loss.

    ``x`` lies in the domain of the first layer when it is an activation (its kink
    points included), else in [-4, 4].
    """
    return edge_datasets(spec, max_batch, edges=False).map(lambda pair: pair[0])


@st.composite
def edge_datasets(draw: st.DrawFn, spec: Spec, max_batch: int = 32, edges: bool = True,
                  soft: bool = False, aim: str | None = None
                  ) -> tuple[Data, tuple[str, ...]]:
    """As :func:`datasets`; with ``edges``, batch sizes 1 and
    :data:`~reference.fuzz.edges.LARGE_BATCH` on purpose and, half the time, soft
    targets that do not sum to 1 or hold zeros (always, with ``soft``, and soft targets
    whenever the loss takes them). Returns the data and the target edge classes.
    """
    n = draw(edge.batch_sizes(max_batch, edges))
    first = spec.layers[0] if spec.layers else None
    op = ACTIVATIONS.get(first.type) if first is not None else None
    options = dict(first.options) if (first is not None and op is not None) else {}
    shape = (n, spec.input_shape[0])
    rng = None
    if n >= edge.LARGE_BATCH:  # from a drawn seed: Hypothesis arrays this size cost seconds
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        low, high = op.domain.inputs if op is not None else DEFAULT_DOMAIN
        x = rng.uniform(low, high, shape)
        kinks = [k for k in (op.domain.kinks(options) if op else ()) if low <= k <= high]
        if kinks:  # as the drawn arrays: kink points mixed in
            x = np.where(rng.random(shape) < 0.25, rng.choice(kinks, shape), x)
        x = x.astype(spec.dtype)
    else:
        x = draw(arrays(spec.dtype, shape, domain_values(op, spec.dtype, options)))
    loss = LOSSES[spec.loss.type]
    ignored = spec.loss.options.get("ignore_index", -100)
    # PyTorch refuses an ignore_index with probability targets: draw class indices then.
    kinds = [k for k in loss.targets if ignored < 0 or k == "class_index"]
    soft_kinds = [k for k in kinds if k in ("class_probability", "distribution")]
    kind = soft_kinds[0] if soft and soft_kinds else draw(st.sampled_from(kinds))
    if rng is not None:
        y = sampling.target(kind, (n, spec.output_width), rng, spec.dtype, spec.loss.options)
    else:
        y = draw(targets(kind, (n, spec.output_width), spec.dtype, spec.loss.options))
    target_edges: tuple[str, ...] = ()
    if edges and kind in soft_kinds and (soft or draw(edge.roll(2))):
        y, target_edges = draw(edge.edge_targets(y, kind, spec.loss.options, aim))
    if ignored >= 0 and kind == "class_index":  # hit the ignored class, not by luck alone
        y = np.where(draw(hnp.arrays(np.bool_, (n,))), ignored, y)
    # Every target ignored makes a mean of no terms, NaN in both engines: not a comparison.
    assume(ignored < 0 or kind != "class_index" or bool(np.any(y != ignored))
           or spec.loss.options.get("reduction", "mean") != "mean")
    return manual.make_data(spec, x, y), target_edges
