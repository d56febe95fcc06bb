r"""Dropout with a keep-mask given by the caller (the harness draws it once, for both engines).

PyTorch's generator cannot be reproduced in NumPy, so the mask is an input: ``mask`` is 1
where an element is kept (probability :math:`1 - p`) and 0 where it is dropped.

.. math::
    y = \frac{m \odot x}{1 - p}, \qquad \frac{\partial L}{\partial x} =
        \frac{m}{1 - p} \odot \frac{\partial L}{\partial y} \quad \text{(train)};
    \qquad y = x \quad \text{(eval)}

As ``torch.nn.functional.dropout``, ``p = 1`` gives :math:`y = 0 \cdot x` (scale 0, not
:math:`0/0`) and ``p = 0`` the identity. The scaled mask is cast to ``x``'s dtype before it
multiplies, so a float64 mask never promotes a float32 run.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from manual.numerics import Array


class DropoutCache(NamedTuple):
    scaled_mask: Array | None  # None in eval mode (identity)


def scaled_mask(mask: Array, p: float, dtype: np.dtype) -> Array:
    """:math:`m / (1 - p)` in ``dtype`` (all zeros when ``p = 1``), as PyTorch's noise tensor."""
    keep = mask.astype(dtype, copy=False)
    if p == 1:
        return np.zeros_like(keep)
    return keep / dtype.type(1 - p)


def dropout_forward(x: Array, mask: Array, *, p: float = 0.5, training: bool = True
                    ) -> tuple[Array, DropoutCache]:
    """Dropout of ``x`` (any shape) with the keep-``mask`` of the same shape."""
    if not training or p == 0:
        return x.copy(), DropoutCache(None)
    noise = scaled_mask(mask, p, x.dtype)
    return x * noise, DropoutCache(noise)


def dropout_backward(dy: Array, cache: DropoutCache) -> Array:
    return dy.copy() if cache.scaled_mask is None else dy * cache.scaled_mask


def keep_mask(rng: np.random.Generator, shape: tuple[int, ...], p: float) -> Array:
    """A float64 keep-mask: each entry 1 with probability :math:`1 - p`, else 0."""
    return (rng.random(shape) >= p).astype(np.float64)
