"""Hypothesis strategies for small sequence models and transformer encoder blocks.

:func:`sequence_graphs` draws a whole network, not one layer alone (that is
:func:`reference.conformance.samples.layer_graphs`):

- a **recurrent model**: an ``embedding`` of an index input or a real ``(L, D)`` input, then
  ``rnn`` (tanh or relu), ``lstm`` or ``gru`` (1-2 layers, with or without bias), then
  ``select`` of one time step (the last, or any) or ``flatten``, then a ``linear`` head;
- a **pre-norm transformer block** of random sizes: ``layer_norm`` → ``multi_head_attention``
  (self-attention, one value as query, key and value; half the time with a boolean
  ``key_padding_mask`` as a further input) → ``add`` → ``layer_norm`` → ``linear``
  → ``gelu`` → ``linear`` → ``add`` → ``select`` or ``flatten`` → ``linear``.

Sequences run from length 1, batches from 1; the loss is ``cross_entropy`` or ``mse``.
``include`` naming ``rnn``, ``lstm`` or ``gru`` draws that cell; naming an attention layer
draws the transformer block. :func:`focused` says whether ``include`` asks for these models.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
from hypothesis import strategies as st

import manual
from manual.data import Data
from manual.registry import LOSSES
from manual.spec import DTYPES, Spec
from reference.core import sampling

CELLS = ("rnn", "lstm", "gru")
ATTENTION = ("multi_head_attention", "scaled_dot_product_attention")
SEQUENCE_LAYERS = (*CELLS, *ATTENTION)


def focused(include: Collection[str]) -> bool:
    """Whether ``include`` names a layer these models exercise."""
    return any(op in SEQUENCE_LAYERS for op in include)


def _head(draw: st.DrawFn, nodes: list[dict[str, Any]], source: str, length: int) -> str:
    """``select`` one step or ``flatten``, then the ``linear`` head; the head's name."""
    if draw(st.booleans()):
        index = draw(st.sampled_from((-1, *range(length))))
        nodes.append({"name": "step", "type": "select", "inputs": [source], "dim": 1,
                      "index": index})
    else:
        nodes.append({"name": "flat", "type": "flatten", "inputs": [source]})
    nodes.append({"name": "head", "type": "linear", "inputs": [nodes[-1]["name"]],
                  "out_features": draw(st.integers(1, 4))})
    return "head"


def _recurrent(draw: st.DrawFn, cell: str, length: int) -> tuple[dict[str, Any], list]:
    nodes: list[dict[str, Any]] = []
    if draw(st.booleans()):
        vocab = draw(st.integers(1, 6))
        inputs = {"tokens": {"shape": [length], "kind": "index"}}
        nodes.append({"name": "emb", "type": "embedding", "inputs": ["tokens"],
                      "num_embeddings": vocab, "embedding_dim": draw(st.integers(1, 4))})
        source = "emb"
    else:
        inputs, source = {"x": {"shape": [length, draw(st.integers(1, 4))]}}, "x"
    options: dict[str, Any] = {"hidden_size": draw(st.integers(1, 5)),
                               "num_layers": draw(st.integers(1, 2)),
                               "bias": draw(st.booleans())}
    if cell == "rnn":
        options["nonlinearity"] = draw(st.sampled_from(("tanh", "relu")))
    nodes.append({"name": "cell", "type": cell, "inputs": [source], **options})
    _head(draw, nodes, draw(st.sampled_from(("cell", "cell.output"))), length)
    return inputs, nodes


def _transformer(draw: st.DrawFn, length: int) -> tuple[dict[str, Any], list]:
    heads = draw(st.integers(1, 2))
    embed = heads * draw(st.integers(1, 3))
    inputs: dict[str, Any] = {"x": {"shape": [length, embed]}}
    attention: dict[str, Any] = {"name": "attn", "type": "multi_head_attention",
                                 "inputs": ["ln1"] * 3, "embed_dim": embed, "num_heads": heads,
                                 "bias": draw(st.booleans())}
    if draw(st.booleans()):  # padded keys, True = ignored (never every key: see _padding)
        # Boolean only: PyTorch backpropagates into a float (additive) mask input, where the
        # manual engine gives masks no gradient; a one-node graph's sample covers additive.
        inputs["padding"] = {"shape": [length]}
        attention["inputs"].append("padding")
        attention["key_padding_mask"] = "boolean"
    nodes: list[dict[str, Any]] = [
        {"name": "ln1", "type": "layer_norm", "inputs": ["x"]}, attention,
        {"name": "res1", "type": "add", "inputs": ["attn.output", "x"]},
        {"name": "ln2", "type": "layer_norm", "inputs": ["res1"]},
        {"name": "ff1", "type": "linear", "inputs": ["ln2"],
         "out_features": draw(st.integers(1, 2 * embed))},
        {"name": "act", "type": "gelu", "inputs": ["ff1"]},
        {"name": "ff2", "type": "linear", "inputs": ["act"], "out_features": embed},
        {"name": "res2", "type": "add", "inputs": ["ff2", "res1"]}]
    _head(draw, nodes, "res2", length)
    return inputs, nodes


def _padding(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A boolean key padding mask (as 0/1) that leaves each sample's first key visible: a
    query whose keys are all blanked is NaN in both engines (a layer sample covers that)."""
    ignored = rng.random(shape) < 0.4
    ignored[:, 0] = False
    return ignored.astype(float)


@st.composite
def sequence_graphs(draw: st.DrawFn, *, dtypes: Collection[str] = DTYPES,
                    include: Collection[str] = (), max_batch: int = 4) -> tuple[Spec, Data]:
    """A sequence model or a transformer block, and its data (see the module's docstring)."""
    cells = [op for op in include if op in CELLS]
    pool = cells if cells else (["transformer"] if any(op in ATTENTION for op in include)
                                else [*CELLS, "transformer"])
    kind = draw(st.sampled_from(pool))
    length = draw(st.integers(1, 4))
    inputs, nodes = _transformer(draw, length) if kind == "transformer" else \
        _recurrent(draw, kind, length)
    loss = draw(st.sampled_from(("cross_entropy", "mse")))
    spec = manual.parse_spec({
        "name": f"sequence {kind}", "inputs": inputs, "nodes": nodes, "output": "head",
        "loss": {"type": loss}, "dtype": draw(st.sampled_from(sorted(dtypes))),
        "seed": draw(st.integers(0, 2**16))})
    n = draw(st.integers(1, max_batch))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x: np.ndarray = rng.integers(0, nodes[0]["num_embeddings"], (n, *spec.input_shape)) \
        if "tokens" in inputs else rng.standard_normal((n, *spec.input_shape))
    classes = spec.output_shape[0]
    y = sampling.target(LOSSES[spec.loss.type].targets[0], (n, classes), rng, spec.dtype)
    others = {"padding": _padding(rng, (n, length))} \
        if "padding" in inputs else None
    return spec, manual.make_data(spec, x, y, others)
