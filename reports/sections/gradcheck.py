"""Numerical gradient checking: backprop against central differences and the complex step.

The record holds, per checked tensor, the relative error :math:`|a - n| / (|a| + |n|)` (max and
where), the mode and the kinks crossed, for the seed's example, a network built to sit on a
ReLU kink, and a few random networks; and the measured cost against the parameter count
:math:`P` of one backward pass, one forward pass, this checker's ``full`` numerical gradient
(batched) and the seed's loop (one Python forward per perturbation), with the fitted log-log
slopes (the seed's claim: backprop :math:`O(P)`, the numerical gradient :math:`O(P^2)`).
Nothing here imports torch; the comparison with ``torch.autograd.gradcheck`` is in
``benchmarks/bench_gradcheck.py``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

KEY = "gradcheck"
TITLE = "Numerical gradient check"
ORDER = 30
SIZES = {"quick": ((8, 16), (16, 32), (24, 48), (32, 64)),
         "full": ((8, 16), (16, 32), (24, 48), (32, 64), (48, 96), (64, 128))}
RANDOM_NETWORKS = {"quick": 4, "full": 12}
BATCH = 32


def mlp_spec(features: int, hidden: int, classes: int = 10, seed: int = 0) -> Any:
    """``features -> hidden -> hidden -> classes``, tanh, cross-entropy (the issue's MLP)."""
    import manual

    return manual.parse_spec({
        "name": f"mlp {features}-{hidden}-{hidden}-{classes}", "input_shape": [features],
        "layers": [{"type": "linear", "out_features": hidden}, {"type": "tanh"},
                   {"type": "linear", "out_features": hidden}, {"type": "tanh"},
                   {"type": "linear", "out_features": classes}],
        "loss": {"type": "cross_entropy"}, "seed": seed,
    })


def mlp_data(spec: Any, batch: int = BATCH, seed: int = 0) -> Any:
    import manual

    rng = np.random.default_rng([seed, 5])
    x = rng.standard_normal((batch, spec.input_shape[0]))
    return manual.make_data(spec, x, rng.integers(0, spec.output_width, size=batch))


def parameter_count(spec: Any) -> int:
    import manual

    return sum(v.size for v in manual.initial_parameters(spec).values())


def best_time(fn: Callable[[], Any], repeats: int) -> float:
    """The fastest of ``repeats`` runs, in seconds (the least disturbed by other work)."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def seed_loop(spec: Any, data: Any) -> None:
    """The seed's numerical gradient: perturb, rebuild, run one forward, for every element."""
    import manual

    params = manual.initial_parameters(spec)
    for tensor in params.values():
        flat = tensor.reshape(-1)
        for i in range(flat.size):
            saved = flat[i]
            for step in (1e-6, -1e-6):
                flat[i] = saved + step
                net = manual.build(spec, params)
                net.loss(net.forward(data.x), data.y)
            flat[i] = saved


def fit_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of :math:`\\log y` against :math:`\\log x`."""
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def measure_scaling(sizes: Sequence[tuple[int, int]], repeats: int = 3,
                    loop: bool = True, progress: Any = None) -> dict[str, Any]:
    """Time backward, forward, ``full`` and (optionally) the seed's loop for each MLP size."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # one BLAS thread, as in `make test`: steadier on a shared machine
        return _measure_scaling(sizes, repeats, loop, progress)


def _measure_scaling(sizes: Sequence[tuple[int, int]], repeats: int, loop: bool,
                     progress: Any) -> dict[str, Any]:
    import manual
    from manual.gradcheck import check_network

    points = []
    for features, hidden in sizes:
        spec = mlp_spec(features, hidden)
        data = mlp_data(spec)
        net = manual.build(spec)
        net.loss(net.forward(data.x), data.y)
        def backward(net: Any = net) -> None:
            net.backward()

        def forward(net: Any = net, data: Any = data) -> None:
            net.loss(net.forward(data.x), data.y)

        def full(spec: Any = spec, data: Any = data) -> None:
            check_network(spec, data, "full")

        def loop_(spec: Any = spec, data: Any = data) -> None:
            seed_loop(spec, data)

        point = {
            "P": parameter_count(spec), "name": spec.name,
            "backward": best_time(backward, 20 * repeats),
            "forward": best_time(forward, 20 * repeats),
            "full": best_time(full, repeats),
            "seed_loop": best_time(loop_, 1) if loop else None,
        }
        points.append(point)
        if progress is not None:
            progress.update()
    ps = [p["P"] for p in points]
    slopes = {key: fit_slope(ps, [p[key] for p in points])
              for key in ("backward", "forward", "full", "seed_loop")
              if all(p[key] for p in points)}
    return {"batch": BATCH, "points": points, "slopes": slopes}


def _rows(record: Any, label: str) -> list[dict[str, Any]]:
    return [{
        "subject": label, "mode": record.mode, "tensor": t.name, "shape": t.shape,
        "checked": t.checked, "max_rel_error": t.max_rel_error, "worst_index": t.worst_index,
        "max_abs_error": t.max_abs_error, "noise": t.noise, "kinks_crossed": t.kinks_crossed,
        "max_rel_error_kinked": t.max_rel_error_kinked, "refined": t.refined,
        "verdict": t.verdict,
        "passed": t.passed, "located_by": t.located_by,
    } for t in record.tensors]


def _kink_example() -> tuple[Any, Any]:
    import manual

    spec = manual.parse_spec({
        "name": "relu unit exactly at its kink", "input_shape": [2],
        "layers": [{"type": "linear", "out_features": 2, "weight": [[2.0, -1.0], [0.3, 0.4]],
                    "bias": [0.0, 0.1]}, {"type": "relu"},
                   {"type": "linear", "out_features": 1, "weight": [[0.7, -0.8]],
                    "bias": [0.2]}],
        "loss": {"type": "mse"},
    })
    return spec, manual.make_data(spec, [[1.0, 2.0]], [[0.5]])


def _random_network(seed: int) -> tuple[Any, Any]:
    from manual.registry import ACTIVATIONS, LOSSES
    from reference.matrix import network_data, network_spec

    rng = np.random.default_rng([seed, 77])
    activation = list(ACTIVATIONS)[rng.integers(len(ACTIVATIONS))]
    loss = list(LOSSES)[rng.integers(len(LOSSES))]
    spec = network_spec(activation, loss, "float64", seed=seed, width=int(rng.integers(3, 9)),
                        features=int(rng.integers(2, 6)), classes=int(rng.integers(2, 5)))
    return spec, network_data(spec, batch=int(rng.integers(2, 6)))


def collect(context: Any) -> dict[str, Any] | None:
    import manual
    from manual.gradcheck import ACCEPTABLE, GOOD, check_network
    from manual.gradcheck.network import complex_refusal

    profile = context.profile if context.profile in SIZES else "quick"
    subjects: list[tuple[str, Any, Any]] = []
    seed_spec = manual.load_spec("examples/seed_example.json")
    subjects.append(("seed example", seed_spec,
                     manual.load_data("examples/seed_example_data.json", seed_spec)))
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
    scaling = measure_scaling(SIZES[profile], repeats=2 if profile == "quick" else 3,
                              progress=bar)
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
    }


def figures(data: Mapping[str, Any]) -> dict[str, str]:
    from reports.plots import loglog

    points = data["scaling"]["points"]
    names = {"backward": "one backward", "forward": "one forward",
             "full": "full numerical gradient (batched)", "seed_loop": "seed's loop (2P forwards)"}
    series = {label: ([p["P"] for p in points], [float(p[key]) for p in points])
              for key, label in names.items() if all(p[key] is not None for p in points)}
    return {"scaling": loglog(series, salt=f"{KEY}:scaling", xlabel="parameters P",
                              ylabel="seconds (best of repeats)",
                              title="Cost against parameter count")}
