"""Vanishing and exploding gradients through time: both engines against the recurrent Jacobian.

Runs :func:`reports.experiments.bptt.run_experiment` for the report's profile (a few seconds in
either). A check is one quantitative target in one engine: the tanh rnn's per-step rate
against :math:`\\rho \\cdot \\operatorname{rms}\\phi'`, Pascanu et al.'s bound step by step,
the engines' agreement, a rising rate with the gates' keep bias, and ``clip_grad_norm``'s
result in each engine. The figures plot :math:`\\|\\partial L/\\partial x_t\\|` against
:math:`T - t` on a log scale, the manual engine as lines, PyTorch as circles, the prediction
dashed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

KEY = "bptt"
TITLE = "Vanishing and exploding gradients through time"
ORDER = 42


def collect(context: Any) -> Any:
    from reports.experiments import bptt

    bar = context.progress("gradients through time", 1)
    try:
        return bptt.run_experiment(context.profile, context.seed)
    finally:
        bar.update(1)
        bar.close()


def summarize(data: Mapping[str, Any]) -> dict[str, Any]:
    return {"passed": int(data["passed"]), "failed": int(data["failed"])}


def _panel(ax: Any, rows: Sequence[Mapping[str, Any]], predicted: bool) -> None:
    from reports.plots import PALETTE

    for i, row in enumerate(rows):
        colour = PALETTE[i % len(PALETTE)]
        manual = [float(v) for v in row["norms"]["manual"]]
        back = list(range(len(manual)))[::-1]  # T - t, with t = 0 .. T-1
        ax.plot(back, manual, color=colour, linewidth=1.4, label=row["setting"])
        ax.plot(back, [float(v) for v in row["norms"]["torch"]], linestyle="none", marker="o",
                markersize=2.5, markerfacecolor="none", color=colour, markevery=3)
        if predicted:  # anchored at the last step: ‖x̄_{T-1}‖ r^(T-1-t)
            rate = float(row["predicted"])
            ax.plot(back, [manual[-1] * rate ** k for k in back], color=colour,
                    linestyle="--", linewidth=0.9)
    ax.set_yscale("log")
    ax.set_xlabel("steps back from the loss, T − 1 − t")


def figures(data: Mapping[str, Any]) -> dict[str, str]:
    from reports import plots

    out = {}
    with plots.style():
        fig = plots.new_figure(7.5, 3.4)
        axes = fig.subplots(1, 2)
        rnn = data["rnn"]
        _panel(axes[0], rnn, predicted=True)
        axes[0].set_title("tanh rnn, W_hh = ρQ", loc="left", fontsize=9)
        axes[0].set_ylabel("mean ‖∂L/∂x_t‖")
        axes[0].legend(fontsize=7)
        _panel(axes[1], data["gated"], predicted=False)
        axes[1].set_title("lstm and gru, keep-gate bias", loc="left", fontsize=9)
        axes[1].legend(fontsize=6)
        out["curves"] = plots.to_svg(fig, "bptt:curves",
                                     "norm of dL/dx_t against steps back: manual (lines), "
                                     "torch (circles), prediction (dashed)")
    return out
