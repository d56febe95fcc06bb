"""Registry entries for the pooling layers: ``max_pool1d/2d``, ``avg_pool1d/2d`` and
``adaptive_avg_pool2d``, with ``nn.MaxPool*`` / ``nn.AvgPool*`` / ``nn.AdaptiveAvgPool2d``'s
options and defaults (``stride`` defaults to ``kernel_size``).

``avg_pool1d`` has no ``divisor_override``, as in PyTorch. Max pooling refuses a configuration
whose dilation and padding leave a window with no input position (PyTorch returns ``-inf``
there and routes the gradient to an unrelated position).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from manual.layers.info import Array, LayerInfo, Shape, Signature
from manual.layers.spatial import Grid, grid_samples, spatial_input, window_options
from manual.ops import pooling
from manual.ops.windows import ntuple
from manual.options import Flag, Given, Ints

B = "reference.builders.conv."


def _pool_signature(n_dims: int, options: Mapping[str, Any], shapes: tuple[Shape, ...]
                    ) -> Signature:
    channels, *size = spatial_input(shapes, n_dims)
    if "kernel_size" not in options:
        raise ValueError("kernel_size is required")
    override = options.get("divisor_override")
    if override is not None and (isinstance(override, bool) or not isinstance(override, int)
                                 or override == 0):
        raise ValueError(f"divisor_override must be a nonzero integer or null, got {override!r}")
    geometry = _geometry(tuple(size), options)
    return Signature((channels, *geometry.out),
                     options={**window_options(options, n_dims), "geometry": geometry})


def _geometry(size: Shape, options: Mapping[str, Any]) -> pooling.PoolGeometry:
    """The node's window geometry: resolved once by the signature (``options["geometry"]``),
    or here for the spec's options alone."""
    geometry = options.get("geometry")
    if isinstance(geometry, pooling.PoolGeometry):
        return geometry
    return pooling.pool_geometry(size, options["kernel_size"], options.get("stride"),
                                 options.get("padding", 0), options.get("dilation", 1),
                                 options.get("ceil_mode", False))


def _max_forward(inputs: tuple[Array, ...], params: Any, state: Any, noise: Any, *,
                 training: bool, **options: Any) -> tuple[Any, Any, dict]:
    x = inputs[0]
    y, cache = pooling.max_pool_forward(x, geometry=_geometry(x.shape[2:], options))
    return y, cache, {}


def _max_backward(dy: Array, cache: pooling.MaxPoolCache) -> tuple[tuple[Array, ...], dict]:
    return (pooling.max_pool_backward(dy, cache),), {}


def _max_switches(inputs: tuple[Array, ...], options: Mapping[str, Any]) -> Array:
    """Which offset of each window wins (PyTorch's tie rule): where it changes, a tie or a
    near-tie was crossed and the maximum's derivative jumps."""
    x = inputs[0]
    _, cache = pooling.max_pool_forward(x, geometry=_geometry(x.shape[2:], options))
    return cache.argmax


def _avg_forward(inputs: tuple[Array, ...], params: Any, state: Any, noise: Any, *,
                 training: bool, **options: Any) -> tuple[Any, Any, dict]:
    x = inputs[0]
    y, cache = pooling.avg_pool_forward(x, count_include_pad=options.get("count_include_pad",
                                                                          True),
                                        divisor_override=options.get("divisor_override"),
                                        geometry=_geometry(x.shape[2:], options))
    return y, cache, {}


def _avg_backward(dy: Array, cache: pooling.AvgPoolCache) -> tuple[tuple[Array, ...], dict]:
    return (pooling.avg_pool_backward(dy, cache),), {}


def adaptive_output_size(options: Mapping[str, Any], size: Shape) -> Shape:
    """``output_size`` (an int, or two ints / nulls; null keeps that input size) as two ints."""
    value = options.get("output_size")
    if isinstance(value, list | tuple) and len(value) == 2:
        value = [n if v is None else v for v, n in zip(value, size, strict=True)]
    try:
        return ntuple(value, 2, "output_size")
    except ValueError:
        raise ValueError(f"output_size must be a positive integer or a list of 2 positive "
                         f"integers or nulls, got {options.get('output_size')!r}") from None


def _adaptive_signature(options: Mapping[str, Any], shapes: tuple[Shape, ...]) -> Signature:
    channels, *size = spatial_input(shapes, 2)
    out = adaptive_output_size(options, tuple(size))
    value = options.get("output_size")
    as_given = tuple(value) if isinstance(value, list) else value  # nulls for PyTorch
    return Signature((channels, *out), options={"output_size": as_given, "geometry": out})


def _adaptive_forward(inputs: tuple[Array, ...], params: Any, state: Any, noise: Any, *,
                      training: bool, **options: Any) -> tuple[Any, Any, dict]:
    x = inputs[0]
    out = options.get("geometry") or adaptive_output_size(options, x.shape[2:])
    y, cache = pooling.adaptive_avg_pool2d_forward(x, out)
    return y, cache, {}


def _adaptive_backward(dy: Array, cache: pooling.AdaptiveAvgPoolCache
                       ) -> tuple[tuple[Array, ...], dict]:
    return (pooling.adaptive_avg_pool2d_backward(dy, cache),), {}


