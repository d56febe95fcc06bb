"""Forward + backward of ``batch_norm`` and ``layer_norm``: the manual engine against PyTorch.

Both run in the same process on one thread (``torch.set_num_threads(1)`` and numpy's BLAS
capped), in train mode, with the same inputs and a random upstream gradient. Times are
medians over repeats; the ratio is manual / torch (target: at most 1.5). Run:
``PYTHONPATH=. .venv/bin/python benchmarks/bench_norm.py [--repeats N] [--dtype float32]``.
The script prints OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (these kernels use no BLAS, so they
should not matter here).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from timing import machine_line

from manual.layers import LAYERS
from reference.builders import norm as builders

CASES: list[tuple[str, dict, tuple[int, ...]]] = [
    ("batch_norm", {}, (256, 512)),
    ("batch_norm", {}, (32, 64, 16, 16)),
    ("layer_norm", {}, (64, 128, 256)),
]


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(name: str, options: dict, shape: tuple[int, ...], dtype: str, repeats: int
          ) -> tuple[float, float]:
    info = LAYERS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    signature = info.signature(options, (shape[1:],))
    params = {k: s.init(rng, s.shape).astype(dtype) for k, s in signature.params.items()}
    state = {k: s.init(rng, s.shape).astype(s.dtype or dtype)
             for k, s in signature.state.items()}

    def manual_step() -> object:
        _, cache, _ = info.forward((x,), params, state, {}, training=True, **options)
        return info.backward(dy, cache)

    builder = getattr(builders, name)
    module = builder(info, options, signature, (shape[1:],), getattr(torch, dtype)).train()
    tx = torch.from_numpy(x).requires_grad_(True)
    tdy = torch.from_numpy(dy)

    def torch_step() -> object:
        tx.grad = None
        module.zero_grad(set_to_none=True)
        module(tx).backward(tdy)
        return tx.grad

    return _median_time(manual_step, repeats), _median_time(torch_step, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{machine_line()}; dtype={args.dtype} threads=1 repeats={args.repeats}")
    print(f"{'layer':12} {'shape':18} {'manual ms':>10} {'torch ms':>10} {'ratio':>7}")
    with threadpool_limits(1):
        for name, options, shape in CASES:
            ours, theirs = bench(name, options, shape, args.dtype, args.repeats)
            print(f"{name:12} {shape!s:18} {ours * 1e3:10.2f} {theirs * 1e3:10.2f} "
                  f"{ours / theirs:7.2f}")


if __name__ == "__main__":
    main()
