r"""Input domains for a layer check: where a user's layer is defined, honoured by every draw.

``check_layer(..., domain={"x": "nonzero"})`` keeps ``x`` inside its domain in the plain draw
and in the special inputs: the kink points outside it are dropped, the tied values are the
integers in [-2, 2] inside it (or, where there are none, a few values drawn inside), and the
extremes are the largest magnitudes inside it (mirrored, or the ends of an interval). A
domain is one of

- ``"nonzero"``: :math:`x \ne 0` (a pole at 0, like :math:`1/x`);
- ``"positive"``: :math:`x > 0` (a log, a square root);
- ``(lo, hi)``: the open interval :math:`lo < x < hi` (a probability: ``(0, 1)``);
- a callable ``inside(values) -> bool array``: any other set, drawn by rejection.

Without a declared domain every real is in it; a case where PyTorch itself is not finite at
finite inputs is then counted as outside the reference's domain
(:class:`reference.checks.twin.Outside`), never as a failure of the user's code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

# Rejection sampling gives up after this many rounds (a domain that is almost empty).
ROUNDS = 100
NAMED = ("nonzero", "positive")


@dataclass(frozen=True)
class Domain:
    """Where one input is defined: a predicate, and the bounds of an interval if it is one."""

    inside: Callable[[np.ndarray], np.ndarray]
    label: str
    lo: float = -np.inf
    hi: float = np.inf

    @property
    def bounded(self) -> bool:
        return bool(np.isfinite(self.lo) and np.isfinite(self.hi))

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...], name: str) -> np.ndarray:
        """Values inside the domain: uniform on a bounded interval, normal (folded onto the
        positive side for ``lo >= 0``) elsewhere, anything outside drawn again."""
        def one(count: int) -> np.ndarray:
            if self.bounded:
                return rng.uniform(self.lo, self.hi, size=count)
            values = rng.standard_normal(count)
            return np.abs(values) + self.lo if self.lo >= 0 and np.isfinite(self.lo) else values

        values = one(int(np.prod(shape)))
        return self.keep(values, one, name).reshape(shape)

    def keep(self, values: np.ndarray, again: Callable[[int], np.ndarray], name: str
             ) -> np.ndarray:
        """``values`` with those outside the domain replaced by draws of ``again``."""
        values = np.array(values, dtype=np.float64).reshape(-1)
        for round_ in range(ROUNDS):
            out = ~np.asarray(self.inside(values), dtype=bool)
            if not out.any():
                return values
            # Widen an unbounded draw every ten rounds: a set in the tails (x > 2) is reached.
            wider = 1.0 if self.bounded else 2.0 ** (round_ // 10)
            values[out] = again(int(out.sum())) * wider
        raise ValueError(f"domain[{name!r}]: no values inside {self.label} after {ROUNDS} "
                         "rounds of drawing")

    def ties(self, rng: np.random.Generator, shape: tuple[int, ...], name: str) -> np.ndarray:
        """Tied values: the integers of [-2, 2] inside the domain, else three inside draws."""
        pool = np.arange(-2.0, 3.0)
        pool = pool[np.asarray(self.inside(pool), dtype=bool)]
        if pool.size == 0:
            pool = self.draw(rng, (3,), name)
        return rng.choice(pool, size=shape)

    def extreme(self, values: np.ndarray, rng: np.random.Generator, name: str) -> np.ndarray:
        """The extreme draw (uniform in ±E) kept inside: mirrored where that is inside, the
        ends of a bounded interval for one, inside draws for what is left."""
        if self.bounded:
            width = self.hi - self.lo
            near = rng.uniform(1e-4 * width, 1e-3 * width, size=values.shape)
            ends = np.where(rng.random(values.shape) < 0.5, self.lo + near, self.hi - near)
            return self.keep(ends, lambda n: self.draw(rng, (n,), name), name).reshape(
                values.shape)
        flipped = np.where(np.asarray(self.inside(values), dtype=bool), values, -values)
        return self.keep(flipped, lambda n: self.draw(rng, (n,), name), name).reshape(
            values.shape)


def domain_of(name: str, spec: Any) -> Domain:
    """A user's declaration as a :class:`Domain`; a clear error naming the input otherwise."""
    if spec == "nonzero":
        return Domain(lambda v: v != 0, "x != 0")
    if spec == "positive":
        return Domain(lambda v: v > 0, "x > 0", lo=0.0)
    if isinstance(spec, tuple) and len(spec) == 2 and all(
            isinstance(b, int | float) and not isinstance(b, bool) for b in spec):
        lo, hi = float(spec[0]), float(spec[1])
        if not lo < hi:
            raise ValueError(f"domain[{name!r}]: the interval {spec} is empty (lo >= hi)")
        return Domain(lambda v: (v > lo) & (v < hi), f"({lo:g}, {hi:g})", lo=lo, hi=hi)
    if callable(spec):
        return Domain(lambda v: np.asarray(spec(v), dtype=bool), getattr(spec, "__name__",
                                                                            "the predicate"))
    raise ValueError(f"domain[{name!r}]: must be 'nonzero', 'positive', an interval (lo, hi) "
                     f"or a callable values -> bool array, got {spec!r}")


def domains_of(declared: Mapping[str, Any] | None, names: list[str]) -> dict[str, Domain]:
    """Every declared domain by input name (an unknown input is an error)."""
    found = {}
    for name, spec in (declared or {}).items():
        if name not in names:
            raise ValueError(f"domain[{name!r}]: no such input (inputs: {', '.join(names)})")
        found[name] = domain_of(name, spec)
    return found
