"""Structured tensor names: what was compared, as fields, printed as round 1's strings.

``TensorName("backward", "layers.2", "weight")`` prints ``backward: layers.2.weight``;
``TensorName("edge", "sum", "act1")`` is the gradient node ``sum`` sent back to ``act1``
(``backward: act1 -> sum``; ``backward: fc -> double (input 1)`` where one node reads a value
twice); a ``step`` prefixes ``step 3: ``; a protocol ``check`` replaces the stage word of a
gradient (``accumulate: layers.0.weight``). Records keep the fields, so nothing downstream
has to take a string apart; :meth:`TensorName.parse` reads a printed name back (an old record,
a name a user typed), the one place that does. The grammar::

    name  := ["step " STEP ": "] body
    body  := "backward: " REF " -> " NODE [" (input " EDGE ")"]    (stage "edge")
           | CHECK ": " NODE ["." SLOT]                            (stage "backward")
           | STAGE ": " NODE ["." SLOT]
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal, cast, get_args

Stage = Literal["forward", "backward", "edge", "state", "param", "unchanged", "hygiene", "eval"]
Check = Literal["accumulate", "stale_cache"]
STAGES: tuple[str, ...] = tuple(s for s in get_args(Stage) if s != "edge")
CHECKS: tuple[str, ...] = get_args(Check)
_STEP = re.compile(r"step (\d+): (.*)\Z", re.DOTALL)
_EDGE = re.compile(r"backward: (.+) -> (.+?)(?: \(input (\d+)\))?\Z", re.DOTALL)


@dataclass(frozen=True)
class TensorName:
    stage: Stage
    node: str
    slot: str = ""
    step: int | None = None
    edge: int | None = None  # which input of ``node``, when it reads ``slot`` more than once
    check: Check | None = None  # the protocol check whose gradient this is

    @property
    def ref(self) -> str:
        """``node.slot`` (``lstm.h_n``, ``layers.0.weight``), or the node alone."""
        return f"{self.node}.{self.slot}" if self.slot else self.node

    def __str__(self) -> str:
        if self.stage == "edge":
            body = f"backward: {self.slot} -> {self.node}"
            if self.edge is not None:
                body += f" (input {self.edge})"
        else:
            body = f"{self.check or self.stage}: {self.ref}"
        return body if self.step is None else f"step {self.step}: {body}"

    @classmethod
    def parse(cls, text: str, nodes: Collection[str] = ()) -> TensorName:
        """The inverse of :func:`str`: ``TensorName.parse(str(name), nodes) == name``.

        ``nodes`` (the spec's node names) says where a node's name ends in ``a.b.c``; without
        them the last dotted part is the slot unless it is a number (``layers.2`` is a node,
        ``layers.2.weight`` its slot). A string the grammar does not describe is a
        ``ValueError`` naming it.
        """
        step = None
        stepped = _STEP.match(text)
        if stepped:
            step, text = int(stepped.group(1)), stepped.group(2)
        edge = _EDGE.match(text)
        if edge:
            ref, node, j = edge.groups()
            return cls("edge", node, ref, step, None if j is None else int(j))
        word, sep, rest = text.partition(": ")
        if not sep or not rest or (word not in STAGES and word not in CHECKS):
            raise ValueError(f"tensor name {text!r}: expected '<stage>: <name>' with a stage "
                             f"of {', '.join((*STAGES, *CHECKS))}")
        node, slot = split_ref(rest, nodes)
        if word in CHECKS:
            return cls("backward", node, slot, step, check=cast(Check, word))
        return cls(cast(Stage, word), node, slot, step)


def split_ref(ref: str, nodes: Collection[str] = ()) -> tuple[str, str]:
    """``"layers.2.weight"`` -> ``("layers.2", "weight")``: the node and its slot (or output).

    With ``nodes``, the longest node name that ``ref`` is or starts with (``mha`` in
    ``mha.out_proj.weight``); without, the last dotted part unless it is a number.
    """
    if ref in nodes:
        return ref, ""
    owners = [n for n in nodes if ref.startswith(f"{n}.")]
    if owners:
        owner = max(owners, key=len)
        return owner, ref[len(owner) + 1:]
    head, dot, tail = ref.rpartition(".")
    if not dot or not head or not tail or tail.isdigit():
        return ref, ""
    return head, tail
