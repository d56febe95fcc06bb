"""Exploding and vanishing gradients: both engines against mean-field theory.

Runs :func:`reports.experiments.vanishing.run_experiment` for the report's profile. A check is one
quantitative target (a slope, He et al.'s or Glorot & Bengio's ratio) in one engine.
The figures plot the root mean square of :math:`\\partial L/\\partial h_l` per layer on a
log scale, the manual engine as lines, PyTorch as markers, theory dashed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

KEY = "vanishing"
TITLE = "Exploding and vanishing gradients"
ORDER = 40


def collect(context: Any) -> Any:
    from reports.experiments import vanishing

    bar = context.progress("vanishing gradients", vanishing.runs_in(
        vanishing.PROFILES[context.profile]))
    try:
        return vanishing.run_experiment(context.profile, context.seed, progress=bar.update)
    finally:
        bar.close()


def summarize(data: Mapping[str, Any]) -> dict[str, Any]:
    return {"passed": int(data["passed"]), "failed": int(data["failed"])}


def _rms(layers: Sequence[Mapping[str, Any]]) -> list[float]:
    return [math.sqrt(float(layer["delta_ms"])) for layer in layers]


def _theory(record: Mapping[str, Any]) -> list[float]:
    """The theory line, anchored at the manual engine's top layer."""
    top = float(record["layers"]["manual"][-1]["delta_ms"])
    if not top > 0 or not math.isfinite(top):
        return [math.nan] * len(record["theory_curve"])
    return [math.sqrt(top) * math.exp(0.5 * float(c)) for c in record["theory_curve"]]


def _panel(ax: Any, records: Sequence[Mapping[str, Any]], labels: Sequence[str],
           every: int = 1) -> None:
    from reports.plots import PALETTE

    for i, (record, label) in enumerate(zip(records, labels, strict=True)):
        colour = PALETTE[i % len(PALETTE)]
        layers = list(range(1, int(record["depth"]) + 1))
        ax.plot(layers, _rms(record["layers"]["manual"]), color=colour, linewidth=1.4,
                label=label)
        if "torch" in record["layers"]:
            ax.plot(layers, _rms(record["layers"]["torch"]), linestyle="none", marker="o",
                    markersize=2.5, markerfacecolor="none", color=colour, markevery=every)
        ax.plot(layers, _theory(record), color=colour, linestyle="--", linewidth=0.9)
    ax.set_yscale("log")
    ax.set_xlabel("layer l (input → output)")


def figures(data: Mapping[str, Any]) -> dict[str, str]:
    from reports import plots

    out = {}
    with plots.style():
        fig = plots.new_figure(7.5, 3.4)
        axes = fig.subplots(1, 2)
        groups = [[r for r in data["targets"] if r["activation"] == a] for a in ("tanh", "relu")]
        for ax, group, title in zip(axes, groups, ("tanh, σb = 0.05, inputs at q*",
                                                   "ReLU, σb = 0"), strict=True):
            _panel(ax, group, [r["name"].split(" ", 1)[1] for r in group])
            ax.set_title(title, loc="left", fontsize=9)
            ax.legend(fontsize=7)
        axes[0].set_ylabel("rms ∂L/∂h_l")
        out["targets"] = plots.to_svg(fig, "vanishing:targets",
                                      "RMS of dL/dh per layer: manual (lines), torch (circles), "
                                      "theory (dashed)")
    activations = list(dict.fromkeys(r["activation"] for r in data["grid"]))
    with plots.style():
        rows = math.ceil(len(activations) / 4)
        fig = plots.new_figure(7.5, 2.2 * rows + 0.4)
        axes = fig.subplots(rows, 4, squeeze=False).ravel()
        for ax, activation in zip(axes, activations, strict=False):
            group = [r for r in data["grid"] if r["activation"] == activation]
            _panel(ax, group, [r["name"].split(" / ", 1)[1] for r in group], every=5)
            ax.set_title(activation, loc="left", fontsize=9)
            ax.set_xlabel("")
        for ax in axes[len(activations):]:
            ax.set_visible(False)
        axes[0].legend(fontsize=6)
        out["grid"] = plots.to_svg(fig, "vanishing:grid",
                                   "RMS of dL/dh per layer for activations x initializations")
    return out
