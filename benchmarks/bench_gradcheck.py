"""manual.gradcheck against torch.autograd.gradcheck, and the cost of checking against P.

On the same MLPs (D -> H -> H -> 10, tanh, cross-entropy, batch 32, float64), in one run:
this checker's ``full`` mode against ``torch.autograd.gradcheck(fast_mode=False)`` and its
``projection`` mode against ``fast_mode=True``; every check covers the parameters and the
input. Torch checks its own autograd of the same network (same parameters, same data).
Then the cost against the parameter count P of one backward, one forward, the batched full
numerical gradient and the seed's loop, with fitted log-log slopes.

One thread for NumPy's BLAS and for torch. Times are the best of a few runs. Torch's slow
mode is only run where the fit over the smaller sizes predicts it within ``--torch-cap``
seconds; beyond that its time is extrapolated from that fit and marked as such.

    .venv/bin/python benchmarks/bench_gradcheck.py [--json out.json] [--torch-cap 600]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

import manual
from manual.gradcheck import check_network
from manual.gradcheck.core import NOISE_ULPS
from reports.sections.gradcheck import (
    best_time,
    fit_slope,
    measure_scaling,
    mlp_data,
    mlp_spec,
    parameter_count,
)

SIZES = ((16, 32), (24, 48), (32, 64), (48, 96), (64, 128))


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
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
    scaling = measure_scaling(SIZES, repeats=3)
    for point in scaling["points"]:
        print(f"  P={point['P']:>6}  backward {point['backward'] * 1e6:8.1f}us  forward "
              f"{point['forward'] * 1e6:8.1f}us  full {point['full']:.3f}s  seed loop "
              f"{point['seed_loop']:.2f}s")
    ps = [r["P"] for r in rows]
    slopes = {**scaling["slopes"],
              "torch_slow": fit_slope(ps, [r["torch_slow"] for r in rows]),
              "torch_fast": fit_slope(ps, [r["torch_fast"] for r in rows]),
              "projection": fit_slope(ps, [r["projection"] for r in rows])}
    print("log-log slopes against P: " + ", ".join(f"{k} {v:.2f}" for k, v in slopes.items()))
    result = {"rows": rows, "scaling": scaling, "slopes": slopes,
              "threads": 1, "torch": torch.__version__, "numpy": np.__version__}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2, allow_nan=False, default=float)
    return 0 if all(r["full_passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
