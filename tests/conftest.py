"""Shared test set-up: Hypothesis profiles and one BLAS/torch thread per xdist worker."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, settings
from threadpoolctl import threadpool_limits

settings.register_profile("dev", max_examples=20, deadline=None)
settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "nightly", max_examples=3000, deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(autouse=True, scope="session")
def _one_thread_per_worker() -> object:
    """Two xdist workers on two cores: each keeps BLAS and torch to one thread."""
    import torch

    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(autouse=True, scope="session")
def _draws_depend_on_the_seed_alone() -> object:
    """Hypothesis mixes the literal constants of every loaded module into what it draws, so a
    test's examples would depend on which tests an xdist worker ran before: not here."""
    from reference.fuzz.campaign import fixed_constants

    with fixed_constants():
        yield


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The bug zoo's kill table, from the rows tests/test_zoo.py records (works under xdist)."""
    import json

    rows = [json.loads(value) for key in ("passed", "failed")
            for report in terminalreporter.stats.get(key, [])
            for name, value in getattr(report, "user_properties", []) if name == "zoo_kill"]
    if rows:
        from reference.zoo.kill import kill_table

        terminalreporter.write_sep("-", f"bug zoo: {len(rows)} mutants")
        for line in kill_table(rows):
            terminalreporter.write_line(line)
