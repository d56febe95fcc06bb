"""One epoch of digits training (Adam, batch 32) in each engine, in the same run.

Both engines train the same MLP from the same parameters on the same mini-batches: the
manual engine as a plain loop (``zero_grad``, forward, loss, backward,
:func:`manual.optim.adam` on every parameter), PyTorch as its idiomatic loop on the mirror
(``zero_grad``, forward, loss, ``backward``, ``torch.optim.Adam(foreach=False)``). The
loops drive the networks directly rather than through :mod:`reference.core.run`, whose copies
and retained gradients would be timed as the engines' cost. Epochs alternate between the engines;
the script prints the median epoch time of each and the ratio manual / torch.
Run: ``.venv/bin/python benchmarks/bench_train.py [--repeats R] [--threads N]``.
It prints OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which slow numpy's OpenBLAS where set.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from timing import machine_line

import manual
from manual.optim import adam
from reference.conformance.matrix import mlp_spec
from reference.core import mirror
from reference.training.datasets import load_dataset
from reference.training.lockstep import batches

SIZES = [("64-64-64-10", [64, 64, 64, 10]), ("64-128-128-10", [64, 128, 128, 10])]
BATCH = 32
LR = 1e-3


def manual_epoch(spec: manual.Spec, params: dict, x: np.ndarray, y: np.ndarray,
                 order: list[np.ndarray]) -> None:
    net = manual.build(spec, {k: v.copy() for k, v in params.items()})
    weights = net.named_parameters()
    states: dict = {name: {} for name in params}
    for rows in order:
        net.zero_grad()
        net.loss(net.forward(x[rows]), y[rows])
        net.backward()
        grads = net.named_grads()
        for name, weight in weights.items():
            weight[...], states[name] = adam(weight, grads[name], states[name], lr=LR)


def torch_epoch(spec: manual.Spec, params: dict, x: np.ndarray, y: np.ndarray,
                order: list[np.ndarray]) -> None:
    net = mirror.build(spec, params)
    optimizer = torch.optim.Adam(list(net.named_slots("params").values()), lr=LR,
                                 foreach=False)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    name = spec.inputs[0].name
    for rows in order:
        index = torch.from_numpy(rows)
        optimizer.zero_grad()
        values, _ = net({name: tx[index]})
        loss = net.loss_fn(values[spec.output], ty[index], **net.loss_options)
        loss.backward()
        optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}; {machine_line()}; torch {torch.__version__}, "
          f"numpy {np.__version__}")
    data = load_dataset("digits")
    n = len(data.y_train)
    steps = -(-n // BATCH)
    order = list(batches(n, BATCH, steps, seed=0))
    print(f"digits: {n} training rows, batch {BATCH}, {steps} steps per epoch")
    print(f"{'network':<16} {'dtype':<8} {'manual ms':>10} {'torch ms':>10} {'manual/torch':>13}")
    with threadpool_limits(limits=args.threads):
        for label, widths in SIZES:
            for dtype in ("float32", "float64"):
                spec = mlp_spec(widths, "relu", "cross_entropy", dtype, seed=0)
                start = manual.initial_parameters(spec)
                x = data.x_train.astype(dtype)
                times: dict[str, list[float]] = {"manual": [], "torch": []}
                for _ in range(args.repeats):
                    for name, epoch in (("manual", manual_epoch), ("torch", torch_epoch)):
                        params = {k: v.copy() for k, v in start.items()}
                        t0 = time.perf_counter()
                        epoch(spec, params, x, data.y_train, order)
                        times[name].append(time.perf_counter() - t0)
                m, t = (statistics.median(times[k]) * 1e3 for k in ("manual", "torch"))
                print(f"{label:<16} {dtype:<8} {m:>10.1f} {t:>10.1f} {m / t:>12.2f}x")


if __name__ == "__main__":
    main()
