"""The layer registry: one :class:`LayerInfo` per layer type, keyed by the spec's ``type``.

Each family of layers keeps its entries in a module of this package; :data:`LAYERS` joins
them. Adding a layer is one entry plus its pair under ``manual/ops/`` and its torch builder
under ``reference/builders``.
"""

from __future__ import annotations

from manual.layers.conv import CONV_LAYERS
from manual.layers.core import CORE_LAYERS, from_op
from manual.layers.info import LayerInfo, Sample, Signature, Slot
from manual.layers.norm import NORM_LAYERS
from manual.layers.recurrent import RECURRENT_LAYERS

# A plain dict, so that the bug zoo can swap an entry for the length of one test.
LAYERS: dict[str, LayerInfo] = {
    info.name: info for info in (*CORE_LAYERS, *CONV_LAYERS, *RECURRENT_LAYERS, *NORM_LAYERS)}

__all__ = ["LAYERS", "LayerInfo", "Sample", "Signature", "Slot", "from_op"]
