"""Mutants that only a strict check kills: the classes that survived a loosened harness.

An independent trial found that the mistakes which slip through are those whose *values* are
right or nearly right, so that only one rule of the harness stands between them and a pass:

- ``bias_grad_keepdims``: the bias gradient kept as ``(1, out)`` (``keepdims=True``) and added
  with broadcasting, as many hand-written engines do; only the shape rule kills it;
- ``loss_none_keepdims``: cross-entropy with ``reduction='none'`` returns ``(N, 1)`` for
  PyTorch's ``(N,)``, a column for a vector (only the shape rule);
- ``dW_transposed_if_square``: ``dW = xᵀ·dy``, transposed back when its shape does not fit, so
  the result is right for every non-square layer and wrong (transposed) for square ones; only
  a square layer in the suite or the fuzzer kills it;
- ``linear_dW_float16``: the weight gradient multiplied in half precision, a relative error
  ~1e-3 that only a rounding allowance measured (not guessed) refuses in float32;
- ``bce_denominator_eps``: ``(x - t) / (x(1 - x) + 1e-6)``, a relative error of a few 1e-6
  that float32's tolerance forgives; only float64's tolerance and the gradient check's GOOD
  band refuse it.

Each is a :class:`~reference.zoo.core.Mutant` like the main zoo's, killed the same way
(:func:`reference.zoo.core.kill`); ``tests/test_negative_zoo.py`` requires it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from manual.module import Layer
from manual.ops import classification_losses as cls
from manual.ops.reduction import upstream
from reference.zoo.core import Mutant, Patch, _backward, _linear_pair, _op


def _linear_bias_keepdims(dy: Any, cache: Any) -> Any:
    x, weight = cache
    return dy @ weight, dy.T @ x, np.sum(dy, axis=0, keepdims=True)


def _broadcasting_accumulate(self: Any, dy: Any) -> Any:
    """``grads[k] = grads[k] + g``: the hand-written engine's accumulation, which broadcasts."""
    dinputs, dparams = self.info.backward(dy, self.cache)
    for name, grad in dparams.items():
        self.grads[name] = self.grads[name] + grad
    return dinputs


def _bias_keepdims_patches() -> list[Patch]:
    linear = _linear_pair(backward=_linear_bias_keepdims)()
    return [*linear, (Layer, "backward", _broadcasting_accumulate)]


def _linear_dw_transposed_if_square(dy: Any, cache: Any) -> Any:
    x, weight = cache
    dweight = x.T @ dy  # (in, out)
    if dweight.shape != weight.shape:  # "fix" the shape: right for every non-square layer
        dweight = dweight.T
    return dy @ weight, dweight, np.sum(dy, axis=0)


def _linear_dw_float16(dy: Any, cache: Any) -> Any:
    x, weight = cache
    dweight = (dy.T.astype(np.float16) @ x.astype(np.float16)).astype(weight.dtype)
    return dy @ weight, dweight, np.sum(dy, axis=0)


def _cross_entropy_none_keepdims(x: Any, target: Any, reduction: str = "mean",
                                 **options: Any) -> Any:
    loss, cache = cls.cross_entropy_forward(x, target, reduction, **options)
    if reduction == "none" and np.ndim(loss) == 1:
        loss = loss[:, None]  # a column per sample: (N, 1) for (N,)
    return loss, cache


def _bce_backward_denominator_eps(dloss: Any, cache: Any) -> Any:
    x, t, reduction, w = cache.x, cache.target, cache.reduction, cache.weight
    g = upstream(dloss, reduction, x.size, x.dtype)
    if w is not None:
        g = g * w
    return g * (x - t) / ((1 - x) * x + x.dtype.type(1e-6))


SURVIVOR_MUTANTS: tuple[Mutant, ...] = (
    Mutant("bias_grad_keepdims", "bias gradient kept as (1, out) with keepdims=True and added "
           "with broadcasting: right values, wrong shape", _bias_keepdims_patches),
    Mutant("loss_none_keepdims", "cross-entropy with reduction='none' returns an (N, 1) column "
           "for PyTorch's (N,)",
           lambda: _op("cross_entropy", forward=_cross_entropy_none_keepdims),
           ("cross_entropy",)),
    Mutant("dW_transposed_if_square", "dW = xᵀ·dy, transposed only when the shape does not "
           "fit: right for non-square layers, transposed for square ones",
           _linear_pair(backward=_linear_dw_transposed_if_square)),
    Mutant("linear_dW_float16", "the weight gradient multiplied in float16 (a relative error "
           "~1e-3, far above float32 rounding)", _linear_pair(backward=_linear_dw_float16)),
    Mutant("bce_denominator_eps", "bce backward adds 1e-6 to x(1 - x) in the denominator (a "
           "relative error of a few 1e-6, inside float32's tolerance)",
           _backward("bce", _bce_backward_denominator_eps), ("bce",)),
)

SURVIVORS: dict[str, Mutant] = {m.name: m for m in SURVIVOR_MUTANTS}
