"""check_network on a user's model: the course's params/loss object, a callable with params,
micrograd values, against a function twin or an nn.Module with a name mapping."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reference.checks import check_network, from_scalar_model

CORPUS = Path(__file__).parent.parent / "examples" / "corpus"
MAPPING = {"W1": "0.weight.T", "b1": "0.bias", "W2": "2.weight.T", "b2": "2.bias"}
X, Y = np.random.default_rng(1).standard_normal((5, 4)), np.array([0, 2, 1, 1, 0])


def corpus(name):
    sys.path.insert(0, str(CORPUS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(CORPUS))


models, scalar = corpus("models"), corpus("scalar")


def net():
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))


def twin(p, X, y):
    return F.cross_entropy(torch.relu(X @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"], y)


def test_a_course_model_agrees_with_a_module_twin_and_a_function_twin() -> None:
    for kwargs in ({"torch": net(), "loss": F.cross_entropy, "mapping": MAPPING},
                   {"torch": twin}):
        record = check_network(models.TwoLayerNet(reg=0.0), (X, Y), **kwargs)
        assert record.passed, record.describe()
        assert [t.name for t in record.tensors] == [
            "forward: loss", "backward: W1", "backward: b1", "backward: W2", "backward: b2",
            "hygiene: W1", "hygiene: b1", "hygiene: W2", "hygiene: b2"]


def test_the_first_wrong_gradient_is_named_with_the_shared_factor() -> None:
    record = check_network(models.TwoLayerNetBug(reg=0.0), (X, Y), torch=twin)
    assert record.first_divergence.startswith("backward: W1: 24 of 24 elements differ")
    assert record.first_divergence.endswith("every element is 5 x PyTorch's")
    assert record.notes == ["every wrong gradient is 5 x PyTorch's: one factor applied once "
                            "too often, or missing?"]
    assert record.tensor("forward: loss").passed


def test_a_missing_gradient_and_a_parameter_changed_in_place_are_reported() -> None:
    model = models.TwoLayerNet(reg=0.0)

    def loss(X, y):
        value, grads = model.loss(X, y)
        model.params["W2"] -= 0.1 * grads["W2"]  # an update inside the loss
        return value, {k: v for k, v in grads.items() if k != "b2"}

    record = check_network(loss, (X, Y), torch=twin, params=model.params)
    assert record.tensor("backward: b2").problem == "missing: the model returned no gradient 'b2'"
    assert record.tensor("hygiene: W2").problem.startswith("modified in place: ")


def test_a_mapping_must_cover_the_module_and_fit_its_shapes() -> None:
    with pytest.raises(ValueError, match=r"mapping: the module's parameter '2.bias' has no user"):
        check_network(models.TwoLayerNet(), (X, Y), torch=net(), loss=F.cross_entropy,
                      mapping={k: v for k, v in MAPPING.items() if k != "b2"})
    with pytest.raises(ValueError, match=r"mapping\['W1'\]: shape \(4, 6\) does not fit "
                                         r"'0.weight' of shape \(6, 4\) \(write '0.weight.T'\?\)"):
        check_network(models.TwoLayerNet(), (X, Y), torch=net(), loss=F.cross_entropy,
                      mapping={**MAPPING, "W1": "0.weight"})
    with pytest.raises(ValueError, match="torch: checking a model needs its PyTorch twin"):
        check_network(models.TwoLayerNet(), (X, Y))


def test_the_seeds_network_in_its_column_layout() -> None:
    rng = np.random.default_rng(2)
    weights = {"W1": rng.standard_normal((3, 2)), "b1": np.zeros((3, 1)),
               "W2": rng.standard_normal((1, 3)), "b2": np.zeros((1, 1))}
    data = (rng.standard_normal((2, 6)), rng.integers(0, 2, (1, 6)).astype(np.float64))

    def seed_twin(p, X, y):
        a2 = torch.sigmoid(p["W2"] @ torch.relu(p["W1"] @ X + p["b1"]) + p["b2"])
        return F.binary_cross_entropy(a2, y)

    def model(backward):
        def loss(X, y):
            value, cache = models.seed_forward(X, **weights, y=y)
            return value, backward(cache)
        return loss

    assert check_network(model(models.seed_backward), data, torch=seed_twin,
                         params=weights).passed
    bad = check_network(model(models.seed_backward_bug), data, torch=seed_twin, params=weights)
    assert not bad.passed and not bad.tensor("backward: W2").passed


def test_a_micrograd_model_read_by_name() -> None:
    mlp = scalar.MLP(3, [4, 1])
    values = {f"{k}{i}": [n.w if k == "W" else n.b for n in layer.neurons]
              for i, layer in enumerate(mlp.layers) for k in "Wb"}

    def loss(X, y):
        return sum(((mlp(list(x))[0] - t) ** 2 for x, t in zip(X, y, strict=True)), 0.0) * 0.2

    def mlp_twin(p, X, y):
        h = torch.relu(X @ p["W0"].T + p["b0"])
        return ((h @ p["W1"].T + p["b1"]).squeeze(1) - y).pow(2).mean()

    data = (X[:, :3], Y * 1.0)
    record = check_network(from_scalar_model(loss, values), data, torch=mlp_twin)
    assert record.passed, record.describe()
    wrong = check_network(from_scalar_model(loss, values), data,
                          torch=lambda p, X, y: 2 * mlp_twin(p, X, y))
    assert not wrong.tensor("forward: loss").passed
