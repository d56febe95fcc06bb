"""Optimizers and lockstep training: torch.optim step by step, then whole runs on digits.

Three parts, all counted: the per-step conformance of every optimizer and schedule variant
in both dtypes (every parameter and state buffer after every step), the optimizer bug
zoo (each mutant must be killed), and Adam on scikit-learn's digits in both engines for
1000 steps, in float64 (must stay within 1e-10 relative) and in float32 (must stay
within float32's tolerance; its drift is shown beside float32's own drift from a float64
run of the same training).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from manual.spec import DTYPES

KEY = "training"
TITLE = "Optimizers and lockstep training"
ORDER = 35

STEPS = {"quick": 1000, "full": 1000}
WIDTHS = (64, 64, 64, 10)
FLOAT64_TARGET = 1e-10


def _conformance() -> list[dict[str, Any]]:
    from manual.optim import OPTIMIZERS, SCHEDULES
    from reference.training.optimizers import compare_optimizer

    cases: list[tuple[str, dict[str, Any], str | None, dict[str, Any]]] = [
        (o.name, dict(v), None, {}) for o in OPTIMIZERS.values() for v in o.variants]
    cases += [("sgd", {"lr": 0.1, "momentum": 0.9}, s.name, dict(v))
              for s in SCHEDULES.values() for v in s.variants]
    rows = []
    for name, options, schedule, schedule_options in cases:
        for dtype in DTYPES[::-1]:
            record = compare_optimizer(name, options, dtype, steps=10 if schedule else 6,
                                       seed=5, schedule=schedule,
                                       schedule_options=schedule_options)
            rows.append({
                "optimizer": name, "options": record.options, "schedule": schedule,
                "dtype": dtype, "passed": record.passed, "tensors": len(record.tensors),
                "first_divergence": record.first_divergence,
                "max_rel_error": max(t.max_rel_error for t in record.tensors),
                "tolerance_ratio": max(t.tolerance_ratio for t in record.tensors),
                "tolerance": record.tolerance_reason,
            })
    return sorted(rows, key=lambda r: (r["passed"], r["schedule"] or "", r["optimizer"]))


def collect(context: Any) -> dict[str, Any]:
    from reference.conformance.matrix import mlp_spec
    from reference.training.datasets import load_dataset
    from reference.training.lockstep import train_lockstep
    from reference.zoo.optim import MUTANTS, conformance_kill

    steps = STEPS[context.profile]
    bar = context.progress("training (conformance, zoo, digits)", 2 * steps)
    try:
        conformance = _conformance()
        zoo = [conformance_kill(m) for m in MUTANTS]
        digits = load_dataset("digits", context.seed)
        runs = []
        for dtype in DTYPES[::-1]:
            spec = mlp_spec(WIDTHS, "relu", "cross_entropy", dtype, seed=context.seed,
                            name="digits MLP 64-64-64-10")
            runs.append(train_lockstep(spec, digits, "adam", {"lr": 1e-3}, steps=steps,
                                       batch_size=32, seed=context.seed,
                                       float64_shadow=dtype == "float32",
                                       progress=bar.update))
    finally:
        bar.close()
    checks = ([r["passed"] for r in conformance] + [k.killed for k in zoo]
              + [runs[0].passed and runs[0].max_param_diff < FLOAT64_TARGET, runs[1].passed])
    errors = {dtype: {"max_rel_error": max(r["max_rel_error"] for r in conformance
                                           if r["dtype"] == dtype),
                      "tolerance_ratio": max(r["tolerance_ratio"] for r in conformance
                                             if r["dtype"] == dtype)}
              for dtype in DTYPES}
    f64, f32 = runs
    shadow = f32.float64_diff or []
    milestones = [{"step": k, "float64": f64.param_diff[k - 1], "float32": f32.param_diff[k - 1],
                   "float32_vs_float64": shadow[k - 1] if shadow else None}
                  for k in (1, 10, 100, 300, steps) if k <= steps]
    return {"conformance": conformance, "zoo": zoo, "runs": runs, "steps": steps,
            "milestones": milestones,
            "largest": {"float64": f64.max_param_diff, "float32": f32.max_param_diff,
                        "float32_vs_float64": max(shadow, default=0.0)},
            "float64_target": FLOAT64_TARGET, "passed": sum(checks),
            "failed": len(checks) - sum(checks), "errors": errors}


def summarize(data: Mapping[str, Any]) -> dict[str, Any]:
    return {"passed": int(data["passed"]), "failed": int(data["failed"]),
            "errors": data["errors"]}


def figures(data: Mapping[str, Any]) -> dict[str, str]:
    from reports import plots

    runs = {run["dtype"]: run for run in data["runs"]}
    out = {}
    with plots.style():
        fig = plots.new_figure(7.5, 3.0)
        axes = fig.subplots(1, 2, sharey=True)
        for ax, dtype in zip(axes, DTYPES[::-1], strict=True):
            run = runs[dtype]
            xs = list(range(1, len(run["loss_torch"]) + 1))
            ax.plot(xs, [plots.finite(v) for v in run["loss_manual"]], color=plots.PALETTE[0],
                    linewidth=1.2, label="manual")
            ax.plot(xs, [plots.finite(v) for v in run["loss_torch"]], color=plots.PALETTE[1],
                    linewidth=0.8, linestyle="--", label="PyTorch")
            ax.set_yscale("log")
            ax.set_title(dtype, loc="left", fontsize=9)
            ax.set_xlabel("step")
        axes[0].set_ylabel("mini-batch loss")
        axes[0].legend(fontsize=8)
        out["loss"] = plots.to_svg(fig, "training:loss", "Mini-batch loss per step, both "
                                   "engines, float64 and float32")
    with plots.style():
        fig = plots.new_figure(7.5, 3.2)
        ax = fig.add_subplot()
        series = [("float64: manual vs PyTorch", runs["float64"]["param_diff"], 0),
                  ("float32: manual vs PyTorch", runs["float32"]["param_diff"], 1),
                  ("float32 PyTorch vs float64 PyTorch", runs["float32"]["float64_diff"], 2)]
        for label, values, colour in series:
            ys = [max(plots.finite(v), plots.FLOOR) for v in values]
            ax.plot(range(1, len(ys) + 1), ys, color=plots.PALETTE[colour], linewidth=1.1,
                    label=label)
        ax.axhline(float(data["float64_target"]), color="#C00000", linestyle="--",
                   linewidth=1, label="float64 target 1e-10")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("max relative parameter difference")
        ax.legend(fontsize=7, loc="center right")
        out["drift"] = plots.to_svg(fig, "training:drift", "Largest relative parameter "
                                    "difference per step, log axis")
    return out
