"""One training step (forward + loss + backward) of ``manual`` against ``reference``.

Both engines run the same MLP, parameters and data, in the same process and
with the same thread count; the script prints median times and the ratio
manual / reference. Run: ``.venv/bin/python benchmarks/bench_step.py [--threads N]``.

Where OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are set (as on some of this
project's machines), numpy's OpenBLAS runs slower than it could while torch's
BLAS is unaffected; the script prints both variables so that a quoted ratio
carries that caveat.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from timing import machine_line, paired_medians

import manual
from reference.conformance.matrix import mlp_spec
from reference.core import mirror

# (name, widths from input to output, batch)
SIZES = [
    ("seed 2-3-1", [2, 3, 1], 1),
    ("64-128-10", [64, 128, 10], 32),
    ("256-256-256-10", [256, 256, 256, 10], 128),
    ("512-512-512-10", [512, 512, 512, 10], 256),
    ("1024-1024-1024-10", [1024, 1024, 1024, 10], 512),
]


def relu_mlp(widths: list[int], dtype: str) -> manual.Spec:
    loss = "cross_entropy" if widths[-1] > 1 else "bce_with_logits"
    return mlp_spec(widths, "relu", loss, dtype)


def bench(widths: list[int], batch: int, dtype: str) -> tuple[float, float]:
    spec = relu_mlp(widths, dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, widths[0]))
    y = rng.integers(0, widths[-1], batch) if widths[-1] > 1 else rng.uniform(0, 1, (batch, 1))
    data = manual.make_data(spec, x, y)
    params = manual.initial_parameters(spec)

    net = manual.build(spec, {k: v.copy() for k, v in params.items()})

    def manual_step() -> None:
        net.zero_grad()
        net.loss(net.forward(data.x), data.y)
        net.backward()

    tnet = mirror.build(spec, params)
    # The input gradient is part of what the harness compares, so both engines compute it.
    tx, ty = torch.from_numpy(data.x).requires_grad_(True), torch.from_numpy(data.y)
    name = spec.inputs[0].name

    def torch_step() -> None:
        tnet.zero_grad(set_to_none=False)
        tx.grad = None
        values, _ = tnet({name: tx})
        tnet.loss_fn(values[spec.output], ty, **tnet.loss_options).backward()

    return paired_medians(manual_step, torch_step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS and torch threads (1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        print(f"threads={args.threads}  {machine_line()}")
        header = ("network", "batch", "dtype", "manual", "torch", "ratio")
        print("{:<20} {:>5} {:<8} {:>10} {:>10} {:>6}".format(*header))
        for name, widths, batch in SIZES:
            for dtype in ("float32", "float64"):
                m, r = bench(widths, batch, dtype)
                print(f"{name:<20} {batch:>5} {dtype:<8} {m * 1e6:>8.1f}us {r * 1e6:>8.1f}us "
                      f"{m / r:>6.2f}")


if __name__ == "__main__":
    main()
