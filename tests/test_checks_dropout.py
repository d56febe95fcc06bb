"""check_dropout: inverted dropout checked by its statistics, each with a failing control."""

from __future__ import annotations

import numpy as np
import pytest

from reference.checks import check_dropout

PARAM = {"dropout_param": {"p": 0.6, "mode": "train", "seed": 3}}
SHAPE = {"x": (100, 50)}


def make(keep_scale=True, per_feature=False, leak=False, eval_drops=False):
    def forward(x, dropout_param):
        p, train = dropout_param["p"], dropout_param["mode"] == "train"
        if not (train or eval_drops):
            return x.copy(), (False, None)
        rng = np.random.default_rng(dropout_param["seed"])
        mask = rng.random(x.shape[1:] if per_feature else x.shape) < p
        mask = mask / p if keep_scale else mask * 1.0
        mask = mask if leak else mask.astype(x.dtype)
        return x * mask if leak else (x * mask).astype(x.dtype), (True, mask)
    return forward


def backward(dout, cache):
    train, mask = cache
    return dout * mask if train else dout


def run(forward, back=backward, **kw):
    return check_dropout(forward, back, inputs=SHAPE, options=PARAM, **kw)


def test_correct_inverted_dropout_passes_every_statistic_in_both_dtypes() -> None:
    result = run(make(), keep=0.6)
    assert result.passed, result.describe()
    names = [t.name for t in result.records[0].tensors]
    assert names == ["forward: rows", "forward: zeros", "forward: mean", "forward: out",
                     "backward: x", "hygiene: dout", "hygiene: x", "eval: out"]
    assert "statistics of inverted dropout" in result.summary()


@pytest.mark.parametrize("bug, tensor, message", [
    (dict(per_feature=True), "forward: rows", "mask does not differ between rows"),
    (dict(keep_scale=False), "forward: mean", "mean scaled by 0.6: not inverted dropout?"),
    (dict(eval_drops=True), "eval: out", "elements differ"),
    (dict(leak=True), "forward: out", "dtype float64 != reference float32"),
])
def test_each_statistic_catches_its_bug(bug, tensor, message) -> None:
    result = run(make(**bug), keep=0.6)
    record = result.records[0]  # float32
    assert not record.tensor(tensor).passed
    assert message in record.tensor(tensor).problem


def test_a_swapped_keep_probability_is_seen_in_the_fraction_of_zeros() -> None:
    result = run(make(), drop=0.6)  # the layer keeps 0.6, the user says it drops 0.6
    assert "a fraction 0.405 of the output is zero where the drop probability is 0.6" in \
        result.records[0].tensor("forward: zeros").problem


def test_a_backward_with_another_mask_is_named() -> None:
    def other(dout, cache):
        _, mask = cache
        return dout * mask[::-1]

    problem = run(make(), other, keep=0.6).records[0].tensor("backward: x").problem
    assert problem.startswith("the backward does not use the forward's mask (")


def test_bad_declarations_are_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="give keep"):
        run(make(), keep=0.6, drop=0.4)
    with pytest.raises(ValueError, match=r"inputs\['x'\]: 20 elements; give at least 1000"):
        check_dropout(make(), backward, inputs={"x": (4, 5)}, options=PARAM, keep=0.6)
