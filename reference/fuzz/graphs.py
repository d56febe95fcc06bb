"""Hypothesis strategies for graph networks: DAGs with skip connections and concatenations.

:func:`graphs` builds a spec node by node. Each step draws a layer and reads earlier values:
a ``linear`` layer, an activation, an ``add`` of two values of one shape (a skip
connection) or a ``concat`` of two values; a ``flatten`` ends a graph on ``(L, D)`` inputs.
Nodes are appended to a list, so Hypothesis shrinks a failure by deleting nodes.
``include=("add",)`` guarantees a residual block (``add(tanh(linear(v)), v)``),
``include=("concat",)`` a concatenation of two branches.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
from hypothesis import strategies as st

import manual
from manual.registry import ACTIVATIONS, LOSSES
from manual.spec import DTYPES, Spec
from reference.core import sampling

GRAPH_OPS = ("add", "concat")
# Activations that keep every value finite and smooth enough for any wiring.
_ACTIVATIONS = tuple(sorted(name for name, op in ACTIVATIONS.items()
                            if op.structure == "elementwise"))


@st.composite
def graphs(draw: st.DrawFn, *, max_nodes: int = 8, max_width: int = 8,
           dtypes: Collection[str] = DTYPES,
           include: Collection[str] = ()) -> Spec:
    """A random graph spec with an ``mse`` or ``cross_entropy`` loss on its last node.

    The input is ``(D,)`` or, one time in three, ``(L, D)`` per sample, so that ``linear`` runs
    on ``(N, L, D)`` and a ``flatten`` joins the rows before the head.
    """
    width = draw(st.integers(1, max_width))
    rows = draw(st.sampled_from((0, 0, 1, 2, 3)))
    lead = (rows,) if rows else ()
    shapes: dict[str, tuple[int, ...]] = {"x": (*lead, width)}
    nodes: list[dict[str, Any]] = []

    def add_node(kind: str, inputs: list[str], **options: Any) -> str:
        name = f"n{len(nodes)}"
        nodes.append({"name": name, "type": kind, "inputs": inputs, **options})
        first = shapes[inputs[0]]
        if kind == "linear":
            shapes[name] = (*first[:-1], options["out_features"])
        elif kind == "concat":
            shapes[name] = (*first[:-1], sum(shapes[i][-1] for i in inputs))
        elif kind == "flatten":
            shapes[name] = (int(np.prod(first)),)
        else:
            shapes[name] = first
        return name

    for _ in range(draw(st.integers(1, max_nodes))):
        names = [n for n in shapes if len(shapes[n]) == len(shapes["x"])]
        kind = draw(st.sampled_from(("linear", "activation", "add", "concat")))
        source = draw(st.sampled_from(names))
        if kind == "linear":
            add_node("linear", [source], out_features=draw(st.integers(1, max_width)))
        elif kind == "activation":
            add_node(draw(st.sampled_from(_ACTIVATIONS)), [source])
        elif kind == "add":
            partners = [n for n in names if shapes[n] == shapes[source]]
            add_node("add", [source, draw(st.sampled_from(partners))])
        else:  # along the last dim: every value of this rank shares the leading ones
            add_node("concat", [source, draw(st.sampled_from(names))], dim=-1)
    if "add" in include:
        v = draw(st.sampled_from(list(shapes)))
        inner = add_node("linear", [v], out_features=shapes[v][-1])
        add_node("add", [add_node("tanh", [inner]), v])
    if "concat" in include:
        names = [n for n in shapes if len(shapes[n]) == len(shapes[nodes[-1]["name"]])]
        add_node("concat", [nodes[-1]["name"], draw(st.sampled_from(names))], dim=-1)
    if len(shapes[nodes[-1]["name"]]) > 1:
        add_node("flatten", [nodes[-1]["name"]])
    if nodes[-1]["type"] != "linear":
        add_node("linear", [nodes[-1]["name"]], out_features=draw(st.integers(1, max_width)))
    loss = draw(st.sampled_from(("mse", "cross_entropy")))
    return manual.parse_spec({
        "inputs": {"x": {"shape": list(shapes["x"])}}, "nodes": nodes,
        "output": nodes[-1]["name"], "loss": {"type": loss},
        "dtype": draw(st.sampled_from(sorted(dtypes))), "seed": draw(st.integers(0, 2**16)),
    })


@st.composite
def graph_data(draw: st.DrawFn, spec: Spec, max_batch: int = 8) -> manual.Data:
    """Inputs and a target for a graph spec, from a drawn seed (finite, well scaled)."""
    n = draw(st.integers(1, max_batch))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, *spec.input_shape))
    classes = spec.output_shape[0]
    y = sampling.target(LOSSES[spec.loss.type].targets[0], (n, classes), rng, spec.dtype)
    return manual.make_data(spec, x, y)
