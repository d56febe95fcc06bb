"""Records: the structured results that tests assert on and reports render.

Every record is a dataclass that round-trips through JSON. Non-finite floats
are written as the strings ``"nan"``, ``"inf"`` and ``"-inf"`` (strict JSON has
no literal for them) and read back as floats.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from manual.jsonable import decode, decode_float, decode_numbers, dumps, encode
from reference.core.names import TensorName

__all__ = ["ComparisonRecord", "TensorComparison", "at_step", "decode_float", "decode_numbers",
           "dumps", "encode"]

@dataclass
class TensorComparison:
    """One tensor compared between the engines.

    ``max_rel_error`` is :math:`\\max |m - r| / |r|` over elements with
    :math:`r \\ne 0`; ``tolerance_ratio`` is
    :math:`\\max |m - r| / (\\text{atol} + \\text{rtol}\\,|r|)`, so the tensor
    passes when it is at most 1 (``torch.testing.assert_close``'s rule), and
    ``worst_index`` is where that maximum is reached, and ``mismatched`` counts the
    elements whose ratio exceeds 1. ``stage``, ``node``, ``slot``, ``step``, ``edge`` and
    ``check`` are the fields of its :class:`~reference.core.names.TensorName`
    (:attr:`tensor_name`); a record written before a field existed loads with its default.
    """

    name: str
    shape: list[int]
    dtype: str
    max_abs_error: float
    max_rel_error: float
    tolerance_ratio: float
    worst_index: list[int]
    rtol: float
    atol: float
    passed: bool
    problem: str = ""
    manual: Any = None
    reference: Any = None
    stage: str = ""
    node: str = ""
    slot: str = ""
    step: int | None = None
    mismatched: int = 0
    edge: int | None = None
    check: str | None = None

    @property
    def tensor_name(self) -> TensorName:
        """The name as fields: the record's own, or ``name`` parsed (a record without them)."""
        if not self.stage:
            return TensorName.parse(self.name)
        return TensorName(self.stage, self.node, self.slot, self.step,  # type: ignore[arg-type]
                          self.edge, self.check)  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TensorComparison:
        decoded: TensorComparison = decode(cls, raw)
        return decoded


def at_step(tensor: TensorComparison, step: int) -> TensorComparison:
    """``tensor`` as compared at ``step`` of a sequence (``step 2: state: bn.running_var``)."""
    name = dataclasses.replace(tensor.tensor_name, step=step)
    return dataclasses.replace(tensor, name=str(name), stage=name.stage, node=name.node,
                               slot=name.slot, step=step, edge=name.edge, check=name.check)


@dataclass
class ComparisonRecord:
    """Both engines run on one subject (a spec, or one op alone), every tensor compared.

    ``first_divergence`` names where the engines part: the first layer whose
    output differs going forward, else the loss, else the first layer whose
    gradients differ going backward (``"backward: layers.2 (relu)"``). ``notes`` are
    diagnoses in plain words (a constant factor, a biased variance) for ``describe``.
    """

    subject: str
    kind: str
    dtype: str
    seed: int
    passed: bool
    first_divergence: str | None
    tolerance_reason: str
    tensors: list[TensorComparison]
    spec: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[TensorComparison]:
        return [t for t in self.tensors if not t.passed]

    def tensor(self, name: str) -> TensorComparison:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def to_json(self, indent: int | None = 2) -> str:
        return dumps(self, indent)

    def describe(self) -> str:
        """A few lines for a failure message: where the engines part and by how much."""
        verdict = "agree" if self.passed else f"part at {self.first_divergence}"
        lines = [f"{self.subject} ({self.kind}, {self.dtype}, seed {self.seed}): engines {verdict}"]
        for t in self.failures:
            lines.append(f"  {t.name}: {t.problem or ''} max abs {t.max_abs_error:.3g}, max rel "
                         f"{t.max_rel_error:.3g}, err/tol {t.tolerance_ratio:.3g} at "
                         f"{t.worst_index} (rtol {t.rtol:g}, atol {t.atol:g})")
        lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ComparisonRecord:
        decoded: ComparisonRecord = decode(cls, raw)
        return decoded

    @classmethod
    def from_json(cls, text: str) -> ComparisonRecord:
        return cls.from_dict(json.loads(text))
