"""Deterministic matplotlib figures as inline SVG strings.

Every figure is drawn on a bare :class:`matplotlib.figure.Figure` (no pyplot, so
no global state and no GUI backend) and saved with ``svg.hashsalt`` set to a
salt unique to the figure and ``metadata={"Date": None}``: the same data gives
byte-identical SVG, and two figures on one page never share an element id.
Glyphs are drawn as paths (``svg.fonttype = "path"``), so the page needs no fonts.

Sections use :func:`style`, :func:`new_figure` and :func:`to_svg`; :func:`ratio_dots` and
:func:`loglog` are ready-made charts.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
from matplotlib.figure import Figure

# Colour-blind-safe (Okabe-Ito), one per series in order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
FLOOR = 1e-12  # where exact agreement (an error of 0) is drawn on a log axis

_STYLE: Any = {  # Any: matplotlib types rc keys as a Literal
    "svg.fonttype": "path",
    "font.size": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "path.simplify": False,
}
_PROLOGUE = re.compile(r"\A.*?(?=<svg)", re.DOTALL)
_REFERENCE = re.compile(r'(\bid="|href="#|url\(#)([^")]+)')


def style() -> Any:
    """The house style as a context manager: draw (not only save) inside it."""
    return matplotlib.rc_context(_STYLE)


def new_figure(width: float = 7.0, height: float = 3.2) -> Figure:
    """A fresh figure (inches) with constrained layout; create it and its axes in :func:`style`."""
    return Figure(figsize=(width, height), layout="constrained")


def to_svg(fig: Figure, salt: str, title: str = "") -> str:
    """``fig`` as an ``<svg>`` element for inlining in HTML (no XML prologue, no date).

    ``salt`` must be unique on the page (``"<section>:<figure>"``): matplotlib derives
    its marker and clip ids from it, and every id is prefixed with it. ``title`` becomes
    the SVG's accessible name.
    """
    buffer = io.StringIO()
    params: Any = {**_STYLE, "svg.hashsalt": salt}
    with matplotlib.rc_context(params):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Title": title or None})
    svg = _PROLOGUE.sub("", buffer.getvalue(), count=1)
    # Glyph and element ids ("DejaVuSans-41", "axes_1") repeat in every figure: prefix them
    # all so that ids stay unique once several figures share one page.
    prefix = re.sub(r"[^A-Za-z0-9_-]", "-", salt) + "-"
    svg = _REFERENCE.sub(lambda m: f"{m[1]}{prefix}{m[2]}", svg)
    return svg.replace("<svg ", '<svg role="img" class="plot" ', 1).strip() + "\n"


def finite(value: Any) -> float:
    """A record's number (JSON strings ``"nan"``/``"inf"`` included) as a float."""
    return float(value)


def _on_log_axis(value: Any) -> float:
    number = finite(value)
    if math.isnan(number) or math.isinf(number):
        return math.inf
    return max(number, FLOOR)


def ratio_dots(
    labels: Sequence[str],
    series: Mapping[str, Sequence[Any | None]],
    *,
    salt: str,
    xlabel: str = "error / tolerance (log scale; 1 = tolerance)",
    title: str = "",
) -> str:
    """One row per label, one marker per series, on a log x-axis with the limit at 1.

    Exact zeros are drawn at :data:`FLOOR` (labelled 'exact': never 0 on a log axis);
    non-finite values at the right edge, as red crosses; ``None`` values are left out.
    """
    with style():
        height = 0.9 + 0.19 * len(labels)
        fig = new_figure(7.0, height)
        ax = fig.add_subplot()
        rows = range(len(labels))
        finite_values = [_on_log_axis(v) for values in series.values() for v in values
                         if v is not None]
        top = max([v for v in finite_values if math.isfinite(v)] + [10.0]) * 3
        markers = "os^Dv<>"
        for i, (name, values) in enumerate(series.items()):
            points = [(_on_log_axis(v), r) for v, r in zip(values, rows, strict=True)
                      if v is not None]
            ax.scatter([min(x, top) for x, _ in points], [r for _, r in points], s=22,
                       marker=markers[i % len(markers)], color=PALETTE[i % len(PALETTE)],
                       label=name, zorder=3)
            bad = [(top, r) for x, r in points if not math.isfinite(x)]
            if bad:
                ax.scatter([x for x, _ in bad], [r for _, r in bad], s=40, marker="x",
                           color="#C00000", zorder=4)
        ax.axvline(1.0, color="#C00000", linewidth=1.2, linestyle="--", label="tolerance")
        ax.axvspan(1.0, top, color="#C00000", alpha=0.06)
        ax.set_xscale("log")
        ax.set_xlim(FLOOR / 3, top)
        ticks = [FLOOR, *(10.0**k for k in range(-10, int(math.log10(top)) + 1, 2))]
        # No "0" on a log axis: exact agreement sits at the left edge, labelled as such.
        ax.set_xticks(ticks, ["exact", *(f"1e{round(math.log10(t))}" for t in ticks[1:])])
        ax.minorticks_off()
        ax.set_yticks(list(rows), list(labels))
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.set_xlabel(xlabel)
        if title:
            ax.set_title(title, loc="left")
        ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    return to_svg(fig, salt, title)


def loglog(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    salt: str,
    xlabel: str,
    ylabel: str,
    title: str = "",
    fit: bool = True,
) -> str:
    """Log-log lines, one per series, each labelled with its fitted slope when ``fit``.

    The slope is the least-squares fit of :math:`\\log y = a \\log x + c`.
    """
    with style():
        fig = new_figure(6.0, 3.6)
        ax = fig.add_subplot()
        for i, (name, (xs, ys)) in enumerate(series.items()):
            label = name
            points = [(x, y) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
            if fit and len(points) >= 2:
                lx = [math.log(x) for x, _ in points]
                ly = [math.log(y) for _, y in points]
                mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
                sxx = sum((a - mx) ** 2 for a in lx)
                slope = sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sxx
                label = f"{name} (slope {slope:.2f})"
            ax.plot(list(xs), list(ys), marker="o", markersize=4, color=PALETTE[i % len(PALETTE)],
                    label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title, loc="left")
        ax.legend(fontsize=8)
    return to_svg(fig, salt, title)
