"""``check_layer`` on a course-style conv layer with a 54-configuration sweep, both dtypes.

The sweep is H in (5, 6, 7) x stride in (1, 2, 3) x pad in (0, 1, 2) x filters F in (2, 4)
= 54 configurations; each runs in float32 and float64, without special inputs (108 cases)
and with them (kinks, ties and extremes on every configuration, batch 1 and odd sizes on the
first: 436 cases), the latter with ``neighbours=True`` (a sweep over every option leaves no
neighbour to add: the line says how many ran). The target is under 10 s on one core. A third
line times the shortest form, one configuration (``stride 1, pad 1``) with its defaults:
special inputs and the neighbours of the configuration. For scale, the script also times
PyTorch alone on the same cases (conv2d forward + backward), so the ratio says what the
harness and the user's NumPy layer add. Run:
``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_check_layer.py``.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits
from timing import machine_line

from reference.checks import check_layer


def conv_forward(x, w, b, conv_param):
    """A correct course-style conv: a loop over kernel offsets, vectorised over the rest."""
    stride, pad = conv_param["stride"], conv_param["pad"]
    f, _, hh, ww = w.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    h_out = (x.shape[2] + 2 * pad - hh) // stride + 1
    w_out = (x.shape[3] + 2 * pad - ww) // stride + 1
    out = np.zeros((x.shape[0], f, h_out, w_out), dtype=x.dtype)
    for i in range(hh):
        for j in range(ww):
            patch = xpad[:, :, i:i + stride * h_out:stride, j:j + stride * w_out:stride]
            out += np.einsum("nchw,fc->nfhw", patch, w[:, :, i, j])
    return out + b[None, :, None, None], (xpad, w, conv_param)


def conv_backward(dout, cache):
    xpad, w, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    h_out, w_out = dout.shape[2:]
    dxpad, dw = np.zeros_like(xpad), np.zeros_like(w)
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            rows, cols = slice(i, i + stride * h_out, stride), slice(j, j + stride * w_out, stride)
            dw[:, :, i, j] = np.einsum("nfhw,nchw->fc", dout, xpad[:, :, rows, cols])
            dxpad[:, :, rows, cols] += np.einsum("nfhw,fc->nchw", dout, w[:, :, i, j])
    height, width = xpad.shape[2] - 2 * pad, xpad.shape[3] - 2 * pad
    return dxpad[:, :, pad:pad + height, pad:pad + width], dw, dout.sum(axis=(0, 2, 3))


def torch_conv(x, w, b, conv_param):
    return F.conv2d(x, w, b, stride=conv_param["stride"], padding=conv_param["pad"])


INPUTS = {"x": (2, 3, "H", "H"), "w": ("F", 3, 3, 3), "b": ("F",)}
SWEEP = {"H": [5, 6, 7], "F": [2, 4],
         "conv_param": [{"stride": s, "pad": p} for s in (1, 2, 3) for p in (0, 1, 2)]}


def torch_alone(result) -> float:
    """PyTorch's forward + backward on the same cases' shapes, for the ratio."""
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    for case in result.cases:
        dtype = getattr(torch, case.dtype)
        shape = case.shapes.get("x") or (2, 3, case.sizes.get("H", 7), case.sizes.get("H", 7))
        x = torch.from_numpy(rng.standard_normal(shape)).to(dtype).requires_grad_(True)
        filters = case.sizes.get("F", 4)
        w = torch.randn(filters, 3, 3, 3, dtype=dtype, requires_grad=True)
        b = torch.randn(filters, dtype=dtype, requires_grad=True)
        out = torch_conv(x, w, b, case.overrides.get("conv_param", {"stride": 1, "pad": 1}))
        out.backward(torch.randn_like(out))
    return time.perf_counter() - start


def main() -> None:
    torch.set_num_threads(1)
    print(f"{machine_line()}; one thread")
    with threadpool_limits(limits=1):
        for special in (False, True):
            start = time.perf_counter()
            result = check_layer(conv_forward, conv_backward, torch=torch_conv, inputs=INPUTS,
                                 sweep=SWEEP, special=special, neighbours=special)
            elapsed = time.perf_counter() - start
            report(f"special={special!s:<5}", result, elapsed)
        start = time.perf_counter()
        result = check_layer(conv_forward, conv_backward, torch=torch_conv,
                             inputs={"x": (2, 3, 7, 7), "w": (4, 3, 3, 3), "b": (4,)},
                             options={"conv_param": {"stride": 1, "pad": 1}})
        report("shortest     ", result, time.perf_counter() - start)


def report(label: str, result, elapsed: float) -> None:
    if not result.passed:
        raise SystemExit(result.describe())
    near = sum(bool(c.neighbour) for c in result.cases)
    reference = torch_alone(result)
    print(f"{label}  {len(result.records):>3} cases ({near} neighbours, "
          f"{len(result.skipped)} skipped)  {elapsed:6.2f} s  "
          f"{1e3 * elapsed / len(result.records):5.1f} ms/case  "
          f"torch alone {reference:5.2f} s  ratio {elapsed / reference:5.1f}")


if __name__ == "__main__":
    main()
