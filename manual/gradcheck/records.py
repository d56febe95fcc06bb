"""Records of a gradient check: one :class:`TensorCheck` per tensor, in a :class:`GradcheckRecord`.

Both are dataclasses that round-trip through JSON (non-finite floats as ``"nan"``/``"inf"``,
through :mod:`manual.jsonable`, which :mod:`reference.core.records` shares).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from manual.jsonable import decode, encode

# Verdict bands on the relative error |a - n| / (|a| + |n|).
GOOD = 1e-7
ACCEPTABLE = 1e-4
# Element and tensor verdicts, from best to worst. "kink" is a kink crossed with an error above
# ACCEPTABLE: the central difference straddles a jump of the derivative, so it says nothing.
VERDICTS = ("good", "acceptable", "kink", "wrong")
MODES = ("full", "sparse", "projection", "complex")

@dataclass
class TensorCheck:
    """One tensor's analytic gradient ``a`` against its numerical estimate ``n``.

    ``max_rel_error`` is :math:`\\max_i |a_i - n_i| / \\max(|a_i| + |n_i|, \\text{floor})` over the
    checked elements whose perturbation crossed no kink, reached at ``worst_index``;
    ``floor = noise / GOOD``, where ``noise`` is the absolute error that the numerical estimate
    cannot resolve (rounding of the loss divided by the step), so an element whose whole
    gradient lies below the resolution is judged by its absolute error against ``noise``.
    ``kinks_crossed`` counts elements whose perturbation moved some pre-activation across a
    kink of its op; ``max_rel_error_kinked`` is their largest error (judged against
    ``ACCEPTABLE``, else reported as ``"kink"`` and left out of the verdict).

    ``refined`` counts elements that failed at the step ``h`` but whose error shrank with a
    smaller step (truncation error, as where a second derivative jumps: softsign at 0, huber at
    ``delta``), judged at the smaller step and allowed up to ``ACCEPTABLE``.

    In ``projection`` mode an "element" is one random direction: ``checked`` is 1 and the
    errors compare :math:`v^\\top J u` (see :mod:`manual.gradcheck.modes`); if it did not pass,
    ``located_by`` is ``"full"`` and the errors and index come from the full check of this tensor.
    """

    name: str
    shape: list[int]
    mode: str
    checked: int
    max_rel_error: float
    max_abs_error: float
    worst_index: list[int]
    noise: float
    kinks_crossed: int
    max_rel_error_kinked: float
    kink_indices: list[list[int]]
    verdict: str
    passed: bool
    located_by: str = ""
    problem: str = ""
    refined: int = 0

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TensorCheck:
        decoded: TensorCheck = decode(cls, raw)
        return decoded


@dataclass
class GradcheckRecord:
    """A whole check: the subject, how it was checked, and every tensor (parameters, then input).

    The check always runs in float64; ``source_dtype`` is the dtype of the subject as given
    (a float32 network is checked on a float64 copy of itself). ``forwards`` counts the
    perturbed evaluations (for ``full``: two per element, or one per element for ``complex``).
    """

    subject: str
    mode: str
    eps: float
    seed: int
    source_dtype: str
    passed: bool
    tensors: list[TensorCheck]
    forwards: int = 0
    problem: str = ""
    spec: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def failures(self) -> list[TensorCheck]:
        return [t for t in self.tensors if not t.passed]

    @property
    def max_rel_error(self) -> float:
        return max((t.max_rel_error for t in self.tensors), default=0.0)

    def tensor(self, name: str) -> TensorCheck:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return dict(encode(self))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(encode(self), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> GradcheckRecord:
        decoded: GradcheckRecord = decode(cls, raw)
        return decoded

    @classmethod
    def from_json(cls, text: str) -> GradcheckRecord:
        return cls.from_dict(json.loads(text))

    def describe(self) -> str:
        """A few lines for a failure message: which tensors fail, by how much and where."""
        verdict = "pass" if self.passed else "FAIL"
        lines = [f"{self.subject} ({self.mode}, eps {self.eps:g}): {verdict}"
                 + (f": {self.problem}" if self.problem else "")]
        for t in self.failures:
            lines.append(f"  {t.name}: max rel {t.max_rel_error:.3g} at {t.worst_index}, "
                         f"max abs {t.max_abs_error:.3g}, noise {t.noise:.3g}"
                         + (f" ({t.problem})" if t.problem else ""))
        return "\n".join(lines)
