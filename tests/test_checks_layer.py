"""check_layer on small hand-written layers: each verdict in plain words, and its control.

The buggy layers here are written for these tests (user code: loops are allowed); every
failing check has a correct twin that passes, so loosening a check fails a test.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import find, settings

from reference.checks import Labels, check_layer, layer_cases
from reference.checks.diagnose import constant_factor


def relu_forward(x):
    return np.maximum(x, 0), x


def relu_backward(dout, x):
    return dout * (x > 0)


def relu_backward_kink(dout, x):
    return dout * (x >= 0)  # relu'(0) = 1: PyTorch says 0


def relu_backward_inplace(dout, x):
    dout[x <= 0] = 0  # right values, but the caller's upstream gradient is overwritten
    return dout


def affine_forward(x, w, b):
    return x @ w + b, (x, w)


def affine_backward(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def affine_backward_keepdims(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0, keepdims=True)  # (1, D) for (D,)


def affine_backward_leak(dout, cache):
    x, w = cache
    return (dout @ w.T).astype(np.float64), x.T @ dout, dout.sum(axis=0)


def affine_backward_none(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout, None


def torch_affine(x, w, b):
    return x @ w + b


AFFINE = {"x": (4, 3), "w": (3, 5), "b": (5,)}


def run_affine(backward, **kw):
    return check_layer(affine_forward, backward, torch=torch_affine, inputs=AFFINE,
                       special=False, **kw)


def test_a_correct_layer_passes_every_case_in_both_dtypes() -> None:
    result = check_layer(affine_forward, affine_backward, torch=torch_affine, inputs=AFFINE)
    assert result.passed, result.describe()
    assert {c.dtype for c in result.cases} == {"float32", "float64"}
    assert {c.special for c in result.cases} >= {"", "kinks", "ties", "extreme", "batch1"}
    names = [t.name for t in result.records[0].tensors]
    assert names == ["forward: out", "backward: x", "backward: w", "backward: b",
                     "hygiene: dout", "hygiene: x", "hygiene: w", "hygiene: b"]
    assert "all" in result.summary() and "agree" in result.summary()


def test_a_keepdims_parameter_gradient_is_named_as_broadcasting() -> None:
    record = run_affine(affine_backward_keepdims).records[0]
    bad = record.tensor("backward: b")
    assert record.first_divergence == "backward: b"
    assert bad.problem == ("shape (1, 5) broadcasts to the reference's (5,) but is not its "
                           "shape; values agree after reshaping")
    assert record.tensor("backward: w").passed


def test_a_dtype_leak_says_the_values_agree_after_casting() -> None:
    result = run_affine(affine_backward_leak)
    bad = result.record("float32").tensor("backward: x")
    assert bad.problem.startswith("dtype float64 != reference float32; values agree after "
                                  "casting")
    assert result.record("float64").passed


def test_a_gradient_that_is_none_is_reported_as_none() -> None:
    bad = run_affine(affine_backward_none).records[0].tensor("backward: b")
    assert bad.problem == "returned None (want shape (5,))"


def test_a_kink_convention_is_caught_at_the_exact_zero_with_the_inputs_value() -> None:
    good = check_layer(relu_forward, relu_backward, torch=torch.relu, inputs={"x": (6, 5)})
    assert good.passed, good.describe()
    bad = check_layer(relu_forward, relu_backward_kink, torch=torch.relu, inputs={"x": (6, 5)})
    failing = {c.special for c, _ in bad.failures}
    assert failing == {"kinks", "ties"}  # random normals never hit 0 exactly
    problem = bad.record("float64 kinks").tensor("backward: x").problem
    assert "elements differ; at [" in problem and "torch 0 (x = 0)" in problem


def test_the_upstream_gradient_modified_in_place_is_reported() -> None:
    result = check_layer(relu_forward, relu_backward_inplace, torch=torch.relu,
                         inputs={"x": (6, 5)}, special=False)
    record = result.records[0]
    assert record.tensor("backward: x").passed and record.tensor("forward: out").passed
    hygiene = record.tensor("hygiene: dout")
    assert not hygiene.passed
    assert hygiene.problem.startswith("modified in place: ")
    assert " elements changed (" in hygiene.problem and "-> 0)" in hygiene.problem


def test_an_input_modified_in_place_is_reported() -> None:
    def forward(x):
        x -= x.mean()
        return x * 2, None

    result = check_layer(forward, lambda dout, cache: dout * 2, torch=lambda x: 2 * (x - x.mean()),
                         inputs={"x": (4, 3)}, special=False, dtypes=("float64",))
    assert not result.records[0].tensor("hygiene: x").passed
    assert result.records[0].tensor("hygiene: dout").passed


def test_extreme_inputs_find_an_overflowing_softplus() -> None:
    def naive(x):
        y = np.log(np.exp(x) + 1)
        return y, x

    def naive_backward(dout, x):
        return dout / (1 + np.exp(-x))

    with np.errstate(over="ignore"):
        result = check_layer(naive, naive_backward, torch=F.softplus, inputs={"x": (6, 5)})
    assert {c.special for c, _ in result.failures} == {"extreme"}
    assert "float64 extreme" in result.summary() or "float32 extreme" in result.summary()


def softmax_loss(x, y):
    shifted = x - x.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = len(x)
    dx = np.exp(log_p)
    dx[np.arange(n), y] -= 1
    return -log_p[np.arange(n), y].mean(), dx / n


def test_labels_are_drawn_as_class_indices_without_a_gradient() -> None:
    from reference.checks import from_loss

    result = check_layer(*from_loss(softmax_loss), torch=F.cross_entropy,
                         inputs={"x": (5, 4), "y": Labels((5,), classes=4)})
    assert result.passed, result.describe()
    assert [t.name for t in result.records[0].tensors if t.name.startswith("backward")] == \
        ["backward: x"]
    assert "batch1" in {c.special for c in result.cases}


def test_array_options_are_cast_to_the_dtype_and_records_serialise() -> None:
    seen = []

    def forward(x, scale):
        seen.append(scale.dtype)
        return x * scale, scale

    result = check_layer(forward, lambda dout, scale: dout * scale,
                         torch=lambda x, scale: x * scale, inputs={"x": (3, 4)},
                         options={"scale": np.linspace(0.5, 2.0, 4)}, special=False)
    assert result.passed, result.describe()
    assert seen == [np.dtype("float32"), np.dtype("float64")]
    text = result.records[0].to_json()
    assert json.loads(text)["options"]["scale"] == [0.5, 1.0, 1.5, 2.0]
    assert json.loads(result.to_json())["passed"] is True


def test_a_module_twin_maps_parameter_names() -> None:
    def linear_forward(x, weight, bias):
        return x @ weight.T + bias, (x, weight)

    def linear_backward(dout, cache):
        x, weight = cache
        return dout @ weight, dout.T @ x, dout.sum(axis=0)

    result = check_layer(linear_forward, linear_backward, torch=torch.nn.Linear(3, 2),
                         inputs={"x": (4, 3)}, params={"weight": "weight", "bias": "bias"})
    assert result.passed, result.describe()
    with pytest.raises(ValueError, match="params\\['w'\\]: the module has no parameter 'W'"):
        check_layer(linear_forward, linear_backward, torch=torch.nn.Linear(3, 2),
                    inputs={"x": (4, 3)}, params={"w": "W"})


def test_bad_arguments_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="size 'H' has no values in sweep"):
        check_layer(relu_forward, relu_backward, torch=torch.relu, inputs={"x": (2, "H")})
    with pytest.raises(ValueError, match="special: unknown 'tie'"):
        check_layer(relu_forward, relu_backward, torch=torch.relu, inputs={"x": (2, 3)},
                    special=("tie",))
    with pytest.raises(TypeError, match="inputs\\['x'\\]: must be a shape tuple"):
        check_layer(relu_forward, relu_backward, torch=torch.relu, inputs={"x": [2, 3]})


def test_a_case_pytorch_rejects_is_skipped_not_failed() -> None:
    result = check_layer(
        lambda x, k: (x[:, : x.shape[1] - k + 1], x), lambda d, x: d,
        torch=lambda x, k: F.max_pool1d(x[None], k, stride=1)[0],
        inputs={"x": (2, "L")}, sweep={"L": [3], "k": [2, 5]}, special=False,
        dtypes=("float64",))
    assert len(result.skipped) == 1 and "PyTorch rejects this case" in result.skipped[0][1]


def test_constant_factor_needs_one_factor_everywhere() -> None:
    t = np.array([1.0, -2.0, 0.0])
    assert constant_factor([(0.5 * t, t), (np.array([0.25]), np.array([0.5]))]) == 0.5
    assert constant_factor([(0.5 * t, t), (np.array([0.3]), np.array([0.5]))]) is None
    assert constant_factor([(t, t)]) is None  # factor 1 is agreement, not a diagnosis
    assert constant_factor([(t + np.array([0, 0, 1.0]), t)]) is None


def test_the_strategy_shrinks_a_sweep_failure_to_its_smallest_case() -> None:
    def crop_forward(x, pad):
        return np.pad(x, ((0, 0), (pad, pad))), pad

    def crop_backward(dout, pad):
        return dout[:, pad:-pad]  # empty at pad 0

    found = find(
        layer_cases(crop_forward, crop_backward,
                    torch=lambda x, pad: F.pad(x, (pad, pad)), inputs={"x": (2, "W")},
                    sweep={"W": [3, 4, 5], "pad": [2, 1, 0]}),
        lambda check: not check().passed,
        settings=settings(database=None, derandomize=True, max_examples=200))
    assert found.case.overrides == {"pad": 0}
    assert found.case.sizes == {"W": 3} and found.case.dtype == "float32"
    assert found.case.special == ""
