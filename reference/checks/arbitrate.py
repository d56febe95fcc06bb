r"""float32 arbitrated by float64: a user's float32 result is judged against the truth too.

PyTorch's float32 result is one rounding of the exact value, not the exact value: a long
sum or a cancellation can put it farther from the truth than the user's float32 code is.
So a float32 tensor that fails the elementwise rule against PyTorch's float32 result
:math:`r_{32}` is judged again against PyTorch's float64 result :math:`r_{64}` on the same
(exactly widened) inputs and upstream gradient, for the user's result :math:`m`:

1. every element of :math:`m` is within the float32 tolerance of :math:`r_{64}`
   (:math:`|m - r_{64}| \le atol + rtol |r_{64}|`) or strictly closer to it than PyTorch's
   float32 is (:math:`|m - r_{64}| < |r_{32} - r_{64}|`): where they differ, PyTorch's float32
   is the farther one from float64; the verdict is in the user's favour and the text says so;
2. :math:`\max|m - r_{32}|` within the measured rounding bound of
   :func:`reference.core.rounding.tensor_bound` (the engine's rule: the tolerance at the
   tensor's scale plus :math:`\kappa` times PyTorch's own float32 rounding on it): passes as
   float32 rounding.

A shape or dtype problem, or a non-finite value, is never arbitrated.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from reference.core.records import TensorComparison
from reference.core.rounding import tensor_bound

FAVOUR = "PyTorch's float32 is farther from float64"


def _finite(*arrays: np.ndarray) -> bool:
    return all(bool(np.all(np.isfinite(a))) for a in arrays)


def arbitrate(tensor: TensorComparison, mine: object, r32: np.ndarray, r64: np.ndarray
              ) -> bool:
    """Judge one failing float32 ``tensor`` again (see the module docstring), in place;
    whether it now passes."""
    if tensor.passed or mine is None:
        return tensor.passed
    got = np.asarray(mine)
    if got.shape != r32.shape or got.dtype != r32.dtype or r64.shape != r32.shape:
        return False
    wide, ref32, ref64 = (np.asarray(a, dtype=np.float64) for a in (got, r32, r64))
    if not got.size or not _finite(wide, ref32, ref64):
        return False
    mine_off, torch_off = np.abs(wide - ref64), np.abs(ref32 - ref64)
    within = mine_off <= tensor.atol + tensor.rtol * np.abs(ref64)
    if np.all(within | (mine_off < torch_off)):
        mine64, torch64 = float(np.max(mine_off)), float(np.max(torch_off))
        tensor.passed = True
        tensor.tolerance_ratio = mine64 / torch64 if torch64 else 0.0
        tensor.problem = (f"{FAVOUR} (max |torch32 - torch64| {torch64:.3g}) than yours "
                          f"(max |mine - torch64| {mine64:.3g}): judged in your favour")
        return True
    found = tensor_bound(tensor, ref32, ref64)
    if found is None or not tensor.max_abs_error <= found[0]:
        return False
    bound, how = found
    tensor.passed = True
    tensor.tolerance_ratio = tensor.max_abs_error / bound
    tensor.problem = f"within the measured float32 rounding bound {bound:.3g} ({how})"
    return True


def arbitrate_all(tensors: list[TensorComparison], mine: Mapping[str, object],
                  r32: Mapping[str, np.ndarray], r64: Mapping[str, np.ndarray]) -> bool:
    """:func:`arbitrate` every failing tensor that has both references; whether one was."""
    changed = False
    for tensor in tensors:
        if not tensor.passed and tensor.name in r64 and tensor.name in r32:
            changed |= arbitrate(tensor, mine.get(tensor.name), np.asarray(r32[tensor.name]),
                                 np.asarray(r64[tensor.name]))
    return changed
