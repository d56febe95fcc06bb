"""Named random streams: every random draw of the harness comes from one of these.

``stream(seed, purpose, node)`` is ``np.random.default_rng([seed, PURPOSES[purpose],
crc32(node)])``: each purpose (a node's parameters, the upstream gradient of the loss, a
dropout mask, ...) and each node has a stream of its own, so drawing more for one never
shifts another, and inserting a layer does not redraw the parameters of every later one.
"""

from __future__ import annotations

import zlib

import numpy as np

PURPOSES = {
    "params": 1, "state": 2, "noise": 3, "dloss": 4, "data": 5, "gradcheck": 6, "sample": 7,
    "upstream": 8, "shuffle": 9, "experiment": 10, "optim": 11,
}


def stream(seed: int, purpose: str, node: str = "") -> np.random.Generator:
    """The generator for ``purpose`` (a key of :data:`PURPOSES`) at ``node`` under ``seed``."""
    if purpose not in PURPOSES:
        raise ValueError(f"random stream: unknown purpose {purpose!r} "
                         f"(known: {', '.join(PURPOSES)})")
    return np.random.default_rng([seed, PURPOSES[purpose], zlib.crc32(node.encode())])
