"""Structured tensor names: what was compared, as fields, printed as round 1's strings.

``TensorName("backward", "layers.2", "weight")`` prints ``backward: layers.2.weight``;
``TensorName("edge", "sum", "act1")`` is the gradient node ``sum`` sent back to ``act1``
(``backward: act1 -> sum``; ``backward: fc -> double (input 1)`` where one node reads a value
twice); a ``step`` prefixes ``step 3: ``. Records keep the fields, so
nothing downstream has to take a string apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Stage = Literal["forward", "backward", "edge", "state", "param", "unchanged"]


@dataclass(frozen=True)
class TensorName:
    stage: Stage
    node: str
    slot: str = ""
    step: int | None = None
    edge: int | None = None  # which input of ``node``, when it reads ``slot`` more than once

    def __str__(self) -> str:
        if self.stage == "edge":
            body = f"backward: {self.slot} -> {self.node}"
            if self.edge is not None:
                body += f" (input {self.edge})"
        else:
            body = f"{self.stage}: {self.node}{'.' + self.slot if self.slot else ''}"
        return body if self.step is None else f"step {self.step}: {body}"
