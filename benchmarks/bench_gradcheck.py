"""manual.gradcheck against torch.autograd.gradcheck, and the wall-clock cost of checking against P.

On the same MLPs (D -> H -> H -> 10, tanh, cross-entropy, batch 32, float64), in one run:
this checker's ``full`` mode against ``torch.autograd.gradcheck(fast_mode=False)`` and its
``projection`` mode against ``fast_mode=True``; every check covers the parameters and the
input. Torch checks its own autograd of the same network (same parameters, same data).
Then the time against the parameter count P of one backward, one forward, the batched full
numerical gradient and the seed's loop (one Python forward per perturbation), with fitted
log-log slopes. (The report's gradient-check section shows the same scaling as *counted*
multiply-adds, which do not depend on the machine; these are the matching wall-clock times.)

One thread for NumPy's BLAS and for torch. Times are the best of a few runs. Torch's slow
mode is only run where the fit over the smaller sizes predicts it within ``--torch-cap``
seconds; beyond that its time is extrapolated from that fit and marked as such.

The figures are written, with the machine's description (versions, thread counts, the
OPENBLAS_* variables, the date), to ``out/benchmarks/bench_gradcheck.json`` (untracked); the
report shows the latest run from there verbatim as "last benchmark run", else the committed
``benchmarks/results/bench_gradcheck.json`` (copy a run there to publish it).

    .venv/bin/python benchmarks/bench_gradcheck.py [--json PATH | --no-json] [--torch-cap 600]
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_info, threadpool_limits

import manual
from manual.files import atomic_write
from manual.gradcheck import check_network
from manual.gradcheck.core import NOISE_ULPS
from reports.experiments.gradcheck_cost import (
    fit_slope,
    mlp_data,
    mlp_spec,
    parameter_count,
    seed_loop,
)

SIZES = ((16, 32), (24, 48), (32, 64), (48, 96), (64, 128))
# A run writes under out/ (untracked); the report shows the latest run from there, else the
# committed figures in benchmarks/results/ (copy a run there to publish it).
RESULTS = Path(__file__).resolve().parents[1] / "out" / "benchmarks" / "bench_gradcheck.json"
CAVEAT = ("OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, when set, slow numpy's OpenBLAS but not "
          "torch's BLAS: NumPy-side times here are pessimistic on such a machine.")


def best_time(fn: Callable[[], Any], repeats: int) -> float:
    """The fastest of ``repeats`` runs, in seconds (the least disturbed by other work)."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def torch_subject(spec: Any, data: Any) -> tuple[Any, tuple[torch.Tensor, ...]]:
    params = manual.initial_parameters(spec)
    target = torch.as_tensor(data.y)
    inputs = tuple(torch.tensor(a, dtype=torch.float64, requires_grad=True)
                   for a in [data.x, *params.values()])

    def f(x: torch.Tensor, *p: torch.Tensor) -> torch.Tensor:
        h = x
        for i in range(3):
            h = F.linear(h, p[2 * i], p[2 * i + 1])
            if i < 2:
                h = torch.tanh(h)
        return F.cross_entropy(h, target)

    return f, inputs


def compare(features: int, hidden: int, slow_fit: list[tuple[int, float]],
            cap: float) -> dict[str, Any]:
    spec = mlp_spec(features, hidden)
    data = mlp_data(spec)
    p = parameter_count(spec)
    checked = p + data.x.size
    record = check_network(spec, data, "full")
    # The largest error of this (correct) gradient, in ulps of the loss scale over h: what
    # NOISE_ULPS in manual/gradcheck/core.py must cover.
    worst_ulps = max(t.max_abs_error / (t.noise / NOISE_ULPS) for t in record.tensors)
    f, inputs = torch_subject(spec, data)
    row: dict[str, Any] = {
        "name": spec.name, "P": p, "checked_elements": checked,
        "full_passed": record.passed, "full_max_rel_error": record.max_rel_error,
        "full": best_time(lambda: check_network(spec, data, "full"), 2),
        "projection": best_time(lambda: check_network(spec, data, "projection"), 5),
        "torch_fast": best_time(lambda: torch.autograd.gradcheck(f, inputs, fast_mode=True), 3),
        "torch_fast_passed": bool(torch.autograd.gradcheck(f, inputs, fast_mode=True)),
        "max_error_in_ulps_of_scale_over_h": worst_ulps,
    }
    predicted = None
    if len(slow_fit) >= 2:
        slope = fit_slope([c for c, _ in slow_fit], [t for _, t in slow_fit])
        c0, t0 = slow_fit[-1]
        predicted = t0 * (checked / c0) ** slope
    if predicted is None or predicted <= cap:
        verdict: list[bool] = []
        row["torch_slow"] = best_time(
            lambda: verdict.append(torch.autograd.gradcheck(f, inputs, fast_mode=False)), 1)
        row["torch_slow_passed"], row["torch_slow_extrapolated"] = verdict[0], False
        slow_fit.append((checked, row["torch_slow"]))
    else:
        row["torch_slow"], row["torch_slow_passed"] = predicted, None
        row["torch_slow_extrapolated"] = True
    row["ratio_slow_over_full"] = row["torch_slow"] / row["full"]
    row["ratio_fast_over_projection"] = row["torch_fast"] / row["projection"]
    return row


