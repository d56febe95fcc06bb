r"""Check one registered op alone, the way the conformance matrix runs it.

An activation :math:`f` is checked through :math:`L(x) = \sum g \odot f(x)` with a random
upstream gradient :math:`g` (never ones: for softmax, :math:`\sum f = 1` would make the check
vacuous); a loss through its own reduction (with a random :math:`g` for ``reduction="none"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from manual.gradcheck.core import Array, straddles
from manual.gradcheck.modes import check_function
from manual.gradcheck.records import GradcheckRecord
from manual.random import stream
from manual.registry import OPS, OpInfo


def complex_form(op: OpInfo, options: Mapping[str, Any]) -> Any:
    """``op``'s analytic forward with ``options`` bound (a loss's per element, unreduced)."""
    form = op.calculus.complex_forward
    if form is None:
        raise ValueError(f"mode complex: {op.name} is not analytic (its registry entry has no "
                         f"complex forward); use full mode")
    rest = {k: v for k, v in options.items() if k != "reduction"}
    return lambda *arrays: form(*arrays, **rest)


def _per_element_loss(op: OpInfo, options: Mapping[str, Any], complex_step: bool) -> Any:
    if complex_step:
        return complex_form(op, options)
    rest = {**options, "reduction": "none"}
    return lambda z, t: op.forward(z, t, **rest)[0]


def check_op(
    op: OpInfo | str, x: Array, *, target: Array | None = None,
    options: Mapping[str, Any] | None = None, mode: str = "full", eps: float | None = None,
    seed: int = 0, k: int = 16,
) -> GradcheckRecord:
    """Check ``op``'s backward at ``x`` (``(N, C)``; a loss also needs ``target``)."""
    op = OPS[op] if isinstance(op, str) else op
    options = dict(op.defaults() | dict(options or {}))
    complex_step = mode == "complex"
    if complex_step:
        complex_form(op, options)  # refused here, before anything is computed
    x = np.asarray(x, dtype=np.float64)
    rng = stream(seed, "gradcheck", op.name)
    points = () if complex_step else tuple(op.domain.kinks(options))
    if op.kind == "activation":
        fn = (complex_form(op, options) if complex_step
              else (lambda z: op.forward(z, **options)[0]))
        g = rng.standard_normal(x.shape)
        _, cache = op.forward(x, **options)
        grad = op.backward(g, cache)

        def f(inputs: dict[str, Any]) -> Any:
            z = inputs["x"]
            return np.sum(g * fn(z), axis=tuple(range(z.ndim - x.ndim, z.ndim)))

        def kinks(name: str, plus: Array, minus: Array) -> Any:
            return straddles(plus, minus, points, tuple(range(1, plus.ndim)))

        scale = float(np.sum(np.abs(g * fn(x))))
    else:
        if target is None:
            raise ValueError(f"target: the loss {op.name} needs a target")
        t = np.asarray(target)
        t = t if t.dtype.kind in "iu" else t.astype(np.float64)
        ell_fn = _per_element_loss(op, options, complex_step)
        ell0 = _per_element_loss(op, options, False)(x, t)
        reduction = options.get("reduction", "mean")
        dloss: Any = rng.standard_normal(ell0.shape) if reduction == "none" else 1.0
        if reduction == "none":
            w = dloss
        elif reduction == "sum":
            w = np.ones_like(ell0)
        else:
            w = np.full_like(ell0, 1 / (x.shape[0] if reduction == "batchmean" else ell0.size))
        _, cache = op.forward(x, t, **options)
        grad = op.backward(np.asarray(dloss, dtype=np.float64), cache)

        def f(inputs: dict[str, Any]) -> Any:
            z = inputs["x"]
            if z.ndim == x.ndim:
                return np.sum(w * ell_fn(z, t))
            kk = len(z)
            tiled = np.tile(t, (kk,) + (1,) * (t.ndim - 1))
            ell = ell_fn(z.reshape(kk * x.shape[0], *x.shape[1:]), tiled).reshape(kk, *w.shape)
            return np.sum(w * ell, axis=tuple(range(1, ell.ndim)))

        shift = t if "real" in op.targets else 0.0

        def kinks(name: str, plus: Array, minus: Array) -> Any:
            return straddles(plus - shift, minus - shift, points, tuple(range(1, plus.ndim)))

        scale = float(np.sum(np.abs(w * ell0)))
    opts = ",".join(f"{key}={value}" for key, value in options.items())
    return check_function(
        f, {"x": x}, {"x": grad}, mode=mode, eps=eps, seed=seed, k=k, batched=True,
        kinks=kinks if points else None, scale=scale, subject=f"{op.name}({opts})",
    )
