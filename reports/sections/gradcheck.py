"""Numerical gradient checking: backprop against central differences and the complex step.

The record holds, per checked tensor, the relative error :math:`|a - n| / (|a| + |n|)` (max and
where), the mode and the kinks crossed, for the seed's example, a network built to sit on a
ReLU kink, and a few random networks; and the cost against the parameter count :math:`P` of
one forward pass, one backward pass, this checker's ``full`` numerical gradient (batched) and
the seed's loop (one Python forward per perturbation), with the fitted log-log slopes (the
seed's claim: backprop :math:`O(P)`, the numerical gradient :math:`O(P^2)`).

Cost is *counted*, not timed, so that the record is the same on every run and machine (the
experiment is :mod:`reports.experiments.gradcheck_cost`). Wall-clock figures come from
``benchmarks/bench_gradcheck.py``; when its output exists, the record carries it verbatim.
Nothing here imports torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import manual
from manual.gradcheck import ACCEPTABLE, GOOD, check_network
from manual.gradcheck.network import complex_refusal
from manual.random import stream
from manual.registry import ACTIVATIONS, LOSSES
from reference.conformance.matrix import network_data, network_spec
from reports.experiments.gradcheck_cost import count_scaling
from reports.experiments.seed_figures import SEED_DATA, SEED_SPEC

KEY = "gradcheck"
TITLE = "Numerical gradient check"
ORDER = 30
SIZES = {"quick": ((8, 16), (16, 32), (24, 48), (32, 64)),
         "full": ((8, 16), (16, 32), (24, 48), (32, 64), (48, 96), (64, 128))}
RANDOM_NETWORKS = {"quick": 4, "full": 12}
BENCHMARK_NAME = "benchmarks/results/bench_gradcheck.json"
BENCHMARK = Path(__file__).resolve().parents[2] / BENCHMARK_NAME
# Where benchmarks/bench_gradcheck.py writes a new run (out/ is not tracked); the report
# shows it when present, else the committed figures above.
LATEST_NAME = "out/benchmarks/bench_gradcheck.json"
LATEST = Path(__file__).resolve().parents[2] / LATEST_NAME


def last_benchmark(path: Path | None = None) -> dict[str, Any] | None:
    """The wall-clock figures of ``benchmarks/bench_gradcheck.py`` (``path``, by default the
    latest run :data:`LATEST` when present, else the committed :data:`BENCHMARK`), read
    verbatim (``None`` when the file is absent), so that the
    report itself never times anything."""
    name = BENCHMARK_NAME
    if path is None:
        path, name = (LATEST, LATEST_NAME) if LATEST.is_file() else (BENCHMARK, BENCHMARK_NAME)
    if not path.is_file():
        return None
    try:
        figures = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{name}: not readable JSON: {error}") from error
    return {"source": name, **figures}


def _rows(record: Any, label: str) -> list[dict[str, Any]]:
    return [{
        "subject": label, "mode": record.mode, "tensor": t.name, "shape": t.shape,
        "checked": t.checked, "max_rel_error": t.max_rel_error, "worst_index": t.worst_index,
        "max_abs_error": t.max_abs_error, "noise": t.noise, "kinks_crossed": t.kinks_crossed,
        "max_rel_error_kinked": t.max_rel_error_kinked, "refined": t.refined,
        "verdict": t.verdict,
        "passed": t.passed, "located_by": t.located_by,
    } for t in record.tensors]


def _kink_example() -> tuple[manual.Spec, manual.Data]:
    spec = manual.parse_spec({
        "name": "relu unit exactly at its kink", "input_shape": [2],
        "layers": [{"type": "linear", "out_features": 2, "weight": [[2.0, -1.0], [0.3, 0.4]],
                    "bias": [0.0, 0.1]}, {"type": "relu"},
                   {"type": "linear", "out_features": 1, "weight": [[0.7, -0.8]],
                    "bias": [0.2]}],
        "loss": {"type": "mse"},
    })
    return spec, manual.make_data(spec, [[1.0, 2.0]], [[0.5]])


def _random_network(seed: int) -> tuple[manual.Spec, manual.Data]:
    rng = stream(seed, "report", "gradcheck network")
    activation = list(ACTIVATIONS)[rng.integers(len(ACTIVATIONS))]
    loss = list(LOSSES)[rng.integers(len(LOSSES))]
    spec = network_spec(activation, loss, "float64", seed=seed, width=int(rng.integers(3, 9)),
                        features=int(rng.integers(2, 6)), classes=int(rng.integers(2, 5)))
    return spec, network_data(spec, batch=int(rng.integers(2, 6)))


def collect(context: Any) -> dict[str, Any] | None:
    profile = context.profile if context.profile in SIZES else "quick"
    subjects: list[tuple[str, Any, Any]] = []
    seed_spec = manual.load_spec(SEED_SPEC)
    subjects.append(("seed example", seed_spec,
                     manual.load_data(SEED_DATA, seed_spec)))
    subjects.append(("kink example", *_kink_example()))
    for i in range(RANDOM_NETWORKS[profile]):
        spec, data = _random_network(context.seed + i)
        subjects.append((spec.name, spec, data))
    rows: list[dict[str, Any]] = []
    bar = context.progress("gradcheck", len(subjects) + len(SIZES[profile]))
    for label, spec, data in subjects:
        modes = ["full", "projection"] + ([] if complex_refusal(spec) else ["complex"])
        for mode in modes:
            rows.extend(_rows(check_network(spec, data, mode, seed=context.seed), label))
        bar.update()
    scaling = count_scaling(SIZES[profile], progress=bar)
    bar.close()
    rows.sort(key=lambda r: (r["passed"], r["subject"]))
    judged = [r["max_rel_error"] for r in rows]
    return {
        "bands": {"good": GOOD, "acceptable": ACCEPTABLE},
        "rows": rows,
        "passed": sum(bool(r["passed"]) for r in rows),
        "failed": sum(not r["passed"] for r in rows),
        "kinks_crossed": sum(r["kinks_crossed"] for r in rows),
        "errors": {"float64": {"max_rel_error": max(judged, default=0.0),
                               "tolerance_ratio": max(judged, default=0.0) / GOOD}},
        "scaling": scaling,
        "benchmark": last_benchmark(),
    }


def figures(data: Mapping[str, Any]) -> dict[str, str]:
    from reports.plots import loglog

    points = data["scaling"]["points"]
    names = {"backward": "one backward", "forward": "one forward",
             "full": "full numerical gradient (batched)", "seed_loop": "seed's loop (2P forwards)"}
    series = {label: ([p["P"] for p in points], [float(p[key]) for p in points])
              for key, label in names.items() if all(p[key] is not None for p in points)}
    return {"scaling": loglog(series, salt=f"{KEY}:scaling", xlabel="parameters P",
                              ylabel="multiply-adds (counted)",
                              title="Counted cost against parameter count")}
