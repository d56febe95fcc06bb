"""The seed tutorial's worked example, figure by figure, against both engines.

The tutorial (2 -> 3 -> 1, ReLU then sigmoid, binary cross-entropy, x = [1, 2],
y = 1) prints every intermediate value rounded to a few decimals. Each figure
here pairs the printed numbers with both engines' values; a figure *agrees*
when PyTorch's value rounds to what was printed (within half a unit in the last
printed decimal). Where it does not, PyTorch wins and ``explanation`` says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import manual
from reference.core.compare import compare_network
from reference.core.records import ComparisonRecord

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SEED_SPEC = EXAMPLES / "seed_example.json"
SEED_DATA = EXAMPLES / "seed_example_data.json"

# The seed's slip: it writes dL/da2 = a2 - y, which is already dL/dz2 (for a
# sigmoid followed by binary cross-entropy the sigmoid's derivative cancels),
# and then multiplies by sigmoid'(z2) = a2 (1 - a2) ~ 0.056 a second time.
_DOUBLE_SIGMOID = (
    "Inherits the seed's slip at dL/dz2: the seed multiplied by sigmoid'(z2) = a2(1 - a2) "
    "~ 0.056 twice, so this gradient is about 18x too small."
)
_EXPLANATIONS = {
    "a2": "sigmoid(2.76) = 0.940476..., which rounds to 0.940; the seed printed 0.941.",
    "dL/da2": (
        "The seed writes dL/da2 = a2 - y = -0.059, but a2 - y is dL/dz2 (sigmoid and binary "
        "cross-entropy together). The gradient at the sigmoid's output is "
        "dL/da2 = -y/a2 + (1 - y)/(1 - a2) = -1/a2 = -1.0633."
    ),
    "dL/dz2": (
        "The seed multiplies a2 - y (already dL/dz2) by sigmoid'(z2) = a2(1 - a2) = 0.056 a "
        "second time. Correct: dL/dz2 = a2 - y = -0.0595."
    ),
}

# (figure, tensor in the comparison record, the seed's printed values, decimals printed)
_PRINTED: tuple[tuple[str, str, list[float], int], ...] = (
    ("z1", "forward: layers.0", [0.5, 1.1, 1.7], 1),
    ("a1", "forward: layers.1", [0.5, 1.1, 1.7], 1),
    ("z2", "forward: layers.2", [2.76], 2),
    ("a2", "forward: layers.3", [0.941], 3),
    ("L", "forward: loss", [0.061], 3),
    ("dL/da2", "backward: output", [-0.059], 3),
    ("dL/dz2", "backward: layers.2", [-0.0033], 4),
    ("dL/dW2", "backward: layers.2.weight", [-0.0017, -0.0036, -0.0056], 4),
    ("dL/db2", "backward: layers.2.bias", [-0.0033], 4),
    ("dL/da1", "backward: layers.1", [-0.0023, -0.0026, -0.0030], 4),
    ("dL/dz1", "backward: layers.0", [-0.0023, -0.0026, -0.0030], 4),
    ("dL/dW1", "backward: layers.0.weight",
     [-0.0023, -0.0046, -0.0026, -0.0052, -0.0030, -0.0060], 4),
    ("dL/db1", "backward: layers.0.bias", [-0.0023, -0.0026, -0.0030], 4),
)


@dataclass(frozen=True)
class SeedFigure:
    """One printed figure of the seed beside both engines' values (flattened)."""

    name: str
    tensor: str
    printed: list[float]
    manual: list[float]
    reference: list[float]
    decimals: int
    agrees: bool
    explanation: str


def _flat(values: object) -> list[float]:
    return [float(v) for v in np.ravel(np.asarray(values, dtype=np.float64))]


def seed_record() -> ComparisonRecord:
    """Both engines on the shipped seed example (float64), values kept."""
    spec = manual.load_spec(SEED_SPEC)
    return compare_network(spec, manual.load_data(SEED_DATA, spec))


def seed_figures(record: ComparisonRecord | None = None) -> list[SeedFigure]:
    """Every figure the seed prints, with both engines' values and the verdict."""
    record = record or seed_record()
    figures = []
    for name, tensor, printed, decimals in _PRINTED:
        t = record.tensor(tensor)
        reference = _flat(t.reference)
        half_unit = 0.5 * 10.0**-decimals * (1 + 1e-9)
        agrees = all(abs(p - r) <= half_unit for p, r in zip(printed, reference, strict=True))
        explanation = "" if agrees else _EXPLANATIONS.get(name, _DOUBLE_SIGMOID)
        figures.append(SeedFigure(name, tensor, printed, _flat(t.manual), reference, decimals,
                                  agrees, explanation))
    return figures
