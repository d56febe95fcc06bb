"""Starting values of every slot of a spec: parameters, state buffers and noise.

Each node draws from its own named stream (:func:`manual.random.stream`), slot by slot in
the order its signature lists them, in float64, then casts to the spec's dtype (or the slot's
own, e.g. int64 for ``num_batches_tracked``). Explicit values in the spec are the slot's
``init``. Both engines start from these arrays, so they agree bit for bit.
"""

from __future__ import annotations

import numpy as np

from manual.numerics import Array
from manual.random import stream
from manual.spec import Spec


def _draw(spec: Spec, kind: str, purpose: str) -> dict[str, Array]:
    values: dict[str, Array] = {}
    for node in spec.nodes:
        slots = getattr(node.signature, kind)
        if not slots:
            continue
        rng = stream(spec.seed, purpose, node.name)
        for name, slot in slots.items():
            drawn = np.asarray(slot.init(rng, slot.shape))
            values[f"{node.name}.{name}"] = drawn.astype(slot.dtype or spec.dtype)
    return values


def initial_parameters(spec: Spec) -> dict[str, Array]:
    """Every parameter of ``spec``, named ``<node>.<slot>`` (``layers.0.weight``)."""
    return _draw(spec, "params", "params")


def initial_state(spec: Spec) -> dict[str, Array]:
    """Every state buffer of ``spec`` (``<node>.running_mean``, ...), at its initial value."""
    return _draw(spec, "state", "state")


def draw_noise(spec: Spec, batch: int, step: int = 0) -> dict[str, Array]:
    """The noise of one forward pass on a batch of ``batch`` (a dropout mask, ...).

    Drawn by the harness and given to both engines, since PyTorch's generator cannot be
    reproduced in NumPy; ``step`` gives each pass of a training run masks of its own.
    """
    values: dict[str, Array] = {}
    for node in spec.nodes:
        if not node.signature.noise:
            continue
        rng = stream(spec.seed, "noise", node.name if not step else f"{node.name}@{step}")
        for name, slot in node.signature.noise.items():
            drawn = np.asarray(slot.init(rng, (batch, *slot.shape)))
            values[f"{node.name}.{name}"] = drawn.astype(slot.dtype or spec.dtype)
    return values
