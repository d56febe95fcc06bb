"""Adapters for other conventions, each with a planted bug and its correct twin; the quick
fixes to OpInfo, compare_op and check_function; check_network in rows layout and on a graph."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import manual
from manual.gradcheck import check_function
from manual.registry import OpInfo
from reference.checks import (
    check_layer,
    check_network,
    from_activation,
    from_module,
    from_object,
    from_scalar_autograd,
)
from reference.checks.network import order
from reference.core.compare import compare_op, run_tensors
from reference.core.run import run_manual


class Tanh:
    """numpy-ml style: fn and an elementwise grad."""

    def fn(self, z):
        return np.tanh(z)

    def grad(self, x):
        return 1 - np.tanh(x) ** 2


class WrongTanh(Tanh):
    def grad(self, x):
        return 1 - np.tanh(x)  # forgot the square


def test_fn_grad_objects() -> None:
    assert check_layer(*from_activation(Tanh().fn, Tanh().grad), torch=torch.tanh,
                       inputs={"x": (4, 5)}).passed
    bad = check_layer(*from_activation(WrongTanh().fn, WrongTanh().grad), torch=torch.tanh,
                      inputs={"x": (4, 5)}, special=False)
    assert bad.records[0].first_divergence == "backward: x"
    assert bad.records[0].subject == "WrongTanh"


class Dense:
    """numpy-ml style: W is (in, out); parameters and gradients dicts; keeps inputs."""

    def __init__(self, accumulate_bug=False):
        self.parameters, self.gradients, self.X = {}, {}, []
        self.bug = accumulate_bug

    def forward(self, X):
        self.X.append(X)
        return X @ self.parameters["W"] + self.parameters["b"]

    def backward(self, dy):
        X = self.X[-1]
        self.gradients["W"] = X.T @ dy
        self.gradients["b"] = dy.sum(axis=0) * (2 if self.bug else 1)
        return dy @ self.parameters["W"].T


def test_layer_objects_with_parameter_dicts() -> None:
    inputs = {"X": (4, 3), "W": (3, 2), "b": (2,)}
    good = check_layer(*from_object(Dense, ("W", "b")), torch=lambda X, W, b: X @ W + b,
                       inputs=inputs)
    assert good.passed, good.describe()
    bad = check_layer(*from_object(lambda: Dense(True), ("W", "b")),
                      torch=lambda X, W, b: X @ W + b, inputs=inputs, special=False)
    assert [t.name for t in bad.records[0].failures] == ["backward: b"]


class Module:
    """The Module protocol: params, grads, forward, backward."""

    def __init__(self):
        self.params, self.grads = {}, {}

    def forward(self, x):
        self.x = x
        return x * self.params["scale"]

    def backward(self, dy):
        self.grads["scale"] = (dy * self.x).sum(axis=0)
        return dy * self.params["scale"]


def test_module_protocol_objects() -> None:
    result = check_layer(*from_module(Module, ("scale",)), torch=lambda x, s: x * s,
                         inputs={"x": (4, 3), "scale": (3,)})
    assert result.passed, result.describe()


class Value:
    """A tiny scalar autograd engine in micrograd's style (``buggy``: ``=`` for ``+=``)."""

    buggy = False

    def __init__(self, data, children=()):
        self.data, self.grad, self._prev, self._backward = data, 0.0, children, lambda: None

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other))

        def backward():
            if self.buggy:
                self.grad = out.grad
                other.grad = out.grad
            else:
                self.grad += out.grad
                other.grad += out.grad
        out._backward = backward
        return out

    __radd__ = __add__

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other))

        def backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = backward
        return out

    __rmul__ = __mul__

    def backward(self):
        order, seen = [], set()

        def visit(v):
            if id(v) not in seen:
                seen.add(id(v))
                for child in v._prev:
                    visit(child)
                order.append(v)
        visit(self)
        self.grad = 1.0
        for v in reversed(order):
            v._backward()


class BuggyValue(Value):
    buggy = True


def test_scalar_autograd_engines() -> None:
    def f(a, b):
        return (a + a) * b  # a is used twice: its gradient must accumulate

    good = check_layer(*from_scalar_autograd(f, Value), torch=lambda a, b: (a + a) * b,
                       inputs={"a": (3, 2), "b": (3, 2)})
    assert good.passed, good.describe()
    bad = check_layer(*from_scalar_autograd(f, BuggyValue), torch=lambda a, b: (a + a) * b,
                      inputs={"a": (3, 2), "b": (3, 2)}, special=False)
    assert not bad.passed and bad.records[0].first_divergence == "backward: a"


