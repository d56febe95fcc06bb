"""The generated report in a real browser: Debian's headless Chromium, driven by Playwright.

The report is built with every discovered section into ``out/browser-test/`` (ignored by
git) and opened once; each property is a subtest of that one session (xdist would
otherwise start a browser, and build the report, once per worker). The screenshot is
saved beside the report for a person to look at.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from reports import report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--no-first-run"]
OUT = Path(__file__).resolve().parent.parent / "out" / "browser-test"
DUPLICATE_IDS = """() => {
    const seen = new Set(), twice = new Set();
    document.querySelectorAll("[id]").forEach(e => (seen.has(e.id) ? twice : seen).add(e.id));
    return [...twice];
}"""


def _sized(tab: Any, selector: str) -> list[str]:
    """The elements matching ``selector`` that have no width or height (by index)."""
    boxes = [element.bounding_box() for element in tab.query_selector_all(selector)]
    assert boxes, f"no {selector} on the page"
    return [f"{selector} #{i}" for i, box in enumerate(boxes)
            if box is None or box["width"] <= 0 or box["height"] <= 0]


def _check_sorting(tab: Any) -> None:
    heading = tab.locator("#conformance-ops th", has_text="error / tolerance")

    def ratios() -> list[float]:
        return [float(v) for v in tab.eval_on_selector_all(
            "#conformance-ops tbody tr td:nth-child(8)",
            "cells => cells.map(c => c.getAttribute('data-sort'))")]

    heading.click()
    assert heading.get_attribute("aria-sort") == "descending"
    assert ratios() == sorted(ratios(), reverse=True)
    heading.click()
    assert heading.get_attribute("aria-sort") == "ascending"
    assert ratios() == sorted(ratios())


@pytest.mark.browser
def test_the_report_in_headless_chromium(tmp_path: Path, subtests: Any) -> None:
    if not Path(CHROMIUM).exists():
        # Under CI a skip would hide a broken set-up: make test must have installed it.
        assert not os.environ.get("CI"), "make test should have installed Debian's chromium"
        pytest.skip("Chromium is not installed (make test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    results, problems = report.run(OUT, "quick", 0)
    assert problems == [], "every section renders"
    summary = json.loads((OUT / "results.json").read_text())["summary"]
    assert summary == results["summary"]
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=ARGS, viewport={"width": 1280, "height": 900})
        try:
            tab = context.new_page()
            tab.on("console", lambda m: m.type == "error" and errors.append(m.text))
            tab.on("pageerror", lambda error: errors.append(str(error)))
            tab.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
            context.on("request", lambda r: requests.append(r.url))
            tab.goto((OUT / "index.html").as_uri(), wait_until="load")
            tab.screenshot(path=str(OUT / "screenshot.png"), full_page=True)

            with subtests.test("every plot and table has a size"):
                assert _sized(tab, "svg.plot") + _sized(tab, "table") == []
            with subtests.test("the counts shown are those in results.json"):
                shown = {key: tab.inner_text(f'[data-summary="{key}"]')
                         for key in ("verdict", "passed", "failed")}
                assert shown == {"verdict": summary["verdict"].upper(),
                                 "passed": str(summary["passed"]),
                                 "failed": str(summary["failed"])}
                rows = tab.query_selector_all("#summary-sections tbody tr")
                assert len(rows) == len(summary["sections"])
            with subtests.test("element ids are unique across inline figures"):
                assert tab.evaluate(DUPLICATE_IDS) == []
            with subtests.test("clicking a heading sorts the table"):
                _check_sorting(tab)
        finally:
            context.close()

    with subtests.test("no console errors"):
        assert errors == []
    with subtests.test("no requests beyond file: and data:"):
        assert requests and all(u.startswith(("file:", "data:")) for u in requests), requests
    with subtests.test("a screenshot is saved"):
        assert (OUT / "screenshot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
