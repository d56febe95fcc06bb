"""The HTML verification report: run every section, write ``results.json``, render ``index.html``.

:func:`collect` runs each discovered section's ``collect`` (the only step that
computes anything) and :func:`build_results` gathers the records, the summary
and the run's metadata into one JSON-able dict. :func:`render` turns that dict,
as read back from ``results.json``, into one self-contained page: Jinja2 with
autoescaping and ``StrictUndefined``, inline CSS, a few lines of JavaScript for
sorting, matplotlib figures inlined as SVG. No network, no fonts, no clock:
the same seed and versions give byte-identical files (a date appears only when
``SOURCE_DATE_EPOCH`` is set). :func:`write` replaces both files as one unit.

The summary on top counts checks from each section's ``summarize(data)`` (or the
record's own ``passed``/``failed``), gives the worst relative error and the
tolerance headroom :math:`1 / \\max(\\text{error} / \\text{tolerance})` per dtype.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import jinja2
from markupsafe import Markup

from manual.files import atomic_write, atomic_write_dir  # noqa: F401 - tests patch it here
from reference.core.records import encode
from reports import sections as sections_pkg
from reports.sections import RunContext

FORMAT = 1
REPORT_FILES = ("index.html", "results.json")
PROFILES = ("quick", "full")
TEMPLATES = Path(__file__).resolve().parent / "templates"
_VERSIONED = ("numpy", "torch", "matplotlib", "jinja2")


# -- collecting ------------------------------------------------------------------------------

def progress_factory(enabled: bool | None = None) -> Callable[..., Any]:
    """A tqdm bar factory on stderr; silent unless stderr is a terminal."""
    from tqdm import tqdm

    disable = not sys.stderr.isatty() if enabled is None else not enabled

    def progress(description: str, total: int | None = None) -> Any:
        return tqdm(total=total, desc=description, file=sys.stderr, disable=disable,
                    leave=False, dynamic_ncols=True)

    return progress


def collect(context: RunContext, modules: Iterable[ModuleType] | None = None
            ) -> dict[str, Any]:
    """Every section's record, by key (JSON-safe). A section returning ``None`` is left out.

    A section that raises is kept as ``{"error": ...}`` so that the page shows it
    (and the verdict fails) instead of losing the whole report.
    """
    records: dict[str, Any] = {}
    modules = list(sections_pkg.discover() if modules is None else modules)
    bar = context.progress("report sections", len(modules))
    for module in modules:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(module.KEY)
        try:
            record = module.collect(context)
        except Exception as error:
            last = traceback.extract_tb(error.__traceback__)[-1]
            record = {"error": f"{type(error).__name__}: {error}",
                      "where": f"{Path(last.filename).name}:{last.lineno}"}
        if record is not None:
            records[module.KEY] = encode(record)
        bar.update(1)
    bar.close()
    return records


# -- the summary -----------------------------------------------------------------------------

def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float | str) else math.nan


def section_summary(module: ModuleType | None, data: Any) -> dict[str, Any]:
    """``{"passed", "failed", "errors"}`` for one section's record.

    From the module's ``summarize(data)`` when it has one, else from the record's
    own integer ``passed``/``failed`` and optional ``errors`` (by dtype:
    ``max_rel_error``, ``tolerance_ratio``). A record with ``error`` counts as one failure.
    """
    if isinstance(data, Mapping) and "error" in data:
        return {"passed": 0, "failed": 1, "errors": {}, "status": "error"}
    if module is not None and hasattr(module, "summarize"):
        raw = dict(module.summarize(data))
    elif isinstance(data, Mapping) and isinstance(data.get("passed"), int) \
            and isinstance(data.get("failed"), int):
        raw = {k: data[k] for k in ("passed", "failed", "errors") if k in data}
    else:
        return {"passed": 0, "failed": 0, "errors": {}, "status": "not counted"}
    passed, failed = int(raw.get("passed", 0)), int(raw.get("failed", 0))
    return {"passed": passed, "failed": failed, "errors": dict(raw.get("errors") or {}),
            "status": "fail" if failed else "pass"}


def summarize(records: Mapping[str, Any], modules: Mapping[str, ModuleType]) -> dict[str, Any]:
    """The verdict (``pass``, ``fail``, or ``empty`` when nothing was checked), the counts,
    and the worst relative error and headroom per dtype."""
    per_section = {key: section_summary(modules.get(key), data) for key, data in records.items()}
    worst: dict[str, dict[str, float]] = {}
    for summary in per_section.values():
        for dtype, errors in summary["errors"].items():
            entry = worst.setdefault(dtype, {"max_rel_error": 0.0, "tolerance_ratio": 0.0})
            for field in entry:
                value = _number(errors.get(field, 0.0))
                if math.isnan(value) or value > entry[field]:
                    entry[field] = math.inf if math.isnan(value) else value
    by_dtype = {
        dtype: {**entry, "headroom": math.inf if entry["tolerance_ratio"] == 0
                else 1.0 / entry["tolerance_ratio"]}
        for dtype, entry in sorted(worst.items())
    }
    passed = sum(s["passed"] for s in per_section.values())
    failed = sum(s["failed"] for s in per_section.values())
    return {
        "verdict": "fail" if failed else ("pass" if passed else "empty"),
        "passed": passed,
        "failed": failed,
        "by_dtype": by_dtype,
        "sections": {key: {k: s[k] for k in ("passed", "failed", "status")}
                     for key, s in per_section.items()},
    }


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def generated() -> str | None:
    """The build date from ``SOURCE_DATE_EPOCH`` (UTC), else ``None``: no wall-clock stamps."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return None
    try:
        moment = datetime.datetime.fromtimestamp(int(epoch), tz=datetime.UTC)
    except (ValueError, OverflowError) as error:
        raise ValueError(f"SOURCE_DATE_EPOCH: not a Unix time: {epoch!r}") from error
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def build_results(records: Mapping[str, Any], context: RunContext,
                  modules: Iterable[ModuleType] | None = None) -> dict[str, Any]:
    """``results.json``'s content: metadata, summary and every section's record."""
    found = {m.KEY: m for m in (sections_pkg.discover() if modules is None else modules)}
    order = sorted(records, key=lambda key: (getattr(found.get(key), "ORDER", 1000), key))
    records = {key: encode(records[key]) for key in order}
    return {
        "format": FORMAT,
        "meta": {
            "profile": context.profile,
            "seed": context.seed,
            "versions": versions(),
            "generated": generated(),
            "sections": [{"key": key, "title": getattr(found.get(key), "TITLE", key)}
                         for key in order],
        },
        "summary": encode(summarize(records, found)),
        "sections": records,
    }


