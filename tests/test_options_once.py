"""A node's options are validated and resolved once, when its spec is loaded (issue 21).

Parsing checks each option against its declaration (``Ints``: an int or a list, each at least
its bound), the signature checks what needs the input shape (one value per spatial dimension)
and stores the resolved geometry on the node; the forwards (also the gradient check's perturbed
ones) and the torch builders read it, and ``to_dict`` writes the user's own form back.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

import manual
from manual.gradcheck import check_network
from manual.layers import LAYERS
from manual.ops import conv as conv_ops
from manual.ops import pooling as pool_ops
from reference.core.compare import compare_network


def _spec(layer: dict[str, Any], shape: list[int] | None = None) -> dict[str, Any]:
    return {"inputs": {"x": {"shape": shape or [2, 7, 7]}}, "nodes": [
        {"name": "win", "inputs": ["x"], **layer},
        {"name": "flat", "type": "flatten", "inputs": ["win"]}],
        "loss": {"type": "mse"}}


CONV = {"type": "conv2d", "out_channels": 2, "kernel_size": 3}
POOL = {"type": "max_pool2d", "kernel_size": 2}

BAD = [
    (CONV, "stride", 0, "stride must be at least 1, got 0"),
    (CONV, "stride", [1, 0], "stride must be at least 1, got [1, 0]"),
    (CONV, "padding", -1, "padding must be at least 0, got -1"),
    (CONV, "padding", [1, -2], "padding must be at least 0, got [1, -2]"),
    (CONV, "stride", [1, 2, 3], "stride must be an integer or a list of 2 integers, got [1, 2, 3]"),
    (CONV, "kernel_size", [3], "kernel_size must be an integer or a list of 2 integers, got [3]"),
    (CONV, "stride", "2", "stride must be an integer or a list of integers, got '2'"),
    (CONV, "padding", "full", "padding must be an integer or a list of integers, 'same', "
                              "'valid', got 'full'"),
    (CONV, "dilation", 1.5, "dilation must be an integer or a list of integers, got 1.5"),
    (CONV, "stride", True, "stride must be an integer or a list of integers, got True"),
    (CONV, "stride", [], "stride must be an integer or a list of integers, got []"),
    (CONV, "kernel_size", None, "kernel_size must be an integer or a list of integers, got None"),
    (POOL, "stride", 0, "stride must be at least 1, got 0"),
    (POOL, "padding", -1, "padding must be at least 0, got -1"),
    (POOL, "dilation", [2], "dilation must be an integer or a list of 2 integers, got [2]"),
    (POOL, "kernel_size", "x", "kernel_size must be an integer or a list of integers, got 'x'"),
]


@pytest.mark.parametrize(("layer", "field", "value", "message"), BAD,
                         ids=[f"{layer['type']}-{field}={value!r}"
                              for layer, field, value, _ in BAD])
def test_a_bad_option_is_one_line_naming_the_node_and_the_field(
        layer: dict[str, Any], field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        manual.parse_spec(_spec({**layer, field: value}))
    text = str(caught.value)
    assert text == f"node 'win' ({layer['type']}): {message}"
    assert "\n" not in text


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("layer", [
    {**CONV, "stride": [2, 1], "padding": [1, 0], "dilation": 2},
    {**CONV, "kernel_size": [4, 3], "padding": "same"},
    {**POOL, "stride": [1, 2], "padding": 1, "ceil_mode": True},
    {"type": "avg_pool2d", "kernel_size": [3, 2], "padding": [1, 0], "count_include_pad": False},
    {"type": "adaptive_avg_pool2d", "output_size": [None, 3]},
])
def test_the_geometry_is_resolved_once_at_load_and_never_again(
        monkeypatch: pytest.MonkeyPatch, layer: dict[str, Any]) -> None:
    """After parsing, neither the engine's forwards (nor the gradient check's 2P perturbed
    ones) nor the torch builder derive the window geometry again; the record and the round
    trip keep the user's form of the options."""
    raw = _spec(layer)
    spec = manual.parse_spec(copy.deepcopy(raw))
    node = spec.nodes[0]
    assert "geometry" in node.signature.options and "geometry" not in node.options
    assert spec.to_dict()["nodes"][0] == {k: v for k, v in raw["nodes"][0].items()}
    rng = np.random.default_rng(0)
    data = manual.make_data(spec, rng.standard_normal((2, 2, 7, 7)),
                            rng.standard_normal((2, spec.output_shape[0])))

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the geometry was derived again after loading")

    for module, name in ((conv_ops, "conv_geometry"), (conv_ops, "conv_padding"),
                         (conv_ops, "conv_output_size"), (pool_ops, "pool_geometry")):
        monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr("manual.layers.pooling.adaptive_output_size", refuse)
    monkeypatch.setattr("manual.layers.conv.conv_geometry", refuse)
    record = compare_network(spec, data)
    assert record.passed, record.describe()
    assert record.spec == spec.to_dict()
    assert check_network(spec, data, "full").passed


def test_a_pure_pair_used_alone_still_resolves_the_spec_form() -> None:
    """The layer's forward given the spec's options (no node) resolves them itself, to the
    same result as the node's stored geometry."""
    spec = manual.parse_spec(_spec({**CONV, "stride": 2, "padding": "valid"}))
    node = spec.nodes[0]
    info = LAYERS["conv2d"]
    x = np.random.default_rng(1).standard_normal((2, 2, 7, 7))
    params = {k: np.ones(slot.shape) for k, slot in node.signature.params.items()}
    alone, _, _ = info.forward((x,), params, {}, {}, training=True, **node.options)
    stored, _, _ = info.forward((x,), params, {}, {}, training=True, **node.resolved)
    np.testing.assert_array_equal(alone, stored)
