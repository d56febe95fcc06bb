r"""How much memory a spec will take, estimated from its shapes before anything is allocated.

A hidden width of :math:`10^9` asks for gigabytes the moment the parameters are drawn; this
module says so first. The estimate counts elements from the node signatures alone (the
spec's parser has inferred every shape, and a slot is a shape, not an array yet),

.. math::
    P = \sum_{\text{nodes}} \sum_{s \in \text{params, state}} |s|, \qquad
    A = N \Big(\sum_{\text{inputs}} |x| + \sum_{\text{nodes}} \sum_{\text{outputs}} |y|\Big),

(:math:`|\cdot|` the number of elements of a per-sample shape; parameters and state buffers
:math:`P`; activations :math:`A` for a batch of :math:`N`) and turns them into bytes with
:data:`PARAMETER_COPIES` and :data:`ACTIVATION_COPIES` copies of the dtype's item size: each
engine holds parameters and gradients (and the harness a pristine copy), outputs, caches and
upstream gradients. It is a bound to refuse absurd specs with, not a measurement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from manual.spec import Spec

DEFAULT_BUDGET = 4 * 2**30  # 4 GiB; ``--max-memory`` raises it
# manual params + grads, torch params + grads, the shared initial copy, one spare
PARAMETER_COPIES = 6
ACTIVATION_COPIES = 8  # outputs, caches and upstream gradients in both engines
_ITEM = {"float32": 4, "float64": 8}


@dataclass(frozen=True)
class Estimate:
    parameters: int
    activations: int
    bytes: int


def estimate(spec: Spec, batch: int = 1) -> Estimate:
    """Elements and bytes ``spec`` needs for a batch of ``batch`` samples (from the shapes)."""
    parameters = sum(math.prod(slot.shape) for node in spec.nodes
                     for slot in (*node.signature.params.values(),
                                  *node.signature.state.values()))
    per_sample = sum(math.prod(item.shape) for item in spec.inputs) + sum(
        math.prod(shape) for node in spec.nodes
        for shape in (node.signature.outputs.values() or (node.shape,)))
    activations = batch * per_sample
    item = _ITEM.get(spec.dtype, 8)
    total = item * (PARAMETER_COPIES * parameters + ACTIVATION_COPIES * activations)
    return Estimate(parameters, activations, total)


def parse_size(text: str) -> int:
    """``"4GiB"``, ``"512MiB"``, ``"1e9"`` (bytes) -> bytes; a ``ValueError`` otherwise."""
    units = {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "kb": 10**3, "mb": 10**6,
             "gb": 10**9, "tb": 10**12, "b": 1, "": 1}
    lowered = text.strip().lower()
    number = lowered.rstrip("kmgtib")
    unit = lowered[len(number):]
    try:
        value = float(number) * units[unit]
    except (KeyError, ValueError):
        raise ValueError(f"not a size: {text!r} (try 4GiB or 512MiB)") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"must be a positive size, got {text!r}")
    return int(value)


def check(spec: Spec, batch: int = 1, budget: int = DEFAULT_BUDGET) -> Estimate:
    """Raise a one-line ``ValueError`` when ``spec`` on ``batch`` rows would exceed ``budget``."""
    found = estimate(spec, batch)
    if found.bytes > budget:
        raise ValueError(
            f"spec: needs about {found.bytes / 2**30:.3g} GiB ({found.parameters:,} parameters, "
            f"{found.activations:,} activations for a batch of {batch}), over the "
            f"{budget / 2**30:.3g} GiB budget; raise it with --max-memory if you mean it")
    return found
