"""Sweeps: every case of a layer check, run, and a Hypothesis strategy over them.

:func:`check_layer` runs :func:`all_cases`: :func:`reference.checks.cases.expand`'s cases
(dtype x sweep grid x special inputs) and, unless a sweep is given (or ``neighbours=False``),
the neighbours of the user's configuration (:mod:`reference.checks.neighbours`); it returns a
:class:`~reference.checks.result.LayerResult`. :func:`layer_cases` draws from the same space
for users who fuzz; Hypothesis shrinks a failure towards the first values of each sweep list,
so list them smallest first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from manual.spec import DTYPES
from reference.checks import cases as cs
from reference.checks.batch import NotRun
from reference.checks.layer import LayerCheck, Outside, Skip
from reference.checks.neighbours import neighbours as neighbours_of
from reference.checks.result import LayerResult
from reference.core.names import TensorName
from reference.core.records import ComparisonRecord

# check_layer's arguments about the space of cases, not about the layer.
SPACE = ("dtypes", "sweep", "special", "neighbours", "vary")


def input_size(check: LayerCheck, case: cs.Case) -> int:
    """How many input elements ``case`` draws (the order for "smallest")."""
    total = 0
    for name, spec in check.inputs.items():
        if isinstance(spec, np.ndarray):
            total += spec.size
        else:
            shape = spec.shape if isinstance(spec, cs.Labels | cs.Target) else spec
            total += int(np.prod(case.shapes.get(name) or cs.resolve(shape, case.sizes)))
    return total


def layer_check(forward: Callable[..., Any], backward: Callable[..., Any],
                **kwargs: Any) -> LayerCheck:
    keep = {k: v for k, v in kwargs.items() if k not in SPACE}
    return LayerCheck(forward, backward, **keep)


def neighbour_cases(check: LayerCheck, sweep: Mapping[str, Sequence[Any]] | None,
                    dtypes: Sequence[str], neighbours: bool | None,
                    vary: Mapping[str, Iterable[Any]] | None) -> list[cs.Case]:
    """The neighbours of the user's configuration (the sweep's first one, its swept options
    left alone) as cases: float64 (or the only dtype), no special input."""
    if not (not sweep if neighbours is None else neighbours):
        return []
    sweep = dict(sweep or {})
    first = {k: v[0] for k, v in sweep.items()}
    sizes = {k: int(v) for k, v in first.items() if k in check.symbols}
    base = {k: v for k, v in first.items() if k not in check.symbols}
    options = {k: v for k, v in {**check.options, **base}.items() if k not in sweep}
    shapes: dict[str, tuple[int, ...] | None] = {}
    for name, spec in check.inputs.items():
        shape = spec.shape if isinstance(spec, np.ndarray | cs.Labels | cs.Target) else spec
        symbolic = any(isinstance(d, str) and d not in sizes for d in shape)
        shapes[name] = None if symbolic or isinstance(spec, cs.Labels | cs.Target) else \
            cs.resolve(shape, sizes)
    dtype = "float64" if "float64" in dtypes else dtypes[0]
    return [cs.Case(dtype, dict(sizes), {**base, **n.overrides}, "", n.shapes, n.label)
            for n in neighbours_of(options, shapes, check.first, vary)]


def all_cases(check: LayerCheck, sweep: Mapping[str, Sequence[Any]] | None = None,
              dtypes: Sequence[str] = DTYPES, special: bool | str | Iterable[str] = True,
              neighbours: bool | None = None,
              vary: Mapping[str, Iterable[Any]] | None = None) -> list[cs.Case]:
    """The user's cases (:func:`reference.checks.cases.expand`), then the neighbours."""
    cases = cs.expand(sweep, dtypes, cs.special_names(special), check.symbols,
                      batch=check.batch_symbol)
    return cases + neighbour_cases(check, sweep, dtypes, neighbours, vary)


def run_cases(check: LayerCheck, cases: Iterable[cs.Case], keep_values: bool = True
              ) -> LayerResult:
    result = LayerResult(check.name, [], [], [])
    for case in cases:
        try:
            record = check.run(case, keep_values)
        except Outside as why:
            result.outside.append((case, str(why)))
            continue
        except NotRun as why:
            result.not_run.append((case, str(why)))
            continue
        except Skip as why:
            result.skipped.append((case, str(why)))
            continue
        result.cases.append(case)
        result.records.append(record)
        result.sizes.append(input_size(check, case))
    return result


