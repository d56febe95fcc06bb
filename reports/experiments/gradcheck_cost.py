"""The cost of the numerical gradient check against the parameter count :math:`P`.

One forward pass, one backward pass, this checker's batched ``full`` numerical gradient and the
seed's loop (one Python forward per perturbation) on MLPs of growing width, with the fitted
log-log slopes (the seed's claim: backprop :math:`O(P)`, the numerical gradient
:math:`O(P^2)`). Cost is *counted*, not timed, so the figures are the same on every machine:
the scalar multiply-adds of the linear layers, counted while the passes run
(:class:`LinearCounter` wraps the registry's ``linear`` entry; the checker counts its own
products in :attr:`manual.gradcheck.NetworkEvaluator.multiply_adds`). Wall-clock figures come
from ``benchmarks/bench_gradcheck.py``, which uses these same networks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

import manual
from manual.gradcheck import NetworkEvaluator
from manual.gradcheck.modes import run_check
from manual.layers import LAYERS
from manual.layers.core import linear_with
from manual.ops.linear import linear_backward, linear_forward
from manual.random import stream
from manual.spec import Spec
from reference.conformance.matrix import mlp_spec as matrix_mlp_spec

BATCH = 32


def mlp_spec(features: int, hidden: int, classes: int = 10, seed: int = 0) -> Spec:
    """``features -> hidden -> hidden -> classes``, tanh, cross-entropy (the issue's MLP)."""
    widths = [features, hidden, hidden, classes]
    return matrix_mlp_spec(widths, "tanh", "cross_entropy", seed=seed,
               name="mlp " + "-".join(map(str, widths)))


def mlp_data(spec: Spec, batch: int = BATCH, seed: int = 0) -> manual.Data:
    rng = stream(seed, "experiment", "gradcheck cost")
    x = rng.standard_normal((batch, spec.input_shape[0]))
    return manual.make_data(spec, x, rng.integers(0, spec.output_width, size=batch))


def parameter_count(spec: Spec) -> int:
    return sum(v.size for v in manual.initial_parameters(spec).values())


def seed_loop(spec: Spec, data: manual.Data) -> None:
    """The seed's numerical gradient: perturb, rebuild, run one forward, for every element."""
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
        forward, backward = linear_forward, linear_backward

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
