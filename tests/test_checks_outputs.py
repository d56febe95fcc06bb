"""Layers with several outputs, integer inputs through adapters, the noise hook, and the plain
words of a failure: which input's shape the code could not take, a gradient's constant factor."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reference.checks import Labels, check_layer, course, from_object

CORPUS = Path(__file__).parent.parent / "examples" / "corpus"
LSTM_STEP = {"x": (3, 10), "prev_h": (3, 4), "prev_c": (3, 4), "Wx": (10, 16), "Wh": (4, 16),
             "b": (16,)}


@pytest.fixture(scope="module")
def recurrent():
    sys.path.insert(0, str(CORPUS))
    try:
        return importlib.import_module("recurrent")
    finally:
        sys.path.remove(str(CORPUS))


def test_a_two_output_step_is_compared_output_by_output(recurrent) -> None:
    result = check_layer(recurrent.lstm_step_forward, recurrent.lstm_step_backward,
                         torch=course.lstm_step, inputs=LSTM_STEP, outputs=("next_h", "next_c"))
    assert result.passed, result.describe()
    names = [t.name for t in result.records[0].tensors]
    assert names[:2] == ["forward: next_h", "forward: next_c"]
    assert {"hygiene: dnext_h", "hygiene: dnext_c", "backward: prev_c"} <= set(names)
    default = check_layer(recurrent.lstm_step_forward, recurrent.lstm_step_backward,
                          torch=course.lstm_step, inputs=LSTM_STEP, special=False)
    assert [t.name for t in default.records[0].tensors][:2] == ["forward: out0", "forward: out1"]


def test_a_wrong_cell_gradient_of_a_two_output_step_is_found(recurrent) -> None:
    result = check_layer(recurrent.lstm_step_forward, recurrent.lstm_step_backward_bug,
                         torch=course.lstm_step, inputs=LSTM_STEP, special=False)
    record = result.records[0]
    assert record.tensor("forward: out0").passed and record.tensor("forward: out1").passed
    assert not record.tensor("backward: prev_c").passed


def test_output_names_must_match_the_twins_outputs(recurrent) -> None:
    with pytest.raises(ValueError, match="outputs: names 3 outputs, the twin returns 2"):
        check_layer(recurrent.lstm_step_forward, recurrent.lstm_step_backward,
                    torch=course.lstm_step, inputs=LSTM_STEP, outputs=("a", "b", "c"))


def test_the_course_twins_are_pytorch_modules_on_the_courses_layout(recurrent) -> None:
    result = check_layer(recurrent.rnn_forward, recurrent.rnn_backward, torch=course.rnn,
                         inputs={"x": (2, 3, 5), "h0": (2, 4), "Wx": (5, 4), "Wh": (4, 4),
                                 "b": (4,)}, special=False)
    assert result.passed, result.describe()
    swapped = check_layer(recurrent.lstm_forward, recurrent.lstm_backward,  # gates f, i, o, g
                          torch=lambda x, h0, Wx, Wh, b: course.lstm(
                              x, h0, Wx.roll(4, 1), Wh.roll(4, 1), b.roll(4, 0)),
                          inputs={"x": (2, 3, 5), "h0": (2, 4), "Wx": (5, 16), "Wh": (4, 16),
                                  "b": (16,)}, special=False)
    assert not swapped.records[0].tensor("forward: out").passed


class Embedding:
    """numpy-ml style: parameters/gradients dicts, backward returns dX (None: integer X)."""

    def __init__(self):
        self.parameters, self.gradients = {"W": None}, {}

    def forward(self, X):
        self.X = X
        return self.parameters["W"][X]

    def backward(self, dy):
        dW = np.zeros_like(self.parameters["W"])
        np.add.at(dW, self.X, dy)
        self.gradients["W"] = dW
        return None


def test_an_object_adapter_skips_an_integer_inputs_none_gradient() -> None:
    result = check_layer(*from_object(Embedding(), ("W",)), torch=F.embedding,
                         inputs={"x": Labels((2, 4), classes=3), "W": (3, 5)})
    assert result.passed, result.describe()
    assert "backward: W" in [t.name for t in result.records[0].tensors]


def test_a_forward_that_raises_names_the_inputs_whose_shapes_it_could_not_take() -> None:
    def forward(x, gamma):
        return x * gamma, None  # gamma (3,) against (N, C, H, W): C must be the last axis

    result = check_layer(forward, lambda dout, cache: (dout, dout.sum((0, 2, 3))),
                         torch=lambda x, g: x * g[None, :, None, None],
                         inputs={"x": (2, 3, 4, 5), "gamma": (3,)}, special=False)
    problem = result.records[0].tensor("forward: out").problem
    assert problem.startswith("forward raised ValueError: operands could not be broadcast")
    assert problem.endswith("your code could not take the shapes of x (2, 3, 4, 5) and "
                            "gamma (3,)")


def test_a_gradient_off_by_a_constant_factor_says_the_factor() -> None:
    result = check_layer(lambda x: (np.tanh(x), x), lambda dout, x: 0.5 * dout * (1 - np.tanh(
        x) ** 2), torch=torch.tanh, inputs={"x": (4, 5)}, special=False)
    assert result.records[0].tensor("backward: x").problem.endswith(
        "every element is 0.5 x PyTorch's")


def test_the_noise_hook_hands_the_users_mask_to_the_twin() -> None:
    def forward(x, p, inverted=True):
        mask = ((np.random.default_rng(0).random(x.shape) < p) / (p if inverted else 1))
        mask = mask.astype(x.dtype)
        return x * mask, mask

    def twin(x, p, noise):
        return x * noise / p

    right = check_layer(forward, lambda dout, mask: dout * mask, torch=twin,
                        inputs={"x": (4, 5)}, options={"p": 0.5}, noise=lambda mask: mask > 0)
    assert right.passed, right.describe()
    wrong = check_layer(lambda x, p: forward(x, p, inverted=False),
                        lambda dout, mask: dout * mask, torch=twin, inputs={"x": (4, 5)},
                        options={"p": 0.5}, noise=lambda mask: mask > 0, special=False)
    assert wrong.records[0].tensor("forward: out").problem.endswith(
        "every element is 0.5 x PyTorch's")


def test_a_check_in_which_pytorch_rejects_every_case_fails() -> None:
    result = check_layer(lambda x, slope: (x, None), lambda dout, cache: dout,
                         torch=F.leaky_relu, inputs={"x": (2, 2)}, options={"slope": 0.1})
    assert not result.passed and not result.records
    assert result.summary().startswith("<lambda>: no case ran (10 skipped: PyTorch rejects "
                                       "them): float32: PyTorch rejects this case")
