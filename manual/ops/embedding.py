r"""Embedding lookup (``nn.Embedding``): rows of a table picked by integer indices.

.. math::
    y_{\ldots} = W_{i_{\ldots}}, \qquad
    \frac{\partial L}{\partial W_k} = \sum_{\ldots : i_{\ldots} = k}
        \frac{\partial L}{\partial y_{\ldots}}

An index that appears several times accumulates the gradient of every occurrence (an
assignment ``dW[i] = dy`` keeps only the last). The row ``padding_idx`` gets no gradient,
as in PyTorch. Indices have no gradient. Shapes: ``indices`` any shape ``S`` (int64),
``weight`` ``(num_embeddings, embedding_dim)``, ``y`` ``(*S, embedding_dim)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from manual.numerics import Array


class EmbeddingCache(NamedTuple):
    indices: NDArray[np.int64]
    weight_shape: tuple[int, ...]
    dtype: np.dtype
    padding_idx: int | None  # non-negative, or None


def check_indices(indices: NDArray, num_embeddings: int) -> NDArray[np.int64]:
    """``indices`` as int64, or a one-line error naming the offending range."""
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {indices.dtype}")
    if indices.size and (indices.min() < 0 or indices.max() >= num_embeddings):
        raise ValueError(f"embedding: indices must lie in [0, {num_embeddings - 1}], found "
                         f"{indices.min()}..{indices.max()}")
    return indices.astype(np.int64, copy=False)


def embedding_forward(indices: NDArray, weight: Array, padding_idx: int | None = None
                      ) -> tuple[Array, EmbeddingCache]:
    """Look up ``weight[indices]``; ``padding_idx`` may be negative (counted from the end)."""
    num_embeddings = weight.shape[0]
    indices = check_indices(np.asarray(indices), num_embeddings)
    pad = None if padding_idx is None else padding_idx % num_embeddings
    return weight[indices], EmbeddingCache(indices, weight.shape, weight.dtype, pad)


def embedding_backward(dy: Array, cache: EmbeddingCache) -> Array:
    """The weight gradient ``(num_embeddings, embedding_dim)``, summed over repeated indices."""
    indices, shape, dtype, pad = cache
    dweight = np.zeros(shape, dtype=dtype)
    np.add.at(dweight, indices.reshape(-1), dy.reshape(-1, shape[1]).astype(dtype, copy=False))
    if pad is not None:
        dweight[pad] = 0
    return dweight
