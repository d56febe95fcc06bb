"""Every activation at NaN and at the infinities, forward and backward, as PyTorch computes it.

PyTorch's backward kernels pick their branch with conditions such as ``y <= 0 ? 0 : dy``
(relu) or ``x <= 0 ? negative : positive`` (the ELU family), so a NaN input takes the branch
the condition leaves it. A hand-written ``np.where(x > 0, ...)`` sends it the other way: the
numbers agree everywhere except at NaN. One documented difference is kept (``DIFFERENT``).

PyTorch itself is not consistent at NaN for hardtanh and the ELU family: the vectorised body
of its CPU kernels gives 0 (hardtanh) or NaN (elu, selu, celu) and the scalar tail (the last
elements that do not fill a vector register, or a short tensor) gives ``dy`` or ``scale``.
The manual engine follows the body, so the points are repeated to 64 elements, a whole number
of registers in both dtypes, and nothing falls in the tail.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from manual.registry import ACTIVATIONS
from reference.core.engine import torch_callable

POINTS = np.tile([np.nan, np.inf, -np.inf, 0.0, 1.0, -1.0, 3.0, -3.0], (8, 1))

# softsign at +-inf: the forward is NaN (inf / inf) in both engines; PyTorch's autograd of
# x / (1 + |x|) gives NaN, the manual derivative 1 / (1 + |x|)^2 its limit 0. The forward
# already reports the non-finite result, so the gradient's limit is kept.
DIFFERENT = {("softsign", "backward"): np.isinf(POINTS)}
# gelu at +inf in float32: PyTorch's vectorised erf gives NaN (inf * 0.5 * (1 + erf(inf))
# should be inf, and its scalar tail and float64 give inf); the manual engine keeps inf.
DIFFERENT_IN = {("gelu", "forward", "float32"): np.isposinf(POINTS)}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_at_nan_and_infinity_is_torchs(name: str, dtype: str) -> None:
    op = ACTIVATIONS[name]
    x = POINTS.astype(dtype)
    dy = np.random.default_rng(0).uniform(0.5, 2.0, x.shape).astype(dtype)
    with np.errstate(all="ignore"):
        y, cache = op.forward(x.copy())
        dx = op.backward(dy.copy(), cache)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch_callable(op)(tx)
    ty.backward(torch.from_numpy(dy))
    for stage, got, want in [("forward", y, ty.detach().numpy()),
                             ("backward", dx, tx.grad.numpy())]:
        keep = ~DIFFERENT.get((name, stage), DIFFERENT_IN.get((name, stage, dtype),
                                                             np.zeros(x.shape, bool)))
        torch.testing.assert_close(torch.from_numpy(np.asarray(got)[keep]),
                                   torch.from_numpy(want[keep]), equal_nan=True,
                                   msg=lambda m, s=stage: f"{name} {s} {dtype}: {m}")
