"""Registry entries for ``conv1d`` and ``conv2d`` (``nn.Conv1d`` / ``nn.Conv2d``), plus the
pooling layers of :mod:`manual.layers.pooling`, joined as :data:`CONV_LAYERS`.

Options keep PyTorch's names and defaults. ``kernel_size``, ``stride``, ``padding`` and
``dilation`` take an integer or a list with one integer per spatial dimension (``padding``
also ``"same"`` / ``"valid"``); the signature validates them against the input shape and
refuses an impossible configuration naming the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np

from manual import init as initializers
from manual.layers.info import Array, LayerInfo, Shape, Signature, Slot
from manual.layers.pooling import POOLING_LAYERS
from manual.layers.spatial import Grid, grid_samples, spatial_input, window_options
from manual.ops.conv import ConvCache, conv_backward, conv_forward, conv_geometry
from manual.options import Choice, Flag, Int, Ints, LayerOption

B = "reference.builders.conv."


def _kaiming_weight(rng: np.random.Generator, shape: Shape) -> Array:
    r"""``nn.Conv*.reset_parameters``: ``kaiming_uniform_(a=sqrt(5))`` on ``(O, C/g, *k)``.

    That is :math:`U(-1/\sqrt{\text{fan\_in}}, 1/\sqrt{\text{fan\_in}})` with
    :math:`\text{fan\_in} = (C/g) \prod k` (the receptive field multiplies the fan).
    """
    return initializers.kaiming_uniform(shape, rng, a=math.sqrt(5))


def _bias(fan_in: int, rng: np.random.Generator, shape: Shape) -> Array:
    bound = 1 / math.sqrt(fan_in)
    return initializers.uniform(shape, rng, a=-bound, b=bound)


def _conv_signature(n_dims: int, options: Mapping[str, Any], shapes: tuple[Shape, ...]
                    ) -> Signature:
    channels, *size = spatial_input(shapes, n_dims)
    out_channels, groups = options.get("out_channels"), options.get("groups", 1)
    if isinstance(out_channels, bool) or not isinstance(out_channels, int) or out_channels < 1:
        raise ValueError(f"out_channels must be a positive integer, got {out_channels!r}")
    if options.get("in_channels", channels) != channels:
        raise ValueError(f"in_channels is {options['in_channels']!r}, but the input has "
                         f"{channels} channels")
    if channels % groups or out_channels % groups:
        raise ValueError(f"groups {groups} must divide both in_channels {channels} and "
                         f"out_channels {out_channels}")
    mode = options.get("padding_mode", "zeros")
    if mode != "zeros":
        raise ValueError(f"padding_mode {mode!r} is not supported (only 'zeros')")
    geometry = conv_geometry(tuple(size), options.get("kernel_size"), options.get("stride", 1),
                             options.get("padding", 0), options.get("dilation", 1))
    weight = (out_channels, channels // groups, *geometry.kernel)
    params = {"weight": Slot(weight, _kaiming_weight, torch="weight")}
    if options.get("bias", True):
        fan_in, _ = initializers.calculate_fan_in_and_fan_out(weight)
        params["bias"] = Slot((out_channels,), partial(_bias, fan_in), torch="bias")
    return Signature((out_channels, *geometry.out), params=params,
                     options={**window_options(options, n_dims), "geometry": geometry})


def _conv_forward(inputs: tuple[Array, ...], params: Mapping[str, Array], state: Any,
                  noise: Any, *, training: bool, **options: Any) -> tuple[Any, Any, dict]:
    """A node's forward reads the geometry its signature resolved (``options["geometry"]``);
    given the spec's options alone, it resolves them for this input."""
    y, cache = conv_forward(inputs[0], params["weight"], params.get("bias"),
                            stride=options.get("stride", 1), padding=options.get("padding", 0),
                            dilation=options.get("dilation", 1), groups=options.get("groups", 1),
                            geometry=options.get("geometry"))
    return y, cache, {}


