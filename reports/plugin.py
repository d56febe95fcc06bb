"""pytest plugin: ``--backprop-report DIR`` writes the HTML report from a test run's records.

Registered through the ``pytest11`` entry point, so it is active in every pytest run of
this project. A test hands each :class:`~reference.core.records.ComparisonRecord` it checks to
the ``backprop_record`` fixture::

    def test_relu(backprop_record):
        record = compare_op("relu", "float32")
        backprop_record(record)
        assert record.passed

The fixture stores the record as a JSON string in the test's ``user_properties``, which
pytest copies into the test's reports; pytest-xdist sends those reports to the controller,
so records from every worker arrive in one place. The controller keeps each test's records
from its ``teardown`` report (it carries all of them, once), and at the end of the session
writes ``index.html`` and ``results.json`` into DIR: the summary and the conformance matrix,
rendered exactly as by ``backprop-harness report``. Without the option nothing is written.

Loading the plugin imports neither torch nor numpy; the report's modules are imported only
when the report is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

PROPERTY = "backprop_record"
_COLLECTOR = "backprop-report-collector"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("backprop-harness")
    group.addoption(
        "--backprop-report", metavar="DIR", default=None, dest="backprop_report",
        help="write an HTML report (index.html + results.json) of the comparison records "
             "that tests pass to the backprop_record fixture into DIR",
    )


@pytest.fixture
def backprop_record(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Record a ComparisonRecord for the ``--backprop-report`` report: ``backprop_record(rec)``.

    An optional ``case_id`` names the row (default: the test's name, with ``#2``, ``#3`` ...
    for further records of the same test).
    """
    def record(comparison: Any, case_id: str | None = None) -> None:
        from reference.core.records import encode

        properties = request.node.user_properties
        count = sum(1 for name, _ in properties if name == PROPERTY)
        name = case_id or request.node.name + (f"#{count + 1}" if count else "")
        payload = {"id": name, "record": encode(comparison)}
        properties.append((PROPERTY, json.dumps(payload, allow_nan=False, sort_keys=True)))

    return record


class _Collector:
    """On the controller (or a run without xdist): gathers records and writes the report."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.payloads: list[str] = []
        self.summary: dict[str, Any] | None = None
        self.problems: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown":
            self.payloads += [str(value) for name, value in report.user_properties
                              if name == PROPERTY]

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from reference.core.records import ComparisonRecord
        from reports import report
        from reports.sections import RunContext, conformance

        rows, seeds = [], set()
        for payload in sorted(self.payloads):
            raw = json.loads(payload)
            record = ComparisonRecord.from_dict(raw["record"])
            seeds.add(record.seed)
            rows.append(conformance.case_row(record, raw["id"]))
        context = RunContext(profile="pytest", seed=min(seeds) if len(seeds) == 1 else 0)
        results = report.build_results({conformance.KEY: conformance.tabulate(rows)}, context,
                                       [conformance])
        if len(seeds) > 1:
            results["meta"]["seed"] = "per test"
        self.problems = report.write(self.out, results, [conformance])
        self.summary = results["summary"]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.summary is not None:
            terminalreporter.write_line(
                f"backprop report: {self.out / 'index.html'} ({self.summary['passed']} "
                f"records passed, {self.summary['failed']} failed)")
            for problem in self.problems:
                terminalreporter.write_line(f"backprop report: could not draw {problem}")


def pytest_configure(config: pytest.Config) -> None:
    out = config.getoption("backprop_report")
    if out and not hasattr(config, "workerinput"):  # xdist workers only send their records
        config.pluginmanager.register(_Collector(Path(out)), _COLLECTOR)
