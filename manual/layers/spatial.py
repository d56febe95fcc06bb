"""Helpers shared by the convolution and pooling entries: the input check and sample grids."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from manual.layers.core import one_input
from manual.layers.info import Sample, Shape
from manual.ops.windows import ntuple

SPATIAL = {1: "L", 2: "H, W"}

#: (name, options, per-sample input shape, batch size) of one conformance configuration.
Grid = tuple[tuple[str, dict[str, Any], Shape, int], ...]


def spatial_input(shapes: tuple[Shape, ...], n_dims: int) -> Shape:
    """The one input's per-sample shape ``(C, *spatial)``, or an error naming it."""
    shape = one_input(shapes)
    if len(shape) != n_dims + 1:
        raise ValueError(f"needs inputs of shape (C, {SPATIAL[n_dims]}) per sample, got shape "
                         f"{shape}")
    return shape


WINDOW_OPTIONS = ("kernel_size", "stride", "padding", "dilation")


def window_options(options: Mapping[str, Any], n_dims: int) -> dict[str, Any]:
    """The window options given, as PyTorch takes them: an int or a list as a tuple of
    ``n_dims`` ints; ``"same"``, ``"valid"`` and null as given. The signature stores these
    (after its geometry validated them), so that the torch builder reads them as they are."""
    return {key: ntuple(value, n_dims, key, low=0 if key == "padding" else 1)
            if isinstance(value, int | list) and value != [] else value
            for key, value in options.items() if key in WINDOW_OPTIONS}


def grid_samples(grid: Grid, integer: bool, rng: np.random.Generator, dtype: str
                 ) -> Iterator[Sample]:
    """One Sample per grid row; ``integer`` draws small integers, so that maxima tie exactly."""
    for name, options, shape, batch in grid:
        size = (batch, *shape)
        x = rng.integers(-2, 3, size=size) if integer else rng.normal(size=size)
        yield Sample(options, (np.asarray(x, dtype=dtype),), name)
