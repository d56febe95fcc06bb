"""The numerical gradient check on conv nets: max pooling's ties and relu's kinks are reported
as kinks (LayerInfo.switches and the activations' kinks in the general evaluator), not as wrong
gradients, in full, sparse and projection modes; wrong max-pool backwards still fail."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

import manual
from manual.gradcheck import check_network
from manual.layers import LAYERS
from reference.zoo.conv import CONV_MUTANTS

MODES = ("full", "sparse", "projection")
MUTANTS = {m.name: m for m in CONV_MUTANTS}


def tied_net() -> manual.Spec:
    """Overlapping max pooling straight on integer inputs (exact ties in most windows), then
    relu on integers (exact zeros), a conv, relu, and a second max pool over the relu's zeros."""
    return manual.parse_spec({"inputs": {"x": {"shape": [2, 5, 5]}}, "nodes": [
        {"name": "pool", "type": "max_pool2d", "inputs": ["x"], "kernel_size": 3, "stride": 1},
        {"name": "conv", "type": "conv2d", "inputs": ["pool"], "out_channels": 3,
         "kernel_size": 2},
        {"name": "act", "type": "relu", "inputs": ["conv"]},
        {"name": "pool2", "type": "max_pool2d", "inputs": ["act"], "kernel_size": 2,
         "stride": 1},
        {"name": "flat", "type": "flatten", "inputs": ["pool2"]},
        {"name": "head", "type": "linear", "inputs": ["flat"], "out_features": 3}],
        "loss": {"type": "cross_entropy"}, "dtype": "float64", "seed": 0})


def tied_data(spec: manual.Spec) -> manual.Data:
    rng = np.random.default_rng(0)
    x = rng.integers(-2, 3, (3, 2, 5, 5)).astype(np.float64)
    return manual.make_data(spec, x, rng.integers(0, 3, 3))


@pytest.mark.parametrize("mode", MODES)
def test_max_pool_ties_are_kinks_not_wrong(mode: str) -> None:
    spec = tied_net()
    record = check_network(spec, tied_data(spec), mode)
    assert record.passed, record.describe()
    x = record.tensor("x")
    assert x.verdict == "kink" and x.kinks_crossed > 0


def test_without_the_switches_the_ties_are_called_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(LAYERS, "max_pool2d", dataclasses.replace(LAYERS["max_pool2d"],
                                                                   switches=None))
    spec = tied_net()
    record = check_network(spec, tied_data(spec), "full")
    assert record.tensor("x").verdict == "wrong"


def test_a_tie_far_from_the_point_is_not_crossed() -> None:
    """The same net on continuous inputs: no window is within a step of a tie, so every
    element is judged and good."""
    spec = tied_net()
    rng = np.random.default_rng(1)
    data = manual.make_data(spec, rng.standard_normal((3, 2, 5, 5)), rng.integers(0, 3, 3))
    record = check_network(spec, data, "full")
    assert record.passed and all(t.verdict == "good" for t in record.tensors), \
        record.describe()


def test_relu_on_exact_zeros_inside_a_conv_net_is_a_kink() -> None:
    spec = manual.parse_spec({"inputs": {"x": {"shape": [1, 4, 4]}}, "nodes": [
        {"name": "act", "type": "relu", "inputs": ["x"]},
        {"name": "conv", "type": "conv2d", "inputs": ["act"], "out_channels": 2,
         "kernel_size": 3, "stride": 2, "padding": 1},
        {"name": "flat", "type": "flatten", "inputs": ["conv"]},
        {"name": "head", "type": "linear", "inputs": ["flat"], "out_features": 2}],
        "loss": {"type": "mse"}, "dtype": "float64", "seed": 0})
    rng = np.random.default_rng(2)
    x = rng.integers(-1, 2, (2, 1, 4, 4)).astype(np.float64)
    data = manual.make_data(spec, x, rng.standard_normal((2, 2)))
    for mode in MODES:
        record = check_network(spec, data, mode)
        assert record.passed and record.tensor("x").verdict == "kink", record.describe()


@pytest.mark.parametrize("mode", ("full", "projection"))
def test_overlapping_windows_assigned_not_added_still_fail(mode: str) -> None:
    spec = tied_net()
    with MUTANTS["max_pool2d_overlap_assign"].inject():
        record = check_network(spec, tied_data(spec), mode)
    assert not record.passed and record.tensor("x").verdict == "wrong"


@pytest.mark.parametrize("mode", MODES)
def test_ties_to_every_maximum_still_fail(mode: str) -> None:
    """The relu's zeros tie in pool2's windows and every zero gets the gradient: the conv's
    parameters, upstream of no tie that a parameter step can cross, are judged wrong."""
    spec = tied_net()
    with MUTANTS["max_pool2d_ties_to_every_max"].inject():
        record = check_network(spec, tied_data(spec), mode)
    verdicts: dict[str, Any] = {t.name: t.verdict for t in record.tensors}
    assert not record.passed and verdicts["conv.weight"] == "wrong", verdicts


def test_graph_loss_kinks_are_detected_on_the_difference_to_the_target() -> None:
    spec = manual.parse_spec({"inputs": {"x": {"shape": [1, 3]}}, "nodes": [
        {"name": "conv", "type": "conv1d", "inputs": ["x"], "out_channels": 1,
         "kernel_size": 3},
        {"name": "flat", "type": "flatten", "inputs": ["conv"]}],
        "loss": {"type": "l1"}, "dtype": "float64"})
    data = manual.make_data(spec, np.array([[[0.5, 1.0, 2.0]]]), np.array([[0.5]]))
    params = {"conv.weight": np.array([[[1.0, 0.0, 0.0]]]), "conv.bias": np.zeros(1)}
    record = check_network(spec, data, "full", params=params)  # output 0.5 == target
    assert record.passed and record.tensor("conv.bias").kinks_crossed == 1, record.describe()
