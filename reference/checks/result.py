"""The result of a layer check over all its cases: :class:`LayerResult`.

:meth:`~LayerResult.summary` says how many of the user's own cases failed and which is the
smallest failing one (fewest input elements), then the neighbours of the user's configuration
apart (``your configuration passes; 3 neighbours fail: pad=0: ...``), and what was not
compared: cases PyTorch rejects, cases outside the reference's domain, special inputs the
declaration makes impossible (said once).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace

from manual.jsonable import encode
from reference.checks import cases as cs
from reference.core.records import ComparisonRecord


@dataclass
class LayerResult:
    """Every case of one layer check: records for those run, reasons for those skipped
    (PyTorch rejects them), not run (the declaration makes them impossible, said once) or
    outside the reference's domain. Neighbours of the user's configuration
    (:mod:`reference.checks.neighbours`) are cases with ``case.neighbour`` set, reported
    apart."""

    subject: str
    cases: list[cs.Case]
    records: list[ComparisonRecord]
    sizes: list[int]
    skipped: list[tuple[cs.Case, str]] = field(default_factory=list)
    outside: list[tuple[cs.Case, str]] = field(default_factory=list)
    not_run: list[tuple[cs.Case, str]] = field(default_factory=list)
    against: str = "PyTorch"  # what the cases were checked against

    @property
    def passed(self) -> bool:
        """Every case that ran agrees, and at least one ran (a check of nothing fails)."""
        return bool(self.records) and all(r.passed for r in self.records)

    @property
    def failures(self) -> list[tuple[cs.Case, ComparisonRecord]]:
        """Failing cases of the user's own configurations (neighbours: :attr:`near`)."""
        return [(c, r) for c, r in zip(self.cases, self.records, strict=True)
                if not r.passed and not c.neighbour]

    @property
    def near(self) -> list[tuple[cs.Case, ComparisonRecord]]:
        """Failing neighbours, in the order they were generated."""
        return [(c, r) for c, r in zip(self.cases, self.records, strict=True)
                if not r.passed and c.neighbour]

    def smallest_failure(self) -> tuple[cs.Case, ComparisonRecord] | None:
        own = {id(r) for _, r in self.failures}
        failing = [(size, i) for i, (size, r) in enumerate(zip(self.sizes, self.records,
                                                                strict=True))
                   if not r.passed and (id(r) in own or not own)]
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

    def _extras(self) -> str:
        said = [f"{len(self.skipped)} skipped: PyTorch rejects them"] if self.skipped else []
        if self.outside:
            said.append(f"{len(self.outside)} outside the reference's domain: "
                        f"{self.outside[0][0].label()}: {self.outside[0][1]}")
        said += list(dict.fromkeys(why for _, why in self.not_run))
        return f" ({'; '.join(said)})" if said else ""

    def _near_text(self) -> str:
        near = self.near
        if not near:
            return ""
        case, record = near[0]
        worst = record.failures[0]
        others = ", ".join(c.neighbour for c, _ in near[1:])
        word = "neighbour fails" if len(near) == 1 else "neighbours fail"
        return (f"{len(near)} {word}: {case.neighbour}: {worst.name}: {worst.problem}"
                + (f"; also {others}" if others else ""))

    def summary(self) -> str:
        """``7 of 54 cases fail (backward: x in 7, ...); smallest: float64 H=5 ...: <problem>``,
        or ``your configuration passes; 3 neighbours fail: pad=0: <tensor>: <problem>``."""
        own = [c for c in self.cases if not c.neighbour]
        total, extras, near = len(own), self._extras(), self._near_text()
        if not self.records:
            first = next(iter(self.skipped + self.outside + self.not_run), None)
            why = f": {first[0].label()}: {first[1]}" if first else ""
            return f"{self.subject}: no case ran{extras}{why}"

        if not self.failures:
            if near:
                return f"{self.subject}: your configuration passes{extras}; {near}"
            count = len(self.cases) - total
            also = f" and {count} neighbours" if count else ""
            return f"{self.subject}: all {total} cases{also} agree with {self.against}{extras}"
        # Per tensor, how many cases it fails in ("step 2: state: v" counts as "state: v").
        counts = Counter(name for _, r in self.failures
                         for name in dict.fromkeys(str(replace(t.tensor_name, step=None))
                                                   for t in r.failures))
        where = ", ".join(f"{name} in {n}" for name, n in counts.most_common(4))
        case, record = self.smallest_failure() or (own[0], self.records[0])
        worst = record.failures[0]
        return (f"{self.subject}: {len(self.failures)} of {total} cases fail{extras} ({where});"
                f" smallest: {case.label()}: {worst.name}: {worst.problem}"
                + (f"; and {near}" if near else ""))

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
            "cases": [{"case": c.label(), "record": r, **({"neighbour": c.neighbour}
                                                           if c.neighbour else {})}
                      for c, r in zip(self.cases, self.records, strict=True)],
            "skipped": [{"case": c.label(), "reason": why} for c, why in self.skipped],
            "outside": [{"case": c.label(), "reason": why} for c, why in self.outside],
            "not_run": [{"case": c.label(), "reason": why} for c, why in self.not_run],
        }
        return json.dumps(encode(payload), indent=indent, allow_nan=False)