def time_scaling(sizes: Sequence[tuple[int, int]], repeats: int = 3) -> dict[str, Any]:
    """Wall-clock backward, forward, ``full`` and the seed's loop for each MLP size (seconds)."""
    points = []
    for features, hidden in sizes:
        spec = mlp_spec(features, hidden)
        data = mlp_data(spec)
        net = manual.build(spec)
        net.loss(net.forward(data.x), data.y)

        def forward(net: Any = net, data: Any = data) -> None:
            net.loss(net.forward(data.x), data.y)

        points.append({
            "P": parameter_count(spec), "name": spec.name,
            "backward": best_time(net.backward, 20 * repeats),
            "forward": best_time(forward, 20 * repeats),
            "full": best_time(functools.partial(check_network, spec, data, "full"), repeats),
            "seed_loop": best_time(functools.partial(seed_loop, spec, data), 1),
        })
    ps = [p["P"] for p in points]
    slopes = {key: fit_slope(ps, [p[key] for p in points])
              for key in ("backward", "forward", "full", "seed_loop")}
    return {"unit": "seconds (best of repeats)", "points": points, "slopes": slopes}


def machine() -> dict[str, Any]:
    """What the times depend on: versions, threads, BLAS libraries, OPENBLAS_* and the date."""
    blas = [{k: info.get(k) for k in ("user_api", "internal_api", "version", "num_threads",
                                      "threading_layer", "architecture")}
            for info in threadpool_info()]
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(), "numpy": np.__version__,
        "torch": torch.__version__, "platform": platform.platform(),
        "cpu_count": os.cpu_count(), "threads": {"numpy_blas": 1, "torch": 1},
        "blas": blas,
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
        "caveat": CAVEAT,
    }


def write_json(path: Path, result: dict[str, Any]) -> None:
    """Write atomically (temporary file, then rename)."""
    text = json.dumps(result, indent=1, sort_keys=True, allow_nan=False, default=float) + "\n"
    atomic_write(path, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", type=Path, default=RESULTS,
                        help=f"where to write the figures (default: {RESULTS})")
    parser.add_argument("--no-json", action="store_true", help="only print the figures")
    parser.add_argument("--torch-cap", type=float, default=600.0,
                        help="longest predicted torch slow-mode run to attempt (s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    # torch's first gradcheck pays one-off setup: do it before timing anything.
    f, inputs = torch_subject(mlp_spec(2, 2), mlp_data(mlp_spec(2, 2)))
    torch.autograd.gradcheck(f, inputs, fast_mode=True)
    rows: list[dict[str, Any]] = []
    slow_fit: list[tuple[int, float]] = []
    with threadpool_limits(1):
        info = machine()
        for features, hidden in SIZES:
            row = compare(features, hidden, slow_fit, args.torch_cap)
            rows.append(row)
            note = " (extrapolated)" if row["torch_slow_extrapolated"] else ""
            print(f"{row['name']:<18} P={row['P']:>6}  full {row['full']:.3f}s vs torch slow "
                  f"{row['torch_slow']:.2f}s{note}: x{row['ratio_slow_over_full']:.1f}   "
                  f"projection {row['projection'] * 1e3:.2f}ms vs torch fast "
                  f"{row['torch_fast'] * 1e3:.2f}ms: x{row['ratio_fast_over_projection']:.1f}",
                  flush=True)
        print("largest error of a correct gradient, in ulps of S/h: "
              + ", ".join(f"{r['max_error_in_ulps_of_scale_over_h']:.2f}" for r in rows)
              + f" (the noise floor assumes {NOISE_ULPS:g})")
        scaling = time_scaling(SIZES, repeats=3)
    for point in scaling["points"]:
        print(f"  P={point['P']:>6}  backward {point['backward'] * 1e6:8.1f}us  forward "
              f"{point['forward'] * 1e6:8.1f}us  full {point['full']:.3f}s  seed loop "
              f"{point['seed_loop']:.2f}s")
    ps = [r["P"] for r in rows]
    slopes = {**scaling["slopes"],
              "torch_slow": fit_slope(ps, [r["torch_slow"] for r in rows]),
              "torch_fast": fit_slope(ps, [r["torch_fast"] for r in rows]),
              "projection": fit_slope(ps, [r["projection"] for r in rows])}
    print("log-log slopes of seconds against P: "
          + ", ".join(f"{k} {v:.2f}" for k, v in slopes.items()))
    result = {"benchmark": "benchmarks/bench_gradcheck.py", "machine": info,
              "batch": int(mlp_data(mlp_spec(2, 2)).x.shape[0]), "rows": rows,
              "scaling": scaling, "slopes": slopes}
    if not args.no_json:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0 if all(r["full_passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
