"""Special inputs a user's code could meet: batch size 1 in every input that carries the batch,
declared domains, cases outside the reference's domain, and float32 judged against float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from manual.registry import DEFAULT_TOLERANCES
from reference.checks import check_layer
from reference.checks.arbitrate import FAVOUR, arbitrate
from reference.checks.domain import domain_of
from reference.core.compare import compare_arrays


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h ** 2)
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def torch_rnn_step(x, prev_h, Wx, Wh, b):  # broadcasts a (1, D) x against a (3, H) prev_h
    return torch.tanh(x @ Wx + prev_h @ Wh + b)


@pytest.mark.parametrize("batch", [3, 4])  # 4: Wh (4, 4) shares the batch size by chance
def test_batch_size_one_shrinks_every_input_that_carries_the_batch(batch) -> None:
    result = check_layer(rnn_step_forward, rnn_step_backward, torch=torch_rnn_step,
                         inputs={"x": (batch, 10), "prev_h": (batch, 4), "Wx": (10, 4),
                                 "Wh": (4, 4), "b": (4,)})
    assert result.passed, result.describe()
    assert [c.dtype for c in result.cases if c.special == "batch1"] == ["float32", "float64"]
    record = result.record("float64 batch1")
    assert record.tensor("backward: prev_h").shape == [1, 4]
    assert record.tensor("backward: Wh").shape == [4, 4]  # a weight is never shrunk


def test_a_symbolic_batch_shrinks_every_input_using_it() -> None:
    result = check_layer(rnn_step_forward, rnn_step_backward, torch=torch_rnn_step,
                         inputs={"x": ("B", 10), "prev_h": ("B", 4), "Wx": (10, 4), "Wh": (4, 4),
                                 "b": (4,)}, sweep={"B": [3]})
    assert result.passed, result.describe()
    assert result.record("float64 B=1 batch1").tensor("backward: prev_h").shape == [1, 4]


def test_a_twin_that_takes_batch_one_only_by_broadcasting_is_said_once() -> None:
    def forward(x, h):
        return x + (h - h.mean(0)) / np.sqrt(h.var(0) + 1e-5), (x, h)

    def twin(x, h):  # PyTorch refuses batch norm on one row: only x alone can shrink
        return x + F.batch_norm(h, None, None, training=True, eps=1e-5)

    result = check_layer(forward, lambda dout, cache: (dout, dout), torch=twin,
                         inputs={"x": (3, 4), "h": (3, 4)}, special="batch1",
                         dtypes=("float64",))
    assert [c.special for c, _ in result.not_run] == ["batch1"]
    assert result.summary().count("batch1 not run: PyTorch's twin takes batch size 1 only by "
                                  "broadcasting (x (1, 4) against h (3, 4))") == 1


@pytest.mark.parametrize("spec, inside", [
    ("nonzero", lambda v: v != 0), ("positive", lambda v: v > 0),
    ((0, 1), lambda v: (v > 0) & (v < 1)), (lambda v: v > 2, lambda v: v > 2)])
def test_every_draw_and_special_stays_inside_a_declared_domain(spec, inside) -> None:
    seen = []

    def forward(x):
        seen.append(x.copy())
        return x * 2, None

    result = check_layer(forward, lambda dout, cache: dout * 2, torch=lambda x: x * 2,
                         inputs={"x": (40, 30)}, domain={"x": spec})
    assert result.passed, result.describe()
    assert len(seen) == 10 and all(np.all(inside(v)) for v in seen)


def test_a_domain_for_an_unknown_input_or_of_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match=r"domain\['y'\]: no such input"):
        check_layer(lambda x: (x, None), lambda d, c: d, torch=lambda x: x,
                    inputs={"x": (2, 2)}, domain={"y": "positive"})
    with pytest.raises(ValueError, match=r"domain\['x'\]: must be 'nonzero'"):
        domain_of("x", "even")
    with pytest.raises(ValueError, match="is empty"):
        domain_of("x", (1, 0))


def reciprocal_forward(x):
    return 1 / x, x


def test_a_pole_is_outside_the_references_domain_not_a_failure() -> None:
    right = check_layer(reciprocal_forward, lambda dout, x: -dout / x ** 2,
                        torch=torch.reciprocal, inputs={"x": (4, 5)})
    assert right.passed, right.describe()
    assert {c.special for c, _ in right.outside} == {"kinks", "ties"}
    assert "4 outside the reference's domain: float32 kinks: PyTorch's forward: out is inf at" \
        in right.summary()
    wrong = check_layer(reciprocal_forward, lambda dout, x: -dout / x, torch=torch.reciprocal,
                        inputs={"x": (4, 5)})
    assert {c.special for c, _ in wrong.failures} == {"", "extreme", "batch1"}
    declared = check_layer(reciprocal_forward, lambda dout, x: -dout / x ** 2,
                           torch=torch.reciprocal, inputs={"x": (4, 5)},
                           domain={"x": "nonzero"})
    assert declared.passed and not declared.outside and len(declared.records) == 10


def test_float32_is_judged_in_the_users_favour_where_pytorch_float32_is_farther() -> None:
    # (x + 1e4) - 1e4 in float32 rounds x to a multiple of 2^-10; x itself is exact.
    def twin(x):
        return (x + 1e4) - 1e4

    exact = check_layer(lambda x: (x.copy(), None), lambda dout, cache: dout, torch=twin,
                        inputs={"x": (4, 5)}, special=False)
    assert exact.passed, exact.describe()
    out = exact.record("float32").tensor("forward: out")
    assert out.problem.startswith(FAVOUR) and "judged in your favour" in out.problem
    assert "float32 failures judged again" in exact.record("float32").tolerance_reason
    doubled = check_layer(lambda x: (2 * x, None), lambda dout, cache: 2 * dout, torch=twin,
                          inputs={"x": (4, 5)}, special=False)
    assert not doubled.record("float32").tensor("forward: out").passed


def test_the_measured_rounding_bound_excuses_rounding_and_nothing_more() -> None:
    tolerance = DEFAULT_TOLERANCES["float32"]
    r64 = np.full(4, 1.0)
    r32 = (r64 + 1e-3).astype(np.float32)  # PyTorch's own float32 error: 1e-3

    def judged(mine):
        tensor = compare_arrays("forward: out", mine.astype(np.float32), r32, tolerance)
        return arbitrate(tensor, mine.astype(np.float32), r32, r64), tensor

    near, tensor = judged(r64 + 3e-3)  # 2e-3 from PyTorch's, within 4 x its own 1e-3
    assert near and tensor.problem.startswith("within the measured float32 rounding bound")
    far, _ = judged(r64 + 1e-2)
    assert not far
