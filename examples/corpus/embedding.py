"""A word embedding as a course solution writes it (written for this project's corpus):
``out = W[x]`` for integer indices ``x`` (N, T), ``dW`` the sum of the upstream rows at each
index. Planted bug: ``word_embedding_backward_assign`` writes ``dW[x] = dout``, so that an
index repeated in the batch keeps only its last row (``np.add.at`` adds them).
"""

from __future__ import annotations

import numpy as np


def word_embedding_forward(x, W):
    return W[x], (x, W.shape)


def word_embedding_backward(dout, cache):
    x, shape = cache
    dW = np.zeros(shape, dtype=dout.dtype)
    np.add.at(dW, x, dout)
    return dW


def word_embedding_backward_assign(dout, cache):
    x, shape = cache
    dW = np.zeros(shape, dtype=dout.dtype)
    dW[x] = dout  # BUG: a repeated index keeps only one of its rows
    return dW
