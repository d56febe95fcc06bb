"""Who kills what: a mutant of the zoo against the conformance suite and the fuzzer.

:func:`kill` runs both against one :class:`~reference.zoo.core.Mutant` and returns a
:class:`Kill`; :func:`kill_table` prints a list of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from reference.zoo.core import Mutant


@dataclass
class Kill:
    """How one mutant died: the first conformance check that failed, and the fuzzer's shrunk
    counterexample (its size in hidden layers, spec and first divergence)."""

    mutant: str
    description: str
    conformance: str | None
    conformance_where: str
    fuzz_killed: bool
    hidden_layers: int | None = None
    protocol: str = ""
    fuzz_where: str = ""
    spec: dict[str, Any] | None = None

    @property
    def killed(self) -> bool:
        return self.conformance is not None and self.fuzz_killed


def conformance_kill(mutant: Mutant) -> tuple[str, str] | None:
    """The first check of :func:`reference.conformance.protocols.suite` that fails under
    ``mutant``."""
    from reference.conformance.protocols import first_failure

    with mutant.inject(), np.errstate(all="ignore"):
        return first_failure()


def fuzz_kill(mutant: Mutant, max_examples: int, shrink: bool = True) -> Any:
    """The fuzzer's shrunk failing :class:`~reference.fuzz.strategies.FuzzCase`, or ``None``.

    Derandomised :func:`hypothesis.find` over :func:`~reference.fuzz.strategies.fuzz_cases`
    focused on the ops the mutant touches, at most ``max_examples`` generated examples.
    """
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis.errors import NoSuchExample

    from reference.fuzz.campaign import fails, fixed_constants
    from reference.fuzz.strategies import fuzz_cases

    # No explain phase: it re-runs the shrunk case many times to annotate it, which
    # doubles the cost and tells the kill table nothing.
    budget = settings(max_examples=max_examples, derandomize=True, database=None,
                      deadline=None, suppress_health_check=list(HealthCheck),
                      phases=(Phase.generate, Phase.shrink) if shrink else (Phase.generate,))
    with mutant.inject(), fixed_constants():
        try:
            return find(fuzz_cases(include=mutant.ops), fails, settings=budget)
        except NoSuchExample:
            return None


def kill(mutant: Mutant, max_examples: int, shrink: bool = True) -> Kill:
    """Run both the conformance suite and the fuzzer against ``mutant``.

    ``shrink=False`` keeps the fuzzer's first failing example (faster; its size is then
    an upper bound on the shrunk one).
    """
    from reference.fuzz.campaign import run_case

    found = conformance_kill(mutant)
    case = fuzz_kill(mutant, max_examples, shrink)
    record = Kill(mutant.name, mutant.description, found[0] if found else None,
                  found[1] if found else "", case is not None)
    if case is not None:
        with mutant.inject():
            outcome = run_case(case)
        record.hidden_layers, record.protocol = case.hidden_layers, case.protocol
        record.fuzz_where, record.spec = outcome.where, case.spec.to_dict()
    return record


def kill_table(rows: list[dict[str, Any]]) -> list[str]:
    """Lines of a plain-text kill table from :class:`Kill` records (as dicts)."""
    lines = [f"{'mutant':26} {'conformance suite':52} {'fuzzer':7} hidden layers"]
    for row in sorted(rows, key=lambda r: r["mutant"]):
        conformance = row["conformance"] or "SURVIVED"
        fuzz = "killed" if row["fuzz_killed"] else "SURVIVED"
        size = "" if row["hidden_layers"] is None else str(row["hidden_layers"])
        lines.append(f"{row['mutant']:26} {conformance[:52]:52} {fuzz:7} {size}")
    return lines
