"""Hypothesis strategies for one registry op alone: options, inputs (with an extreme-value
mode for the ops whose domain is the whole line), targets and upstream gradients.

- :func:`op_inputs` / :func:`op_cases`: one op alone, with an extreme-value mode (magnitudes
  up to :data:`EXTREME_LIMIT`) for the ops whose domain is the whole line;
- :func:`stable_ops`: the ops that mode covers.

Example::

    from hypothesis import given
    from reference.fuzz import ops

    @given(ops.op_cases(extreme=True))
    def test_agrees(case): ...
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from manual.registry import OPS, OpInfo
from manual.spec import DTYPES
from reference.fuzz import edges as edge
from reference.fuzz.strategies import op_options
from reference.fuzz.values import arrays, domain_values, floats, targets

# Magnitudes the extreme-value mode reaches: exp(80) is finite in float32, and the
# stable formulas never take exp of a positive number, so 1e4 is safe in float64.
EXTREME_LIMIT: Mapping[str, float] = {"float32": 80.0, "float64": 1e4}
# Shift-invariant ops (Domain.shift_invariant: a row plus a constant gives the same softmax)
# are also drawn with every row offset this far: past exp's overflow by orders of magnitude,
# and where the low bits of a large maximum must not leak into the result (log-softmax as
# (x - m) - log s).
EXTREME_OFFSET: Mapping[str, float] = {"float32": 1e3, "float64": 1e6}

def stable_ops() -> list[str]:
    """Ops whose domain straddles zero on both sides: the extreme-value mode applies to them.

    (``bce``, ``nll`` and ``kl_div`` take probabilities or log-probabilities.)
    """
    return [name for name, op in OPS.items() if op.domain.inputs[0] < 0 < op.domain.inputs[1]]


def op_inputs(op: OpInfo | str, dtype: str, shape: tuple[int, int], options: Mapping[str, Any]
              | None = None, *, extreme: bool = False) -> st.SearchStrategy[np.ndarray]:
    """An input for ``op`` alone; ``extreme`` widens the domain to ``±EXTREME_LIMIT[dtype]``
    and, for a shift-invariant op, offsets each row by 0 or ``±EXTREME_OFFSET[dtype]``."""
    op = OPS[op] if isinstance(op, str) else op
    domain = None
    if extreme:
        if op.name not in stable_ops():
            raise ValueError(f"op: {op.name!r} has a bounded domain {op.domain.inputs}; the "
                             f"extreme-value mode covers {', '.join(stable_ops())}")
        limit = EXTREME_LIMIT[dtype]
        domain = (-limit, limit)
    elements = domain_values(op, dtype, options or {}, domain)
    arrays = hnp.arrays(dtype, shape, elements=elements)
    if not extreme or not op.domain.shift_invariant:
        return arrays
    big = EXTREME_OFFSET[dtype]
    offsets = hnp.arrays(dtype, (shape[0], 1), elements=st.sampled_from((0.0, big, -big)))
    return st.tuples(arrays, offsets).map(lambda pair: (pair[0] + pair[1]).astype(dtype))


@dataclass(frozen=True)
class OpFuzzCase:
    """One op alone on a drawn input (see :func:`op_cases`)."""

    op: str
    dtype: str
    options: dict[str, Any]
    x: np.ndarray
    target: np.ndarray | None
    dy: np.ndarray


@functools.cache
def _saturated_probabilities(dtype: str, low: float, high: float) -> st.SearchStrategy[float]:
    """0, 1 and the floats next to them (beside the domain ``[low, high]``): where bce's
    clamps (log >= -100, x(1 - x) >= 1e-12) decide the result."""
    tiny = float(np.finfo(dtype).tiny)
    below_one = float(np.nextafter(np.array(1, dtype), np.array(0, dtype)))
    return st.one_of(floats(dtype, low, high),
                     st.sampled_from((0.0, tiny, 1e-30, below_one, 1.0)))


@st.composite
def op_cases(draw: st.DrawFn, *, ops: Collection[str] | None = None,
             dtypes: Sequence[str] = DTYPES, extreme: bool = False,
             edges: bool = True) -> OpFuzzCase:
    """A registry op, options, an input (extreme magnitudes if asked), target and upstream.

    With ``edges``, the inputs of a loss on probabilities (``bce``) include saturated ones (0,
    1 and their neighbours), and soft targets, half the time, rows off the simplex or with
    zeros.
    """
    pool = sorted(ops if ops is not None else (stable_ops() if extreme else OPS))
    op = OPS[draw(st.sampled_from(pool))]
    dtype = draw(st.sampled_from(list(dtypes)))
    options = draw(op_options(op))
    shape = (draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    on_probabilities = op.loss is not None and op.loss.needs == "probabilities"
    if edges and on_probabilities and draw(edge.roll(2)):
        x = draw(arrays(dtype, shape, _saturated_probabilities(dtype, *op.domain.inputs)))
    else:
        x = draw(op_inputs(op, dtype, shape, options, extreme=extreme))
    target = None
    if op.kind == "loss":
        kind = draw(st.sampled_from(op.targets))
        target = draw(targets(kind, shape, dtype, options))
        if edges and draw(edge.roll(2)):
            target, _ = draw(edge.edge_targets(target, kind, options))
    # The upstream gradient has the output's shape, which only the op knows (a loss with
    # reduction 'none' gives (N,) or (N, C)); the registry's forward tells us.
    with np.errstate(all="ignore"):
        args = (x.copy(),) if target is None else (x.copy(), target)
        out_shape = np.shape(op.forward(*args, **options)[0])
    dy = draw(hnp.arrays(dtype, out_shape, elements=floats(dtype, -2, 2)))
    return OpFuzzCase(op.name, dtype, options, x, target, dy)