def _conv_backward(dy: Array, cache: ConvCache) -> tuple[tuple[Array, ...], dict[str, Array]]:
    dx, dweight, dbias = conv_backward(dy, cache)
    return (dx,), ({"weight": dweight} if dbias is None else {"weight": dweight, "bias": dbias})


CONV_OPTIONS: dict[str, LayerOption] = {
    "out_channels": Int(None, low=1, required=True), "kernel_size": Ints(required=True),
    "stride": Ints(1), "padding": Ints(0, low=0, words=("same", "valid")),
    "dilation": Ints(1), "groups": Int(1, low=1),
    "bias": Flag(True), "in_channels": Int(None, low=1),
    "padding_mode": Choice("zeros", ("zeros", "reflect", "replicate", "circular")),
}

# (name, options, per-sample input shape, batch): padding 0, strides that do not divide the
# padded size, dilation, groups and depthwise, "same" with an even kernel, odd sizes, batch 1.
CONV2D_GRID: Grid = (
    ("pad0", {"out_channels": 4, "kernel_size": 3}, (3, 5, 5), 2),
    ("stride2_not_dividing", {"out_channels": 3, "kernel_size": 3, "stride": 2}, (2, 8, 7), 3),
    ("stride_pad_rect", {"out_channels": 2, "kernel_size": [3, 2], "stride": [3, 2],
                         "padding": [1, 0]}, (2, 9, 6), 2),
    ("dilation2", {"out_channels": 3, "kernel_size": 3, "dilation": 2, "padding": 1},
     (2, 9, 8), 2),
    ("groups2", {"out_channels": 6, "kernel_size": 3, "groups": 2, "padding": 1}, (4, 5, 6), 2),
    ("depthwise_stride2", {"out_channels": 6, "kernel_size": 3, "groups": 3, "stride": 2},
     (3, 7, 7), 2),
    ("same_even_kernel", {"out_channels": 2, "kernel_size": [4, 3], "padding": "same"},
     (3, 6, 5), 2),
    ("valid_no_bias", {"out_channels": 3, "kernel_size": 2, "padding": "valid",
                       "bias": False}, (2, 5, 4), 2),
    ("projection_1x1_stride2", {"out_channels": 5, "kernel_size": 1, "stride": 2},
     (3, 7, 6), 2),
    ("batch1", {"out_channels": 2, "kernel_size": 3, "padding": 2, "stride": 3}, (1, 7, 5), 1),
)
CONV1D_GRID: Grid = (
    ("pad0", {"out_channels": 4, "kernel_size": 3}, (3, 9), 2),
    ("stride2_not_dividing", {"out_channels": 3, "kernel_size": 3, "stride": 2,
                              "padding": 1}, (2, 10), 3),
    ("dilation3", {"out_channels": 2, "kernel_size": 3, "dilation": 3}, (2, 11), 2),
    ("groups2", {"out_channels": 4, "kernel_size": 2, "groups": 2, "padding": 1}, (4, 7), 2),
    ("depthwise", {"out_channels": 3, "kernel_size": 5, "groups": 3, "padding": "same"},
     (3, 8), 2),
    ("same_even_kernel", {"out_channels": 2, "kernel_size": 4, "padding": "same",
                          "dilation": 1}, (2, 7), 2),
    ("batch1_no_bias", {"out_channels": 2, "kernel_size": 3, "stride": 3, "bias": False},
     (1, 7), 1),
)


def _conv_layer(n_dims: int, grid: Grid) -> LayerInfo:
    return LayerInfo(name=f"conv{n_dims}d", forward=_conv_forward, backward=_conv_backward,
                     torch=B + f"conv{n_dims}d", options=CONV_OPTIONS,
                     signature=partial(_conv_signature, n_dims),
                     samples=partial(grid_samples, grid, False))


CONV_LAYERS = (_conv_layer(1, CONV1D_GRID), _conv_layer(2, CONV2D_GRID), *POOLING_LAYERS)
