"""Gradient clipping with ``torch.nn.utils``' semantics, in place on NumPy arrays.

Both functions take the gradients themselves (an iterable of arrays, or a mapping such as
:meth:`manual.network.Network.named_grads`, whose values are used) and change them in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from manual.numerics import Array

Grads = Iterable[Array] | Mapping[str, Array]


def _arrays(grads: Grads) -> list[Array]:
    items = grads.values() if isinstance(grads, Mapping) else grads
    return [g for g in items if g is not None]


def _norm(x: Array, norm_type: float) -> Array:
    """``torch.linalg.vector_norm`` of the flattened array, in its dtype."""
    flat = np.abs(x.reshape(-1))
    if norm_type == np.inf:
        return flat.max(initial=0).astype(x.dtype)
    if norm_type == -np.inf:
        return flat.min().astype(x.dtype)
    if norm_type == 0:
        return np.asarray(np.count_nonzero(flat), dtype=x.dtype)
    return np.asarray(np.linalg.norm(flat, ord=norm_type), dtype=x.dtype)


def total_norm(grads: Grads, norm_type: float = 2.0) -> float:
    r"""The norm of the per-array norms.

    .. math:: \lVert(\lVert g_1\rVert_p, \ldots, \lVert g_k\rVert_p)\rVert_p

    This is the norm of all gradients concatenated into one vector (for ``inf``, the
    largest absolute entry). No gradients give 0.
    """
    arrays = _arrays(grads)
    if not arrays:
        return 0.0
    norms = np.stack([_norm(g, float(norm_type)) for g in arrays])
    return float(_norm(norms, float(norm_type)))


def clip_grad_norm(grads: Grads, max_norm: float, norm_type: float = 2.0,
                   error_if_nonfinite: bool = False) -> float:
    r"""Scale every gradient by one factor so that their total norm is at most ``max_norm``.

    .. math::
        g \leftarrow g \cdot \min\!\left(\frac{\text{max\_norm}}{\lVert g \rVert_p + 10^{-6}},
        1\right)

    as ``torch.nn.utils.clip_grad_norm_`` does: the :math:`10^{-6}` keeps the factor finite
    for zero gradients (so a clipped norm lands just below ``max_norm``), the factor is
    applied even when it is 1, and a non-finite total norm propagates (NaN gradients stay
    NaN) unless ``error_if_nonfinite`` raises instead. Every array is multiplied by the
    same factor, so the ratios between layers do not change. Returns the total norm
    before clipping.
    """
    arrays = _arrays(grads)
    if not arrays:
        return 0.0
    dtype = arrays[0].dtype
    norms = np.stack([_norm(g, float(norm_type)) for g in arrays])
    total = _norm(norms, float(norm_type))
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"The total norm of order {float(norm_type)} for gradients is "
                           f"non-finite, so it cannot be clipped; pass "
                           f"error_if_nonfinite=False to scale the gradients by it anyway")
    coef = np.minimum(np.asarray(float(max_norm), dtype) / (total + np.asarray(1e-6, dtype)),
                      np.asarray(1.0, dtype))
    for g in arrays:
        g *= coef.astype(g.dtype)
    return float(total)


def clip_grad_value(grads: Grads, clip_value: float) -> None:
    r"""Clamp every gradient entry into :math:`[-\text{clip\_value}, \text{clip\_value}]`, in place.

    As ``torch.nn.utils.clip_grad_value_``: NaN entries stay NaN. Unlike norm clipping this
    changes the gradient's direction.
    """
    value = float(clip_value)
    for g in _arrays(grads):
        np.clip(g, -value, value, out=g)
