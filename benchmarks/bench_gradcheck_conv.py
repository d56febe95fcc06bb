"""How the numerical gradient check's cost grows with the parameter count P on conv nets.

The net is ``examples/cnn.json``'s shape with every width scaled by ``c``: conv2d(c, 3x3,
padding 1, no bias) -> batch_norm -> relu -> max_pool2d(2) -> conv2d(2c, 3x3, stride 2,
padding 0) -> flatten -> linear(3), on (N, 1, 11, 11) inputs, float64, cross_entropy. It goes
through the general graph evaluator (``manual.gradcheck.graph``): each perturbation re-runs
the topological suffix downstream of the perturbed tensor, one NumPy forward per node, with
no batching across perturbations. ``full`` mode takes two evaluations per element of every
parameter and of the input (plus a retry at a smaller step where truncation is suspected),
so evaluations grow as P (plus the input's size), and each evaluation's cost as the suffix's
work, which for the widest layers also grows with c: the time grows faster than P.

At batch 2 the input's 242 elements are a small share of the evaluations, so the slopes are
the parameters'. Measured (2-core machine, one thread, OPENBLAS_CORETYPE=Haswell
OPENBLAS_L2_SIZE=512 set): c = 4, 8, 16, 32 give P = 439, 1451, 5203, 19619, evaluations
1362, 3386, 10890, 39722 and 1.8, 2.7, 7.1, 37.6 s; slopes over all four 0.89 (evaluations)
and 0.80 (time), between the two largest 0.98 and 1.26. Evaluations tend to 2P; each one
re-runs conv2 (work proportional to its c x 2c x 9 weights, most of P), so time tends to P^2,
hidden at small sizes by the per-node overhead.

For each c: P, the evaluations ``full`` made, its seconds, and the fitted log-log slopes of
evaluations and of time against P. One thread; a single run per size (a few seconds in all).

    OMP_NUM_THREADS=1 python benchmarks/bench_gradcheck_conv.py [--widths 4 8 16 32] [--batch 2]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence

import numpy as np
from timing import machine_line

import manual
from manual.gradcheck import check_network


def cnn(width: int) -> manual.Spec:
    return manual.parse_spec({"inputs": {"x": {"shape": [1, 11, 11]}}, "nodes": [
        {"name": "conv1", "type": "conv2d", "inputs": ["x"], "out_channels": width,
         "kernel_size": 3, "padding": 1, "bias": False},
        {"name": "bn", "type": "batch_norm", "inputs": ["conv1"]},
        {"name": "act", "type": "relu", "inputs": ["bn"]},
        {"name": "pool", "type": "max_pool2d", "inputs": ["act"], "kernel_size": 2},
        {"name": "conv2", "type": "conv2d", "inputs": ["pool"], "out_channels": 2 * width,
         "kernel_size": 3, "stride": 2},
        {"name": "flat", "type": "flatten", "inputs": ["conv2"]},
        {"name": "head", "type": "linear", "inputs": ["flat"], "out_features": 3}],
        "loss": {"type": "cross_entropy"}, "dtype": "float64", "seed": 0})


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 1, 11, 11))
    y = rng.integers(0, 3, args.batch)
    sizes, evaluations, seconds = [], [], []
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} {machine_line()} "
          f"batch={args.batch}")
    print(f"{'c':>4} {'P':>7} {'evaluations':>12} {'seconds':>9} {'ms/eval':>8} verdict")
    for width in args.widths:
        spec = cnn(width)
        data = manual.make_data(spec, x, y)
        p = sum(v.size for v in manual.initial_parameters(spec).values())
        start = time.perf_counter()
        record = check_network(spec, data, "full")
        elapsed = time.perf_counter() - start
        sizes.append(p)
        evaluations.append(record.forwards)
        seconds.append(elapsed)
        print(f"{width:>4} {p:>7} {record.forwards:>12} {elapsed:>9.2f} "
              f"{1e3 * elapsed / record.forwards:>8.3f} {'pass' if record.passed else 'FAIL'}")
    print(f"log-log slope against P: evaluations {slope(sizes, evaluations):.2f}, "
          f"time {slope(sizes, seconds):.2f}; between the two largest: evaluations "
          f"{slope(sizes[-2:], evaluations[-2:]):.2f}, time {slope(sizes[-2:], seconds[-2:]):.2f}")


if __name__ == "__main__":
    main()