# Max pooling on small integers, so that windows hold exact ties: the first maximum in scan
# order must get the gradient. Overlapping windows (stride < kernel) must add up.
MAX_POOL2D_GRID: Grid = (
    ("k2", {"kernel_size": 2}, (3, 6, 6), 2),
    ("overlap_k3_s1", {"kernel_size": 3, "stride": 1}, (2, 5, 6), 2),
    ("overlap_k3_s2_pad1_odd", {"kernel_size": 3, "stride": 2, "padding": 1}, (2, 7, 7), 2),
    ("ceil_mode", {"kernel_size": 2, "ceil_mode": True}, (2, 5, 7), 2),
    ("ceil_mode_pad1", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
     (2, 6, 6), 2),
    ("dilation2", {"kernel_size": 2, "stride": 1, "dilation": 2}, (2, 6, 7), 2),
    ("rect", {"kernel_size": [2, 3], "stride": [1, 2], "padding": [1, 1]}, (2, 5, 8), 2),
    ("batch1", {"kernel_size": 3, "stride": 2}, (1, 7, 5), 1),
)
MAX_POOL1D_GRID: Grid = (
    ("k2", {"kernel_size": 2}, (3, 8), 2),
    ("overlap_k3_s1", {"kernel_size": 3, "stride": 1}, (2, 9), 2),
    ("overlap_k4_s3_pad2", {"kernel_size": 4, "stride": 3, "padding": 2}, (2, 11), 2),
    ("ceil_mode", {"kernel_size": 3, "stride": 2, "ceil_mode": True}, (2, 8), 2),
    ("dilation3", {"kernel_size": 3, "stride": 1, "dilation": 3, "padding": 1}, (2, 10), 2),
    ("batch1", {"kernel_size": 2, "stride": 3}, (1, 7), 1),
)
AVG_POOL2D_GRID: Grid = (
    ("k2", {"kernel_size": 2}, (3, 6, 6), 2),
    ("overlap_k3_s1", {"kernel_size": 3, "stride": 1}, (2, 5, 6), 2),
    ("pad1_include", {"kernel_size": 3, "stride": 2, "padding": 1}, (2, 7, 7), 2),
    ("pad1_exclude", {"kernel_size": 3, "stride": 2, "padding": 1,
                      "count_include_pad": False}, (2, 7, 7), 2),
    ("ceil_mode_clipped", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
     (2, 6, 6), 2),
    ("ceil_mode_exclude", {"kernel_size": 2, "ceil_mode": True, "count_include_pad": False},
     (2, 5, 7), 2),
    ("divisor_override", {"kernel_size": [2, 3], "stride": [2, 1], "padding": [1, 1],
                          "divisor_override": 5}, (2, 5, 6), 2),
    ("batch1", {"kernel_size": 3, "stride": 2}, (1, 7, 5), 1),
)
AVG_POOL1D_GRID: Grid = (
    ("k2", {"kernel_size": 2}, (3, 8), 2),
    ("overlap_k3_s1", {"kernel_size": 3, "stride": 1}, (2, 9), 2),
    ("pad2_exclude", {"kernel_size": 4, "stride": 3, "padding": 2,
                      "count_include_pad": False}, (2, 11), 2),
    ("ceil_mode_clipped", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
     (2, 8), 2),
    ("batch1", {"kernel_size": 2, "stride": 3}, (1, 7), 1),
)
ADAPTIVE_GRID: Grid = (
    ("uneven", {"output_size": [3, 2]}, (2, 7, 5), 2),
    ("overlapping", {"output_size": [3, 5]}, (2, 8, 8), 2),
    ("global", {"output_size": 1}, (3, 4, 9), 2),
    ("upsampling", {"output_size": [5, 4]}, (2, 3, 3), 2),
    ("keep_height", {"output_size": [None, 2]}, (2, 5, 7), 1),
)

# stride null (or []) is the kernel size, as in PyTorch.
_WINDOW = {"kernel_size": Ints(required=True), "stride": Ints(None, empty=True),
           "padding": Ints(0, low=0)}
_MAX_OPTIONS = {**_WINDOW, "dilation": Ints(1), "ceil_mode": Flag(False)}
_AVG1D_OPTIONS = {**_WINDOW, "ceil_mode": Flag(False), "count_include_pad": Flag(True)}


def _pool(name: str, n_dims: int, forward: Any, backward: Any, options: Mapping[str, Any],
          grid: Grid, integer: bool, switches: Any = None) -> LayerInfo:
    return LayerInfo(name=name, forward=forward, backward=backward, torch=B + name,
                     options=options, signature=partial(_pool_signature, n_dims),
                     samples=partial(grid_samples, grid, integer), switches=switches)


POOLING_LAYERS = (
    _pool("max_pool1d", 1, _max_forward, _max_backward, _MAX_OPTIONS, MAX_POOL1D_GRID, True,
          _max_switches),
    _pool("max_pool2d", 2, _max_forward, _max_backward, _MAX_OPTIONS, MAX_POOL2D_GRID, True,
          _max_switches),
    _pool("avg_pool1d", 1, _avg_forward, _avg_backward, _AVG1D_OPTIONS, AVG_POOL1D_GRID,
          False),
    _pool("avg_pool2d", 2, _avg_forward, _avg_backward,
          {**_AVG1D_OPTIONS, "divisor_override": Given(None)}, AVG_POOL2D_GRID, False),
    LayerInfo(name="adaptive_avg_pool2d", forward=_adaptive_forward,
              backward=_adaptive_backward, torch=B + "adaptive_avg_pool2d",
              options={"output_size": Given(required=True)}, signature=_adaptive_signature,
              samples=partial(grid_samples, ADAPTIVE_GRID, False)),
)
