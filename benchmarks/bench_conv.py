"""Forward + backward of convolution and pooling: ``manual`` against PyTorch, same run.

Cases are the issue's: ``conv2d`` 3x3 at (32, 16, 32, 32) -> 32 channels with padding 1, at
stride 1 and 2; max and average pooling of the result's size; and a small CNN (conv ->
relu -> max pool -> flatten -> linear) at batch 64 on 8x8 single-channel inputs. Both
engines compute the input gradient (the harness compares it) and run with one BLAS / OpenMP
thread. The script prints median times and the ratio manual / torch; the timings of the two
engines alternate, so that drift in the machine's load affects both alike.

Run: ``OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_conv.py``. Where
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are set, numpy's OpenBLAS may run slower than it could
while torch (oneDNN / its own BLAS) is unaffected; the script prints both variables.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from timing import machine_line, paired_medians
from torch import nn

from manual.layers import LAYERS

Chain = list[tuple[str, dict[str, Any]]]


def _manual_chain(chain: Chain, x: np.ndarray, dy_last: np.ndarray,
                  params: list[dict[str, np.ndarray]]) -> np.ndarray:
    """Forward then backward through registry entries, the one place this drives a network."""
    caches = []
    for (name, options), p in zip(chain, params, strict=True):
        x, cache, _ = LAYERS[name].forward((x,), p, {}, {}, training=True, **options)
        caches.append(cache)
    grad: np.ndarray | None = dy_last
    for (name, _), cache in zip(reversed(chain), reversed(caches), strict=True):
        (grad,), _ = LAYERS[name].backward(grad, cache)  # type: ignore[arg-type]
    assert grad is not None
    return grad


def _torch_layer(name: str, options: Mapping[str, Any], channels: int, dtype: torch.dtype
                 ) -> nn.Module:
    if name == "conv2d":
        return nn.Conv2d(channels, options["out_channels"], options["kernel_size"],
                         stride=options.get("stride", 1), padding=options.get("padding", 0),
                         dtype=dtype)
    if name == "linear":
        return nn.Linear(channels, options["out_features"], dtype=dtype)
    plain = {"relu": nn.ReLU, "flatten": nn.Flatten, "max_pool2d": nn.MaxPool2d,
             "avg_pool2d": nn.AvgPool2d}
    return plain[name](**options)


def bench(chain: Chain, input_shape: tuple[int, ...], dtype: str, budget: float
          ) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(input_shape).astype(dtype)
    shape, params, modules = input_shape[1:], [], []
    for name, options in chain:
        signature = LAYERS[name].signature(options, (shape,))
        module = _torch_layer(name, options, shape[-1] if name == "linear" else shape[0],
                              getattr(torch, dtype))
        # torch's own initial values, copied: conv and linear name their slots as torch does
        params.append({k: v.detach().numpy().copy() for k, v in module.named_parameters()})
        modules.append(module)
        shape = signature.shape
    dy = rng.standard_normal((input_shape[0], *shape)).astype(dtype)
    net = nn.Sequential(*modules)
    tx, tdy = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(dy)

    def torch_step() -> None:
        net.zero_grad(set_to_none=False)
        tx.grad = None
        net(tx).backward(tdy)

    return paired_medians(lambda: _manual_chain(chain, x, dy, params), torch_step, budget,
                          min_runs=5)


CONV = {"out_channels": 32, "kernel_size": 3, "padding": 1}
CASES: list[tuple[str, Chain, tuple[int, ...]]] = [
    ("conv2d 3x3 s1 p1 16->32", [("conv2d", CONV)], (32, 16, 32, 32)),
    ("conv2d 3x3 s2 p1 16->32", [("conv2d", {**CONV, "stride": 2})], (32, 16, 32, 32)),
    ("max_pool2d 2x2", [("max_pool2d", {"kernel_size": 2})], (32, 32, 32, 32)),
    ("max_pool2d 3x3 s2 p1", [("max_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1})],
     (32, 32, 32, 32)),
    ("avg_pool2d 2x2", [("avg_pool2d", {"kernel_size": 2})], (32, 32, 32, 32)),
    ("small CNN 8x8 b64", [("conv2d", {"out_channels": 8, "kernel_size": 3, "padding": 1}),
                           ("relu", {}), ("max_pool2d", {"kernel_size": 2}),
                           ("flatten", {}), ("linear", {"out_features": 10})], (64, 1, 8, 8)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=1.5,
                        help="seconds of paired timing per case (1.5)")
    parser.add_argument("--dtypes", default="float32,float64")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        print(f"threads=1  {machine_line()}  torch {torch.__version__} "
              f"mkldnn={torch.backends.mkldnn.is_available()}")
        print("{:<26} {:<8} {:>10} {:>10} {:>6}".format("case", "dtype", "manual", "torch",
                                                        "ratio"))
        for name, chain, shape in CASES:
            for dtype in args.dtypes.split(","):
                m, t = bench(chain, shape, dtype, args.budget)
                print(f"{name:<26} {dtype:<8} {m * 1e3:>8.2f}ms {t * 1e3:>8.2f}ms "
                      f"{m / t:>6.2f}")


if __name__ == "__main__":
    main()
