"""Numerical gradient checking: backprop against central differences and the complex step.

The record holds, per checked tensor, the relative error :math:`|a - n| / (|a| + |n|)` (max and
where), the mode and the kinks crossed, for the seed's example, a network built to sit on a
ReLU kink, and a few random networks; and the cost against the parameter count :math:`P` of
one forward pass, one backward pass, this checker's ``full`` numerical gradient (batched) and
the seed's loop (one Python forward per perturbation), with the fitted log-log slopes (the
seed's claim: backprop :math:`O(P)`, the numerical gradient :math:`O(P^2)`).

Cost is *counted*, not timed, so that the record is the same on every run and machine: the
scalar multiply-adds of the linear layers, counted while the passes run (the engine's
``linear_forward``/``linear_backward`` are wrapped by :class:`LinearCounter`; the checker counts
its own products in :attr:`manual.gradcheck.NetworkEvaluator.multiply_adds`). Wall-clock
figures come from ``benchmarks/bench_gradcheck.py``; when its committed output
``benchmarks/results/bench_gradcheck.json`` exists, the record carries it verbatim.
Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

KEY = "gradcheck"
TITLE = "Numerical gradient check"
ORDER = 30
SIZES = {"quick": ((8, 16), (16, 32), (24, 48), (32, 64)),
         "full": ((8, 16), (16, 32), (24, 48), (32, 64), (48, 96), (64, 128))}
RANDOM_NETWORKS = {"quick": 4, "full": 12}
BATCH = 32
BENCHMARK_NAME = "benchmarks/results/bench_gradcheck.json"
BENCHMARK = Path(__file__).resolve().parents[2] / BENCHMARK_NAME
# Where benchmarks/bench_gradcheck.py writes a new run (out/ is not tracked); the report
# shows it when present, else the committed figures above.
LATEST_NAME = "out/benchmarks/bench_gradcheck.json"
LATEST = Path(__file__).resolve().parents[2] / LATEST_NAME


def mlp_spec(features: int, hidden: int, classes: int = 10, seed: int = 0) -> Any:
    """``features -> hidden -> hidden -> classes``, tanh, cross-entropy (the issue's MLP)."""
    from reference.matrix import mlp_spec as mlp

    widths = [features, hidden, hidden, classes]
    return mlp(widths, "tanh", "cross_entropy", seed=seed,
               name="mlp " + "-".join(map(str, widths)))


def mlp_data(spec: Any, batch: int = BATCH, seed: int = 0) -> Any:
    import manual

    rng = np.random.default_rng([seed, 5])
    x = rng.standard_normal((batch, spec.input_shape[0]))
    return manual.make_data(spec, x, rng.integers(0, spec.output_width, size=batch))


def parameter_count(spec: Any) -> int:
    import manual

    return sum(v.size for v in manual.initial_parameters(spec).values())


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


class LinearCounter:
    """Multiply-adds of the engine's linear layers, counted from the shapes they are called with.

    A forward :math:`X W^\\top` costs :math:`N D_{out} D_{in}`; a backward costs the same twice
    (:math:`G W` and :math:`G^\\top X`). Bias additions and the elementwise ops are not counted.
    """

    def __init__(self) -> None:
        self.forward_calls = 0
        self.multiply_adds = 0

    @contextlib.contextmanager
    def installed(self) -> Iterator[LinearCounter]:
        """Swap the registry's ``linear`` entry for one over counting wrappers of its pair for
        the duration of the block, then put back whatever was there."""
        from manual.layers import LAYERS
        from manual.layers.core import linear_with
        from manual.ops.linear import linear_backward as backward
        from manual.ops.linear import linear_forward as forward

        def counted_forward(x: Any, weight: Any, bias: Any) -> Any:
            self.forward_calls += 1
            self.multiply_adds += int(np.size(x)) // int(np.shape(weight)[1]) * int(np.size(weight))
            return forward(x, weight, bias)

        def counted_backward(dy: Any, cache: Any) -> Any:
            self.multiply_adds += 2 * int(np.size(dy)) // int(np.shape(cache.weight)[0]) * \
                int(np.size(cache.weight))
            return backward(dy, cache)

        saved = LAYERS["linear"]
        LAYERS["linear"] = linear_with(counted_forward, counted_backward)
        try:
            yield self
        finally:
            LAYERS["linear"] = saved


def count_scaling(sizes: Sequence[tuple[int, int]], loop: bool = True,
                  progress: Any = None) -> dict[str, Any]:
    """Count the multiply-adds of one forward, one backward, the batched ``full`` numerical
    gradient and (optionally) the seed's loop, for each MLP size, and fit log-log slopes."""
    import manual
    from manual.gradcheck import NetworkEvaluator
    from manual.gradcheck.modes import run_check

    points = []
    for features, hidden in sizes:
        spec = mlp_spec(features, hidden)
        data = mlp_data(spec)
        net = manual.build(spec)
        with LinearCounter().installed() as forward:
            net.loss(net.forward(data.x), data.y)
        with LinearCounter().installed() as backward:
            net.backward()
        evaluator = NetworkEvaluator(spec, data)
        record = run_check(evaluator, mode="full", subject=spec.name, spec=spec.to_dict())
        point: dict[str, Any] = {
            "P": parameter_count(spec), "name": spec.name,
            "forward": forward.multiply_adds, "backward": backward.multiply_adds,
            "full": evaluator.multiply_adds, "full_evaluations": record.forwards,
            "full_passed": record.passed, "seed_loop": None, "seed_loop_forwards": None,
        }
        if loop:
            with LinearCounter().installed() as counter:
                seed_loop(spec, data)
            point["seed_loop"] = counter.multiply_adds
            linears = sum(layer.type == "linear" for layer in spec.layers)
            point["seed_loop_forwards"] = counter.forward_calls // linears
        points.append(point)
        if progress is not None:
            progress.update()
    ps = [p["P"] for p in points]
    slopes = {key: fit_slope(ps, [p[key] for p in points])
              for key in ("backward", "forward", "full", "seed_loop")
              if all(p[key] for p in points)}
    return {"batch": BATCH, "unit": "multiply-adds", "points": points, "slopes": slopes}


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
    from reports.seed_figures import SEED_DATA, SEED_SPEC

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
