"""The option space around the user's configuration: neighbours run by default, reported apart."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reference.checks import check_layer
from reference.checks.neighbours import leaf_values, neighbours

EXAMPLE = Path(__file__).parent.parent / "examples" / "buggy_layers.py"
CONV = {"x": (2, 3, 7, 7), "w": (4, 3, 3, 3), "b": (4,)}
CONV_PARAM = {"conv_param": {"stride": 1, "pad": 1}}


@pytest.fixture(scope="module")
def layers():
    spec = importlib.util.spec_from_file_location("buggy_layers", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_conv_with_a_padding_zero_bug_reports_the_padding_zero_neighbour(layers):
    result = check_layer(layers.conv_forward, layers.conv_backward, torch=layers.torch_conv,
                         inputs=CONV, options=CONV_PARAM)
    assert not result.passed and not result.failures  # the typed configuration passes
    assert result.summary() == ("conv_forward: your configuration passes; 1 neighbour fails: "
                                "pad=0: backward: x: shape (2, 3, 0, 0) != reference "
                                "(2, 3, 7, 7)")
    labels = [c.neighbour for c in result.cases if c.neighbour]
    assert labels == ["stride=2", "stride=4", "pad=0", "pad=2", "x=(2, 3, 6, 6)",
                      "x=(2, 3, 8, 8)"]
    assert all(c.dtype == "float64" and not c.special for c in result.cases if c.neighbour)


def test_neighbours_off_or_a_sweep_keep_to_what_the_user_wrote(layers):
    off = check_layer(layers.conv_forward, layers.conv_backward, torch=layers.torch_conv,
                      inputs=CONV, options=CONV_PARAM, neighbours=False)
    assert off.passed and not any(c.neighbour for c in off.cases)
    swept = check_layer(layers.conv_forward, layers.conv_backward, torch=layers.torch_conv,
                        inputs=CONV, sweep={"conv_param": [{"stride": 1, "pad": 1}]})
    assert swept.passed and not any(c.neighbour for c in swept.cases)


def test_overlapping_pool_windows_are_a_neighbour_of_a_tiling_pool(layers):
    result = check_layer(layers.max_pool_forward, layers.max_pool_backward,
                         torch=layers.torch_max_pool, inputs={"x": (2, 3, 8, 8)},
                         options={"pool_param": {"pool_height": 2, "pool_width": 2,
                                                 "stride": 2}})
    failing = [c.neighbour for c, _ in result.near]
    assert failing == ["pool_height=3 pool_width=3", "stride=1"]  # both overlap
    assert "2 neighbours fail: pool_height=3 pool_width=3: backward: x: " in result.summary()


def test_each_rule_reaches_its_configurations() -> None:
    weights = [(4, 3, 3, 3)]
    assert leaf_values("pad", 1, {"stride": 1, "pad": 1}, 7, weights) == [0, 1, 2]
    # H + 2p - k = 6: 2 divides it, 4 does not
    assert leaf_values("stride", 1, {"stride": 1, "pad": 1}, 7, weights) == [1, 2, 4]
    assert leaf_values("pool_height", 2, {"pool_height": 2, "stride": 2}, 8, []) == [2, 3]
    assert leaf_values("dilation", 1, {}, 7, weights) == [1, 2]
    assert leaf_values("ceil_mode", False, {}, 7, []) == [True]
    assert leaf_values("approximate", "tanh", {}, None, []) == ["none", "tanh"]
    assert leaf_values("groups", 1, {}, 7, weights) == []  # the weight's shape fixes it
    assert leaf_values("momentum", 0.9, {}, 7, weights) == []


def test_declared_values_vary_an_option_no_rule_knows() -> None:
    found = neighbours({"k": 2}, {"x": (4, 5)}, "x", vary={"k": range(0, 4)})
    assert [n.label for n in found] == ["k=0", "k=1", "k=3"]
    with pytest.raises(ValueError, match=r"vary\['q'\]: no such option"):
        neighbours({"k": 2}, {"x": (4, 5)}, "x", vary={"q": [1]})


def test_a_neighbour_pytorch_rejects_is_skipped_not_failed() -> None:
    def forward(x, w, conv_param):
        out = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=conv_param["pad"])
        return out.numpy(), None

    result = check_layer(forward, lambda dout, cache: (None, None),
                         torch=lambda x, w, conv_param: F.conv2d(x, w, padding=conv_param["pad"]),
                         inputs={"x": (1, 1, 3, 3), "w": (1, 1, 3, 3)},
                         options={"conv_param": {"stride": 1, "pad": 0}}, special=False,
                         dtypes=("float64",))
    rejected = [c.neighbour for c, _ in result.skipped]
    assert "x=(1, 1, 2, 2)" in rejected  # a 3x3 kernel on a 2x2 input
    assert np.all([c.neighbour != "x=(1, 1, 2, 2)" for c in result.cases])
