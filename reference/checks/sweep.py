"""Sweeps: every case of a layer check, the result over all of them, and a Hypothesis strategy.

:func:`check_layer` runs :func:`reference.checks.cases.expand`'s cases (dtype x sweep grid x
special inputs) and returns a :class:`LayerResult`, whose :meth:`~LayerResult.summary` says
how many failed and which is the smallest failing one (fewest input elements).
:func:`layer_cases` draws from the same space for users who fuzz; Hypothesis shrinks a
failure towards the first values of each sweep list, so list them smallest first.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from manual.jsonable import encode
from manual.spec import DTYPES
from reference.checks import cases as cs
from reference.checks.layer import LayerCheck, Skip
from reference.core.names import TensorName
from reference.core.records import ComparisonRecord


@dataclass
class LayerResult:
    """Every case of one layer check: records for those run, reasons for those skipped."""

    subject: str
    cases: list[cs.Case]
    records: list[ComparisonRecord]
    sizes: list[int]
    skipped: list[tuple[cs.Case, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.records)

    @property
    def failures(self) -> list[tuple[cs.Case, ComparisonRecord]]:
        return [(c, r) for c, r in zip(self.cases, self.records, strict=True) if not r.passed]

    def smallest_failure(self) -> tuple[cs.Case, ComparisonRecord] | None:
        failing = [(size, i) for i, (size, r) in enumerate(zip(self.sizes, self.records,
                                                                strict=True)) if not r.passed]
        if not failing:
            return None
        _, i = min(failing)
        return self.cases[i], self.records[i]

    def record(self, label: str) -> ComparisonRecord:
        """The record of the case labelled ``label`` (``"float64 H=5 stride=1 pad=0"``)."""
        for case, record in zip(self.cases, self.records, strict=True):
            if case.label() == label:
                return record
        raise KeyError(label)

    def summary(self) -> str:
        """``7 of 54 cases fail (backward: x in 7, ...); smallest: float64 H=5 ...: <problem>``."""
        total = len(self.records)
        skipped = f" ({len(self.skipped)} skipped: PyTorch rejects them)" if self.skipped else ""
        smallest = self.smallest_failure()
        if smallest is None:
            return f"{self.subject}: all {total} cases agree with PyTorch{skipped}"
        # Per tensor, how many cases it fails in ("step 2: state: v" counts as "state: v").
        counts = Counter(name for _, r in self.failures
                         for name in dict.fromkeys(str(replace(t.tensor_name, step=None))
                                                   for t in r.failures))
        where = ", ".join(f"{name} in {n}" for name, n in counts.most_common(4))
        case, record = smallest
        worst = record.failures[0]
        return (f"{self.subject}: {len(self.failures)} of {total} cases fail{skipped} ({where});"
                f" smallest: {case.label()}: {worst.name}: {worst.problem}")

    def describe(self) -> str:
        """The summary, then the smallest failing case's record in full."""
        smallest = self.smallest_failure()
        lines = [self.summary()]
        if smallest is not None:
            lines.append(smallest[1].describe())
        return "\n".join(lines)

    def to_json(self, indent: int | None = 2) -> str:
        payload = {
            "subject": self.subject, "passed": self.passed, "summary": self.summary(),
            "cases": [{"case": c.label(), "record": r} for c, r in
                      zip(self.cases, self.records, strict=True)],
            "skipped": [{"case": c.label(), "reason": why} for c, why in self.skipped],
        }
        return json.dumps(encode(payload), indent=indent, allow_nan=False)


def input_size(check: LayerCheck, case: cs.Case) -> int:
    """How many input elements ``case`` draws (the order for "smallest")."""
    total = 0
    for spec in check.inputs.values():
        if isinstance(spec, np.ndarray):
            total += spec.size
        else:
            shape = spec.shape if isinstance(spec, cs.Labels) else spec
            total += int(np.prod(cs.resolve(shape, case.sizes)))
    return total


def layer_check(forward: Callable[..., Any], backward: Callable[..., Any],
                **kwargs: Any) -> LayerCheck:
    keep = {k: v for k, v in kwargs.items() if k not in ("dtypes", "sweep", "special")}
    return LayerCheck(forward, backward, **keep)


def run_cases(check: LayerCheck, cases: Iterable[cs.Case], keep_values: bool = True
              ) -> LayerResult:
    ran, records, sizes, skipped = [], [], [], []
    for case in cases:
        try:
            records.append(check.run(case, keep_values))
        except Skip as why:
            skipped.append((case, str(why)))
            continue
        ran.append(case)
        sizes.append(input_size(check, case))
    return LayerResult(check.name, ran, records, sizes, skipped)


def check_layer(
    forward: Callable[..., Any], backward: Callable[..., Any], *, torch: Any,
    inputs: Mapping[str, cs.InputSpec], options: Mapping[str, Any] | None = None,
    dtypes: Sequence[str] = DTYPES, sweep: Mapping[str, Sequence[Any]] | None = None,
    special: bool | str | Iterable[str] = True, seed: int = 0,
    state: Mapping[str, str] | None = None, steps: int = 1,
    then: Mapping[str, Any] | None = None, name: str | None = None,
    params: Mapping[str, str] | None = None, keep_values: bool = False, **more: Any,
) -> LayerResult:
    """Check a user's ``forward``/``backward`` pair against ``torch`` on every case.

    See :mod:`reference.checks.layer` for the conventions and :mod:`reference.checks.cases`
    for the sweep and the special inputs; ``state``/``steps``/``then`` are described in
    :mod:`reference.checks.state`. ``keep_values`` keeps both sides' arrays in the records
    (off by default: a sweep holds many). ``tolerance`` (a ``Tolerance`` with its reason)
    and ``kinks`` (the exact points of the ``kinks`` special, default 0) may be given.
    """
    check = LayerCheck(forward, backward, torch=torch, inputs=inputs, options=options,
                       params=params, state=state, steps=steps, then=then, name=name,
                       seed=seed, **more)
    cases = cs.expand(sweep, dtypes, cs.special_names(special), check.symbols)
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
        if special == "batch1" and cs.BATCH in sizes:
            sizes[cs.BATCH] = 1
        overrides = {k: v for k, v in config.items() if k not in check.symbols}
        return Check(check, cs.Case(dtype, sizes, overrides, special))

    return cases()
