"""The cases of a layer check: configurations, special inputs, and the arrays drawn for them.

A :class:`Case` is one dtype, one value for each symbolic size (``"H"`` in an input shape
``(2, 3, "H", "H")``), the options a sweep sets, and at most one special input:

- ``kinks``: a third of the first input's elements set exactly to kink points (0 by default);
- ``ties``: the first input integer-valued in [-2, 2], so that maxima and sorts tie;
- ``extreme``: the first input uniform in ±1e4 (float64) or ±80 (float32, where exp stays
  finite): overflow in a naive exp or softplus;
- ``batch1``: batch size 1 in every input that carries the batch (see
  :mod:`reference.checks.batch`: the first input's leading symbol, or the inputs that share its
  leading size);
- ``odd``: every symbolic size set to an odd value above its sweep.

A declared domain (:mod:`reference.checks.domain`) keeps an input inside it in every draw. An
input is a shape to draw (sizes or symbols), an array used as given, :class:`Labels` (class
indices, no gradient) or a :class:`Target` (floats without a gradient: a regression target).
A neighbour case (:mod:`reference.checks.neighbours`) replaces options and input shapes.

Every array comes from its own named stream (:func:`manual.random.stream`): an input from
``(seed, "data", name)``, its redraw for a later step of a state check from ``(seed, "data",
"name@2")`` (or ``"name@then"``), the upstream gradient from ``(seed, "upstream", layer)``; so
a case draws the same values in both dtypes, and changing one input's shape does not change
another's values.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from manual.jsonable import encode
from manual.random import stream
from manual.spec import DTYPES
from reference.checks.domain import Domain

VALUE_SPECIALS = ("kinks", "ties", "extreme")
SHAPE_SPECIALS = ("batch1", "odd")
SPECIALS = VALUE_SPECIALS + SHAPE_SPECIALS
EXTREME = {"float64": 1e4, "float32": 80.0}
BATCH = "N"


@dataclass(frozen=True)
class Labels:
    """Class indices to draw for an input (a loss's target): integer, no gradient."""

    shape: tuple[int | str, ...]
    classes: int


@dataclass(frozen=True)
class Target:
    """A float input that gets no gradient (a regression loss's target): drawn as a shape is
    (inside its declared domain, if any), never given a special input."""

    shape: tuple[int | str, ...]


Shape = tuple[int | str, ...]
InputSpec = Shape | np.ndarray | Labels | Target


@dataclass
class Case:
    """One configuration of a layer check (see the module docstring)."""

    dtype: str
    sizes: dict[str, int] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    special: str = ""
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    neighbour: str = ""  # the change from the user's configuration (``pad=0``), if one

    def label(self) -> str:
        """``float64 H=5 stride=1 pad=0 ties``: nested option dicts are flattened one level;
        a neighbour is its dtype and its change (``float64 pad=0``)."""
        if self.neighbour:
            return f"{self.dtype} {self.neighbour}"
        parts = [self.dtype] + [f"{k}={v}" for k, v in self.sizes.items()]
        for key, value in self.overrides.items():
            if isinstance(value, Mapping):
                parts += [f"{k}={v}" for k, v in value.items()]
            else:
                parts.append(f"{key}={value}")
        return " ".join([*parts, *([self.special] if self.special else [])])

    def config(self) -> dict[str, Any]:
        """JSON-safe: what the record's ``options`` say about the case."""
        return dict(encode({**self.sizes, **self.overrides,
                            **({"special": self.special} if self.special else {}),
                            **({"neighbour": self.neighbour} if self.neighbour else {})}))


def special_names(special: bool | str | Iterable[str] | None) -> tuple[str, ...]:
    if special is True:
        return SPECIALS
    if not special:
        return ()
    names = (special,) if isinstance(special, str) else tuple(special)
    unknown = [s for s in names if s not in SPECIALS]
    if unknown:
        raise ValueError(f"special: unknown {unknown[0]!r}; choose from {', '.join(SPECIALS)}")
    return names


def symbols_of(inputs: Mapping[str, InputSpec]) -> list[str]:
    """The symbolic sizes used in ``inputs``' shapes, in order of appearance."""
    found: list[str] = []
    for spec in inputs.values():
        shape = spec.shape if isinstance(spec, Labels | Target) else spec
        if isinstance(shape, tuple):
            found += [s for s in shape if isinstance(s, str) and s not in found]
    return found


def expand(sweep: Mapping[str, Sequence[Any]] | None, dtypes: Sequence[str],
           special: tuple[str, ...], symbols: Sequence[str], batch: str | None = BATCH
           ) -> list[Case]:
    """Every case: dtype x sweep grid x (plain + value specials), and the shape specials on the
    grid's first configuration. ``batch`` is the symbol of the batch size, if it has one."""
    sweep = dict(sweep or {})
    for dtype in dtypes:
        if dtype not in DTYPES:
            raise ValueError(f"dtypes: {dtype!r} is not one of {', '.join(DTYPES)}")
    for symbol in symbols:
        if symbol not in sweep:
            raise ValueError(f"inputs: size {symbol!r} has no values in sweep")
    for key, values in sweep.items():
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"sweep[{key!r}]: must be a non-empty list of values")
    keys = list(sweep)
    grid = [dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(sweep[k] for k in keys))]
    cases = []
    for dtype in dtypes:
        for i, config in enumerate(grid):
            sizes = {k: int(v) for k, v in config.items() if k in symbols}
            overrides = {k: v for k, v in config.items() if k not in symbols}
            kinds = ["", *[s for s in VALUE_SPECIALS if s in special]]
            if i == 0:
                kinds += [s for s in SHAPE_SPECIALS if s in special]
            for kind in kinds:
                case_sizes = dict(sizes)
                if kind == "odd":
                    if not symbols:
                        continue
                    for k in symbols:
                        top = max(int(v) for v in sweep[k])
                        case_sizes[k] = top + 1 if top % 2 == 0 else top + 2
                if kind == "batch1" and batch in case_sizes:
                    case_sizes[batch] = 1
                cases.append(Case(dtype, case_sizes, overrides, kind))
    return cases


