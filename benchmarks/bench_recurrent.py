"""Forward + backward of recurrent cells and attention: ``manual`` against PyTorch, same run.

Each case is a graph spec (the layer, then a linear head on the last time step's features,
``mse``) built once in each engine (``manual.build``, ``reference.core.mirror.build``, the same
parameters); one step is forward, loss and backward with the input gradient, as the harness
runs it. One BLAS / torch thread; the engines' timings alternate. Run:
``OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_recurrent.py``. The script
prints OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, which slow numpy's OpenBLAS where they are set.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from timing import machine_line, paired_medians

import manual
from reference.core import mirror

# (name, layer options, per-sample input shapes, batch)
CASES: list[tuple[str, dict[str, Any], list[list[int]], int]] = [
    ("lstm T=32 D=H=128", {"type": "lstm", "hidden_size": 128}, [[32, 128]], 16),
    ("gru T=32 D=H=128", {"type": "gru", "hidden_size": 128}, [[32, 128]], 16),
    ("rnn tanh T=32 D=H=128", {"type": "rnn", "hidden_size": 128}, [[32, 128]], 16),
    ("mha L=64 E=128 8 heads", {"type": "multi_head_attention", "embed_dim": 128,
                                "num_heads": 8}, [[64, 128]] * 3, 8),
]


def case_spec(layer: dict[str, Any], shapes: list[list[int]], dtype: str) -> manual.Spec:
    inputs = {f"x{i}": {"shape": s} for i, s in enumerate(shapes)}
    return manual.parse_spec({
        "inputs": inputs, "loss": {"type": "mse"}, "dtype": dtype, "nodes": [
            {"name": "layer", "inputs": list(inputs), **layer},
            {"name": "last", "type": "select", "inputs": ["layer"], "dim": 1, "index": -1},
            {"name": "head", "type": "linear", "inputs": ["last"], "out_features": 4}]})


def bench(layer: dict[str, Any], shapes: list[list[int]], batch: int, dtype: str
          ) -> tuple[float, float]:
    spec = case_spec(layer, shapes, dtype)
    rng = np.random.default_rng(0)
    arrays = {f"x{i}": rng.standard_normal((batch, *s)).astype(dtype)
              for i, s in enumerate(shapes)}
    y = rng.standard_normal((batch, 4)).astype(dtype)
    params = manual.initial_parameters(spec)
    net = manual.build(spec, {k: v.copy() for k, v in params.items()})

    def manual_step() -> None:
        net.zero_grad()
        net.loss(net.forward(arrays), y)
        net.backward()

    tnet = mirror.build(spec, params)
    feed = {k: torch.from_numpy(v).requires_grad_(True) for k, v in arrays.items()}
    ty = torch.from_numpy(y)

    def torch_step() -> None:
        tnet.zero_grad(set_to_none=False)
        for tensor in feed.values():
            tensor.grad = None
        values, _ = tnet(feed)
        tnet.loss_fn(values[spec.output], ty).backward()

    return paired_medians(manual_step, torch_step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", default="float32,float64")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        print(machine_line())
        print(f"{'case':<26} {'dtype':<8} {'manual':>10} {'torch':>10} {'ratio':>6}")
        for name, layer, shapes, batch in CASES:
            for dtype in args.dtypes.split(","):
                m, r = bench(layer, shapes, batch, dtype)
                print(f"{name:<26} {dtype:<8} {m * 1e3:>8.2f}ms {r * 1e3:>8.2f}ms "
                      f"{m / r:>6.2f}")


if __name__ == "__main__":
    main()
