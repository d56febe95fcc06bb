"""Named random streams: every random draw of the harness comes from one of these.

``stream(seed, purpose, node)`` is ``np.random.default_rng([seed, PURPOSES[purpose],
crc32(node)])``: each purpose (a node's parameters, the upstream gradient of the loss, a
dropout mask, ...) and each node has a stream of its own, so drawing more for one never
shifts another, and inserting a layer does not redraw the parameters of every later one.
"""

from __future__ import annotations

import zlib

import numpy as np

# The numbers are part of every seeded result: never renumber one, only add.
PURPOSES = {
    "params": 1, "state": 2, "noise": 3, "dloss": 4, "data": 5,
    "gradcheck": 6,  # the gradient check's upstream weights (a loss with reduction 'none')
    "sample": 7, "upstream": 8, "shuffle": 9,
    "experiment": 10,  # reports.experiments, one node per quantity
    "optim": 11,
    "directions": 12,  # the gradient check's sparse elements and projection directions
    "matrix": 13,  # the conformance matrix's inputs and targets
    "report": 14,  # what a report section draws (its random networks)
    "zoo": 15,  # the bug zoo's own cases
}


def stream(seed: int, purpose: str, node: str = "") -> np.random.Generator:
    """The generator for ``purpose`` (a key of :data:`PURPOSES`) at ``node`` under ``seed``."""
    if purpose not in PURPOSES:
        raise ValueError(f"random stream: unknown purpose {purpose!r} "
                         f"(known: {', '.join(PURPOSES)})")
    return np.random.default_rng([seed, PURPOSES[purpose], zlib.crc32(node.encode())])