def check_layer(
    forward: Callable[..., Any], backward: Callable[..., Any], *, torch: Any,
    inputs: Mapping[str, cs.InputSpec], options: Mapping[str, Any] | None = None,
    dtypes: Sequence[str] = DTYPES, sweep: Mapping[str, Sequence[Any]] | None = None,
    special: bool | str | Iterable[str] = True, seed: int = 0,
    state: Mapping[str, str] | None = None, steps: int = 1,
    then: Mapping[str, Any] | None = None, name: str | None = None,
    params: Mapping[str, str] | None = None, keep_values: bool = False,
    neighbours: bool | None = None, vary: Mapping[str, Iterable[Any]] | None = None,
    **more: Any,
) -> LayerResult:
    """Check a user's ``forward``/``backward`` pair against ``torch`` on every case.

    See :mod:`reference.checks.layer` for the conventions and :mod:`reference.checks.cases`
    for the sweep and the special inputs; ``state``/``steps``/``then`` are described in
    :mod:`reference.checks.state`. ``neighbours`` (default: on unless a ``sweep`` is given)
    adds the configurations one change away (:mod:`reference.checks.neighbours`), ``vary``
    the values of options no rule knows. ``keep_values`` keeps both sides' arrays in the
    records (off by default: a sweep holds many). ``tolerance`` (a ``Tolerance`` with its
    reason), ``kinks`` (the exact points of the ``kinks`` special, default 0), ``domain``,
    ``outputs`` and ``noise`` (see :class:`~reference.checks.layer.LayerCheck`) may be given.
    """
    check = LayerCheck(forward, backward, torch=torch, inputs=inputs, options=options,
                       params=params, state=state, steps=steps, then=then, name=name,
                       seed=seed, **more)
    cases = all_cases(check, sweep, dtypes, special, neighbours, vary)
    return run_cases(check, cases, keep_values)


@dataclass
class Check:
    """One case of a layer check, ready to run (``check()`` returns its record).

    ``part`` (``"forward"``, ``"backward: w"``, ``"hygiene"``, ``"state"``, ``"eval"``) keeps
    only that part's tensors; the case itself runs once whatever the number of parts.
    """

    layer: LayerCheck
    case: cs.Case
    part: str = ""
    _cache: dict[int, Any] = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        part = f" {self.part}" if self.part else ""
        return f"Check({self.layer.name}: {self.case.label()}{part})"

    def full(self) -> ComparisonRecord:
        """The whole case's record; raises :class:`Skip` if PyTorch rejects the case."""
        key = id(self.case)
        if key not in self._cache:
            try:
                self._cache[key] = self.layer.run(self.case)
            except Skip as why:
                self._cache[key] = why
        found = self._cache[key]
        if isinstance(found, Skip):
            raise found
        return found

    def __call__(self) -> ComparisonRecord:
        record = self.full()
        if not self.part:
            return record
        keep = [t for t in record.tensors if _in_part(t.tensor_name, self.part)]
        passed = all(t.passed for t in keep)
        return ComparisonRecord(
            subject=f"{record.subject} [{self.part}]", kind=record.kind, dtype=record.dtype,
            seed=record.seed, passed=passed,
            first_divergence=None if passed else next(t.name for t in keep if not t.passed),
            tolerance_reason=record.tolerance_reason, tensors=keep, options=record.options,
            notes=[n for n in record.notes if any(n.startswith(f"{t.name}: ") for t in keep)],
        )


def _in_part(name: TensorName, part: str) -> bool:
    """Whether tensor ``name`` belongs to ``part``: a stage (``state``: every step's), or one
    gradient (``backward: w``)."""
    if ": " not in part:
        return name.stage == part
    wanted = TensorName.parse(part)
    return (name.stage, name.ref) == (wanted.stage, wanted.ref)


def layer_cases(forward: Callable[..., Any], backward: Callable[..., Any], **kwargs: Any
                ) -> Any:
    """A Hypothesis strategy of :class:`Check` over ``check_layer``'s space (same arguments).

    ``@given(layer_cases(f, b, torch=..., inputs=..., sweep=...))`` then
    ``def test(check): assert check().passed``: a failure shrinks to the earliest values of
    each sweep list, the first dtype and no special input.
    """
    from hypothesis import strategies as hst

    check = layer_check(forward, backward, **kwargs)
    sweep = dict(kwargs.get("sweep") or {})
    specials = cs.special_names(kwargs.get("special", True))
    dtypes = tuple(kwargs.get("dtypes", DTYPES))
    cs.expand(sweep, dtypes, (), check.symbols)  # validates the space

    @hst.composite
    def cases(draw: Any) -> Check:
        dtype = draw(hst.sampled_from(dtypes))
        config = {k: draw(hst.sampled_from(list(v))) for k, v in sweep.items()}
        special = draw(hst.sampled_from(["", *specials]))
        sizes = {k: int(v) for k, v in config.items() if k in check.symbols}
        if special == "odd":
            sizes = {k: v | 1 for k, v in sizes.items()}
        if special == "batch1" and check.batch_symbol in sizes:
            sizes[str(check.batch_symbol)] = 1
        overrides = {k: v for k, v in config.items() if k not in check.symbols}
        return Check(check, cs.Case(dtype, sizes, overrides, special))

    return cases()
