"""The three reductions that PyTorch's losses share."""

from __future__ import annotations

import numpy as np

from manual.numerics import Array

REDUCTIONS = ("mean", "sum", "none")


def reduce(elementwise: Array, reduction: str, count: int | None = None) -> Array:
    """Reduce per-element losses: ``mean`` divides the sum by ``count``.

    ``count`` defaults to the number of elements; losses whose mean is taken over
    the batch only (``cross_entropy``, ``nll``, ``kl_div`` with ``batchmean``)
    pass the batch size.
    """
    if reduction == "none":
        return elementwise
    total = np.sum(elementwise)
    if reduction == "sum":
        return np.asarray(total)
    n = elementwise.size if count is None else count
    return np.asarray(total / n, dtype=elementwise.dtype)


def upstream(dloss: Array, reduction: str, count: int, dtype: np.dtype) -> Array:
    r"""The gradient that reaches each per-element loss :math:`\ell_i`.

    For ``mean`` it is :math:`g / n`, for ``sum`` it is :math:`g`, and for
    ``none`` it is the upstream array itself (one entry per element).
    """
    g = np.asarray(dloss, dtype=dtype)
    return g / dtype.type(count) if reduction == "mean" else g
