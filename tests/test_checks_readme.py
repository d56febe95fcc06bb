"""The README's snippets for recurrent layers, dropout and whole models run as written, from
examples/corpus/, and print what their comments say."""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
MARK = "<!-- runs in examples/corpus -->"
BLOCKS = re.findall(re.escape(MARK) + r"\n```python\n(.*?)```", (ROOT / "README.md").read_text(),
                    re.DOTALL)


def expected_lines(code: str) -> list[str]:
    """The output a snippet's comments promise: ``# text`` lines at column 0, with
    ``#   more`` continuing the line before."""
    lines: list[str] = []
    for line in code.splitlines():
        if line.startswith("#   ") and lines:
            lines[-1] += " " + line[4:].strip()
        elif line.startswith("# "):
            lines.append(line[2:].strip())
    return lines


def test_the_readme_has_the_runnable_snippets() -> None:
    assert len(BLOCKS) == 3
    assert all(expected_lines(code) for code in BLOCKS)


@pytest.mark.parametrize("code", BLOCKS, ids=["recurrent", "dropout", "models"])
def test_a_readme_snippet_runs_as_written_and_prints_its_comments(code, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "corpus"))
    for name in ("recurrent", "dropout", "models", "scalar"):
        sys.modules.pop(name, None)  # the corpus's modules, fresh for each snippet
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    printed = " ".join(out.getvalue().split())
    for line in expected_lines(code):
        assert " ".join(line.split()) in printed, (line, out.getvalue())
