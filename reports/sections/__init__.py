"""Report sections: one module each, found by name, so an experiment adds a section alone.

A section module defines:

- ``KEY`` (str): its key in ``results.json`` and its anchor in ``index.html``;
- ``TITLE`` (str) and ``ORDER`` (int, smaller first);
- ``collect(context: RunContext) -> dict``: runs the section's checks and returns a JSON-able
  record (dataclasses are fine: :func:`reference.core.records.encode` turns them into dicts and
  writes non-finite floats as strings). This is the only place that computes anything;
- ``figures(data: dict) -> dict[str, str]`` (optional): inline SVG strings drawn from the
  record alone (matplotlib, see :mod:`reports.plots`), by name; save each with
  ``plots.to_svg(fig, salt=f"{KEY}:{name}")`` so that its ids are stable and unique on the page;
- its template ``reports/templates/sections/<KEY>.html.j2``: an HTML fragment rendered with
  ``data`` (the record as read back from ``results.json``), ``figures`` and ``context``.
  Templates never recompute: they only format what the record holds.

``collect`` may return ``None`` to leave the section out (for example when a profile skips it).

Records must be deterministic for a given profile, seed and set of versions: ``make report``
promises byte-identical ``results.json`` and ``index.html`` on a re-run. So no wall-clock
timings, dates, hostnames or unseeded randomness in a record: measure cost in counts
(function evaluations, FLOPs) and leave speed to ``benchmarks/``.

The summary on top of the page (see :mod:`reports.report`) counts each section's checks:

- from ``summarize(data: dict) -> dict`` (optional) when the module has it, else from the
  record's own top-level integers ``passed`` and ``failed``; a section with neither is shown
  but "not counted". Either may add ``errors``: ``{dtype: {"max_rel_error": float,
  "tolerance_ratio": float}}`` (error / tolerance, <= 1 passes), from which the summary takes
  the worst relative error and the headroom ``1 / max ratio`` per dtype.
- a ``collect`` that raises is shown as an error and fails the verdict; the other sections
  still render. A section without a template is shown as its JSON record.

Templates get the filters ``fmt`` (a number as text; ``"nan"``/``"inf"`` strings included),
``sortkey`` (a ``data-sort`` attribute value) and ``heat`` (a CSS background for an
error / tolerance ratio). A ``<table class="sortable">`` sorts when a heading is clicked, by
each cell's ``data-sort`` attribute or else its text; list rows failures first.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any


def _no_progress(description: str, total: int | None = None) -> Any:
    return _NullBar()


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class RunContext:
    """What every section's ``collect`` gets: the profile, the seed and a progress factory.

    ``progress(description, total)`` returns a tqdm-like bar (``update``, ``close``); it is
    silent when stderr is not a terminal.
    """

    profile: str = "quick"
    seed: int = 0
    progress: Callable[..., Any] = field(default=_no_progress)


def discover() -> list[ModuleType]:
    """Every section module, in ``ORDER``."""
    modules = [importlib.import_module(f"{__name__}.{info.name}")
               for info in pkgutil.iter_modules(__path__)]
    return sorted((m for m in modules if hasattr(m, "collect")), key=lambda m: m.ORDER)