def resolve(shape: Shape, sizes: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(sizes[s] if isinstance(s, str) else int(s) for s in shape)


def draw(name: str, spec: InputSpec, case: Case, *, seed: int, step: str, first: bool,
         kinks: Sequence[float], domain: Domain | None = None) -> np.ndarray:
    """One input of ``case``: given arrays as they are (floats cast), shapes drawn.

    ``step`` (``""`` for the first call) names a later draw of a state check; ``first`` marks
    the layer's data input, which the value specials change; ``domain`` keeps the values
    inside the input's declared domain.
    """
    if isinstance(spec, np.ndarray):
        return spec.astype(case.dtype) if spec.dtype.kind == "f" else spec.copy()
    rng = stream(seed, "data", f"{name}@{step}" if step else name)
    if isinstance(spec, Labels):
        return rng.integers(0, spec.classes, size=resolve(spec.shape, case.sizes))
    target = isinstance(spec, Target)
    declared = spec.shape if isinstance(spec, Target) else spec
    shape = case.shapes.get(name) or resolve(declared, case.sizes)
    special = case.special if first and not target else ""
    if domain is not None:
        return _draw_inside(domain, name, rng, shape, special, kinks, case.dtype)
    values = rng.standard_normal(shape)
    if special == "kinks":
        chosen = rng.random(shape) < 1 / 3
        points = np.resize(np.asarray(kinks, dtype=np.float64), int(chosen.sum()))
        values[chosen] = points
    elif special == "ties":
        values = rng.integers(-2, 3, size=shape).astype(np.float64)
    elif special == "extreme":
        values = rng.uniform(-1.0, 1.0, size=shape) * EXTREME[case.dtype]
    return values.astype(case.dtype)


def _draw_inside(domain: Domain, name: str, rng: np.random.Generator, shape: tuple[int, ...],
                 special: str, kinks: Sequence[float], dtype: str) -> np.ndarray:
    """:func:`draw` for an input with a declared domain (kink points outside it dropped)."""
    values = domain.draw(rng, shape, name)
    if special == "kinks":
        points = np.asarray(kinks, dtype=np.float64)
        points = points[np.asarray(domain.inside(points), dtype=bool)]
        chosen = rng.random(shape) < 1 / 3
        if points.size:
            values[chosen] = np.resize(points, int(chosen.sum()))
    elif special == "ties":
        values = domain.ties(rng, shape, name)
    elif special == "extreme":
        values = domain.extreme(rng.uniform(-1.0, 1.0, size=shape) * EXTREME[dtype], rng, name)
    # Rounding to float32 may put a value on the domain's edge (1 - 1e-9 is 1): draw again.
    return domain.keep(values.astype(dtype), lambda n: domain.draw(rng, (n,), name).astype(
        dtype), name).reshape(shape).astype(dtype)