def test_opinfo_takes_a_callable_and_an_option_called_x() -> None:
    def forward(w, x):
        return w * x, x

    op = OpInfo(name="scale_by_x", forward=forward, backward=lambda dy, x: dy * x,
                torch=lambda w, x: w * x)
    x = np.linspace(-1, 1, 30).reshape(6, 5)
    for dtype in ("float32", "float64"):
        record = compare_op(op, dtype, {"x": x})
        assert record.passed, record.describe()
        assert record.kind == "op"  # a user's op is not labelled "activation"
        assert json_safe(record)


def json_safe(record) -> bool:
    import json

    return isinstance(json.loads(record.to_json())["options"]["x"], list)


def test_check_function_says_wrong_on_a_wrong_shaped_gradient() -> None:
    x = np.arange(6.0).reshape(2, 3)
    record = check_function(lambda d: float((d["x"] ** 2).sum()), {"x": x},
                            {"x": np.zeros((2, 3, 0))})
    assert not record.passed
    assert record.tensors[0].verdict == "wrong"
    assert "shape (2, 3, 0)" in record.tensors[0].problem


def test_check_network_in_rows_layout_and_bad_names() -> None:
    spec = manual.load_spec("examples/seed_example.json")
    data = manual.load_data("examples/seed_example_data.json", spec)
    a2 = 1 / (1 + math.exp(-2.76))
    good = check_network(spec, data, {"backward: output": np.array([[-1 / a2]])})
    assert good.passed, good.describe()
    bad = check_network(spec, data, {"backward: output": np.array([[-2 / a2]])})
    assert bad.notes == ["from backward: output on, every gradient is 2 x PyTorch's: one "
                         "factor applied once too often, or missing?"]
    with pytest.raises(ValueError, match=r"mine: no tensor 'backward: layers\.9'"):
        check_network(spec, data, {"backward: layers.9": 0})
    with pytest.raises(ValueError, match="layout: must be one of rows, columns"):
        check_network(spec, data, {}, layout="cols")


SKIP_GRAPH = {"inputs": {"x": {"shape": [3]}}, "loss": {"type": "mse"}, "seed": 4, "nodes": [
    {"name": "fc", "type": "linear", "inputs": ["x"], "out_features": 3},
    {"name": "act", "type": "tanh", "inputs": ["fc"]},
    {"name": "skip", "type": "add", "inputs": ["act", "fc"]}]}


def test_check_network_on_a_graph_takes_every_tensor_name_and_finds_a_wrong_edge() -> None:
    """The user's values here are the manual engine's (a second implementation); a doubled
    gradient along the skip edge is named by its edge."""
    spec = manual.parse_spec(SKIP_GRAPH)
    rng = np.random.default_rng(8)
    data = manual.make_data(spec, rng.standard_normal((4, 3)), rng.standard_normal((4, 3)))
    run = run_manual(spec, data)
    mine = {key: value for key, (_, value, _) in run_tensors(spec, run).items()}
    assert set(mine) == set(order(spec))
    good = check_network(spec, data, mine)
    assert good.passed, good.describe()
    assert [t.name for t in good.tensors] == order(spec)
    assert "backward: fc -> skip" in mine and "backward: fc.weight" in mine
    edge = "backward: fc -> skip"
    bad = check_network(spec, data, {**mine, edge: 2 * mine[edge]})
    assert [t.name for t in bad.failures] == [edge]
    assert bad.first_divergence is not None
    assert bad.first_divergence.startswith(f"{edge}: ")


def test_a_conv_in_ten_lines_with_f_conv2d() -> None:
    def conv_forward(x, w, b, conv_param):
        out = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                       padding=conv_param["pad"]).numpy()
        return out, None

    result = check_layer(
        conv_forward, lambda dout, cache: None,
        torch=lambda x, w, b, conv_param: F.conv2d(x, w, b, padding=conv_param["pad"]),
        inputs={"x": (1, 2, 4, 4), "w": (3, 2, 3, 3), "b": (3,)},
        options={"conv_param": {"pad": 1}}, special=False, dtypes=("float64",))
    record = result.records[0]
    assert record.tensor("forward: out").passed
    assert record.tensor("backward: x").problem == "returned None: backward returned nothing"
