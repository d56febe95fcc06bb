"""manual.clip against torch.nn.utils.clip_grad_norm_ / clip_grad_value_."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal

import manual
from manual.clip import clip_grad_norm, clip_grad_value, total_norm

SHAPES = [(4, 3), (4,), (2, 5)]


def grads(dtype: str, scale: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(scale * rng.standard_normal(s)).astype(dtype) for s in SHAPES]


def torch_params(arrays: list[np.ndarray]) -> list[torch.nn.Parameter]:
    params = []
    for a in arrays:
        p = torch.nn.Parameter(torch.zeros(a.shape, dtype=getattr(torch, str(a.dtype))))
        p.grad = torch.from_numpy(a.copy())
        params.append(p)
    return params


def assert_same(ours: list[np.ndarray], params: list[torch.nn.Parameter]) -> None:
    for a, p in zip(ours, params, strict=True):
        assert p.grad is not None
        torch.testing.assert_close(torch.from_numpy(a), p.grad, equal_nan=True)


NORM_CASES = [(dtype, norm_type, max_norm, scale)
              for dtype in ("float32", "float64")
              for norm_type in (2.0, math.inf, 1.0, 3.0)
              for max_norm, scale in ((1.0, 5.0), (10.0, 0.5), (1e-3, 1.0))]


@pytest.mark.parametrize(("dtype", "norm_type", "max_norm", "scale"), NORM_CASES,
                         ids=[f"{d}-p{n}-max{m}-x{s}" for d, n, m, s in NORM_CASES])
def test_clip_grad_norm_matches_torch(dtype: str, norm_type: float, max_norm: float,
                                      scale: float) -> None:
    ours = grads(dtype, scale)
    params = torch_params(ours)
    want = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
    got = clip_grad_norm(ours, max_norm, norm_type=norm_type)
    torch.testing.assert_close(torch.tensor(got, dtype=want.dtype), want)
    assert_same(ours, params)
    assert all(g.dtype == np.dtype(dtype) for g in ours)


def test_the_small_constant_in_the_denominator() -> None:
    """max_norm / (norm + 1e-6): a gradient of norm 1e-6 clipped at 1e-6 is halved, as in torch."""
    ours = [np.array([6e-7, 8e-7])]  # norm 1e-6
    params = torch_params(ours)
    torch.nn.utils.clip_grad_norm_(params, 1e-6)
    clip_grad_norm(ours, 1e-6)
    assert_array_equal(ours[0], np.array([3e-7, 4e-7]))
    assert_same(ours, params)


def test_clip_scales_every_array_by_one_factor() -> None:
    ours = grads("float64", 10.0)
    before = [g.copy() for g in ours]
    norm = clip_grad_norm(ours, 1.0)
    factors = [np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(ours, before, strict=True)]
    np.testing.assert_allclose(factors, 1.0 / (norm + 1e-6), rtol=1e-14)
    np.testing.assert_allclose(total_norm(ours), 1.0, rtol=1e-5)


def test_zero_and_empty_gradients() -> None:
    zeros = [np.zeros(3)]
    assert clip_grad_norm(zeros, 1.0) == 0.0
    assert_array_equal(zeros[0], np.zeros(3))
    assert clip_grad_norm([], 1.0) == 0.0
    assert float(torch.nn.utils.clip_grad_norm_([], 1.0)) == 0.0


def test_non_finite_norm_propagates_or_raises_like_torch() -> None:
    ours = [np.array([1.0, np.nan]), np.array([2.0])]
    params = torch_params(ours)
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    assert math.isnan(clip_grad_norm(ours, 1.0))
    assert_same(ours, params)
    with pytest.raises(RuntimeError):
        torch.nn.utils.clip_grad_norm_(torch_params([np.array([np.inf])]), 1.0,
                                       error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm([np.array([np.inf])], 1.0, error_if_nonfinite=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("clip_value", [0.5, 2.0, 0.0])
def test_clip_grad_value_matches_torch(dtype: str, clip_value: float) -> None:
    ours = grads(dtype, 3.0)
    ours[0][0, 0] = np.nan
    params = torch_params(ours)
    torch.nn.utils.clip_grad_value_(params, clip_value)
    clip_grad_value(ours, clip_value)
    for a, p in zip(ours, params, strict=True):
        torch.testing.assert_close(torch.from_numpy(a), p.grad, equal_nan=True)


def test_clipping_a_network_in_place() -> None:
    """A mapping (``named_grads``) is clipped in place, so the network's gradients change."""
    spec = manual.parse_spec({"input_shape": [3], "layers": [
        {"type": "linear", "out_features": 4}, {"type": "tanh"},
        {"type": "linear", "out_features": 2}], "loss": {"type": "mse", "reduction": "sum"}})
    net = manual.build(spec)
    x = np.random.default_rng(0).standard_normal((5, 3))
    net.loss(net.forward(x), 100 * np.ones((5, 2)))
    net.backward()
    clip_grad_norm(net.named_grads(), 0.5)
    assert total_norm(net.named_grads()) == pytest.approx(0.5, rel=1e-5)