def dumps(results: Mapping[str, Any]) -> str:
    """Strict JSON (non-finite numbers already strings), keys sorted, one trailing newline."""
    return json.dumps(encode(results), indent=1, sort_keys=True, allow_nan=False) + "\n"


# -- rendering -------------------------------------------------------------------------------

def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def fmt(value: Any, digits: int = 3) -> str:
    """A number as text: ``1.23e-07``, ``0``, ``inf``, ``nan``; anything else as is."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    number = _float(value)
    if number is None:
        return str(value)
    if math.isnan(number):
        return "nan"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    if number == 0:
        return "0"
    if isinstance(value, int):
        return str(value)
    return f"{number:.{digits}g}" if 1e-3 <= abs(number) < 1e5 else f"{number:.{digits - 1}e}"


def sortkey(value: Any) -> str:
    """A ``data-sort`` value for the table sorter: numbers exact, non-finite as Infinity."""
    number = _float(value)
    if number is None or isinstance(value, bool):
        return str(value)
    return "Infinity" if not math.isfinite(number) else repr(number)


def heat(ratio: Any) -> str:
    """A cell background for error/tolerance: green far below 1, amber near 1, red above.

    ``None`` (nothing measured) gets no colour; NaN is an error, so it is red.
    """
    if ratio is None:
        return ""
    number = _float(ratio)
    if number is None or math.isnan(number) or number > 1:
        return "background:#f4c7c3"
    if number == 0:
        return "background:#e6f4ea"
    t = min(max((math.log10(number) + 8) / 8, 0.0), 1.0)  # 1e-8 -> 0, 1 -> 1
    hue = round(130 - 95 * t)
    return f"background:hsl({hue},70%,{round(90 - 8 * t)}%)"


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # select_autoescape would not escape *.html.j2
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(fmt=fmt, sortkey=sortkey, heat=heat)
    return env


def _section_html(env: jinja2.Environment, module: ModuleType | None, key: str, data: Any,
                  context: RunContext) -> Markup:
    if isinstance(data, Mapping) and "error" in data:
        return Markup(env.get_template("error.html.j2").render(data=data, stage="collect"))
    figures = {}
    if module is not None and hasattr(module, "figures"):
        figures = {name: Markup(svg) for name, svg in module.figures(data).items()}
    name = f"sections/{key}.html.j2"
    if module is None or not (TEMPLATES / name).is_file():
        name = "fallback.html.j2"
    html = env.get_template(name).render(data=data, figures=figures, context=context)
    return Markup(html)


def render(results: Mapping[str, Any], modules: Iterable[ModuleType] | None = None,
           problems: list[str] | None = None) -> str:
    """``index.html`` from ``results`` alone (as read back from ``results.json``).

    A section whose figures or template fail is shown as an error (the others still
    render) and its message is appended to ``problems``.
    """
    found = {m.KEY: m for m in (sections_pkg.discover() if modules is None else modules)}
    meta = results["meta"]
    context = RunContext(profile=meta["profile"], seed=meta["seed"])
    env = environment()
    problems = [] if problems is None else problems
    sections = []
    for entry in meta["sections"]:
        key, status = entry["key"], dict(results["summary"]["sections"][entry["key"]])
        try:
            html = _section_html(env, found.get(key), key, results["sections"][key], context)
        except Exception as error:
            message = f"{type(error).__name__}: {error}"
            problems.append(f"section {key}: {message}")
            html = Markup(env.get_template("error.html.j2").render(
                data={"error": message}, stage="render"))
            status["status"] = "error"
        sections.append({**entry, "status": status, "html": html})
    return env.get_template("base.html.j2").render(
        meta=meta, summary=results["summary"], sections=sections, problems=problems)


# -- writing ---------------------------------------------------------------------------------

def write(out: Path, results: Mapping[str, Any],
          modules: Iterable[ModuleType] | None = None) -> list[str]:
    """Render first, then replace the folder holding ``results.json`` and ``index.html``
    as one unit (:func:`manual.files.atomic_write_dir`).

    The page is rendered from the JSON text as it will be written, so it shows
    exactly what ``results.json`` holds. Returns the sections that failed to render.
    """
    text = dumps(results)
    problems: list[str] = []
    html = render(json.loads(text), modules, problems)
    atomic_write_dir(Path(out), {"results.json": text, "index.html": html})
    return problems


def run(out: Path, profile: str = "quick", seed: int = 0, *,
        progress: Callable[..., Any] | None = None,
        only: Iterable[str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Collect every section (or those keyed in ``only``) and write the report.

    Returns the results and the sections that could not be rendered.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile: expected one of {', '.join(PROFILES)}, got {profile!r}")
    modules = sections_pkg.discover()
    if only is not None:
        wanted = set(only)
        unknown = wanted - {m.KEY for m in modules}
        if unknown:
            raise ValueError(f"sections: unknown {', '.join(sorted(unknown))}")
        modules = [m for m in modules if m.KEY in wanted]
    context = RunContext(profile=profile, seed=seed,
                         progress=progress or progress_factory())
    results = build_results(collect(context, modules), context, modules)
    return results, write(out, results, modules)
