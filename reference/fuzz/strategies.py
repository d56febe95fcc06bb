"""Public Hypothesis strategies for random architectures, drawn from the registry.

Every strategy here iterates :data:`manual.registry.ACTIVATIONS` and
:data:`manual.registry.LOSSES`, so a newly registered op is fuzzed without new
strategy code. Arrays come from :mod:`hypothesis.extra.numpy`.

- :func:`op_options`: an op's options (random values around each option's default,
  inside its declared bounds, or a registered variant);
- :func:`specs`: a network spec (1-6 linear layers, widths 1-64, any activation in
  any position, a loss whose input the last layer can produce, float32 or float64);
- :func:`parameters`, :func:`datasets`: a spec's weights and data (from
  :mod:`reference.fuzz.values`, which has the pieces);
- one op alone: :mod:`reference.fuzz.ops`;
- :func:`fuzz_cases`: a spec, its data and the conformance protocol to run them through
  (:data:`reference.conformance.protocols.PROTOCOLS`); ``include=("tanh",)`` focuses on an op.

Example::

    from hypothesis import given
    from reference.fuzz import strategies as hst

    @given(hst.fuzz_cases(dtypes=("float64",)))
    def test_agrees(case): ...
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

import manual
from manual.data import Data
from manual.layers import LAYERS
from manual.options import Choice, Flag, Real, Values
from manual.registry import ACTIVATIONS, INPUT_KINDS, LOSSES, OPS, OpInfo, loss_info
from manual.spec import DTYPES, Spec
from reference.conformance.samples import layer_graphs, layers_with_samples
from reference.fuzz import edges as edge
from reference.fuzz import sequence as sequence_graphs
from reference.fuzz.conv import CONV_NET_LAYERS, conv_nets
from reference.fuzz.graphs import GRAPH_OPS, graph_data, graphs
from reference.fuzz.values import (
    datasets,
    edge_datasets,
    parameters,
    targets,
)

__all__ = ["FuzzCase", "compatible_activations", "datasets", "fuzz_cases", "op_options",
           "parameters", "specs", "targets"]


def _real(option: Real) -> st.SearchStrategy[float]:
    """Values around the default: [d/4, max(2d, 1)] for d > 0 (mirrored for d < 0).

    A zero default spans the declared bounds (or [-1, 1]). Values are rounded to
    three decimals so that shrunk specs read well.
    """
    d = option.default
    if d > 0:
        low, high = d / 4, max(2 * d, 1.0)
    elif d < 0:
        low, high = min(2 * d, -1.0), d / 4
    else:
        low = option.low if math.isfinite(option.low) else -1.0
        high = option.high if math.isfinite(option.high) else 1.0
    low, high = max(low, option.low), min(high, option.high)
    values = st.floats(low, high).map(lambda v: round(v, 3))
    return values.filter(lambda v: option.check(v) is None)


def _option_value(option: Real | Choice | Flag) -> st.SearchStrategy[Any]:
    if isinstance(option, Real):
        return _real(option)
    if isinstance(option, Choice):
        return st.sampled_from(option.choices)
    return st.booleans()


def op_options(op: OpInfo | str) -> st.SearchStrategy[dict[str, Any]]:
    """Options for ``op``: random values for all its options, or one of its registered variants."""
    return _op_options(op if isinstance(op, str) else op.name)


@functools.cache
def _op_options(name: str) -> st.SearchStrategy[dict[str, Any]]:
    # Cached by name: building strategies costs more than drawing from them.
    op = OPS[name]
    variants = st.sampled_from([dict(v) for v in op.variants])
    if not op.options:
        return variants
    # Random values for every option first: generation favours the first branch, and a
    # default-only draw would hide every mistake on an option's code path.
    # Integer and array options (softmax's dim, a loss's weight, ignore_index) keep their
    # defaults here: their valid values depend on the shapes a case draws. Where the oracle
    # is exact for some values only (Oracle.exact), those are drawn.
    exact = op.oracle.exact
    random = st.fixed_dictionaries({
        name: st.sampled_from(exact[name]) if name in exact else _option_value(o)
        for name, o in op.options.items() if isinstance(o, Real | Choice | Flag)})
    return st.one_of(random, variants)


@st.composite
def _shaped_options(draw: st.DrawFn, loss: str, classes: int) -> dict[str, Any]:
    """The loss options whose valid values depend on the class count: class ``weight`` and
    ``pos_weight`` (positive, one per class) and ``ignore_index`` (a class, or -100 for none).
    Each is drawn or left out, so the default path is drawn too."""
    out: dict[str, Any] = {}
    positive = st.lists(st.floats(0.125, 4.0, width=32), min_size=classes, max_size=classes)
    for name, option in OPS[loss].options.items():
        if isinstance(option, Values) and draw(st.booleans()):
            out[name] = draw(positive)
        elif name == "ignore_index" and draw(st.booleans()):
            out[name] = draw(st.integers(0, classes - 1))
    return out


def compatible_activations(loss: str) -> list[str]:
    """Activations that can end a network feeding ``loss``: those whose outputs lie inside
    the input the loss needs (:data:`manual.registry.INPUT_KINDS`: probabilities for ``bce``,
    log-probabilities for ``nll`` and ``kl_div``, anything for a loss on logits)."""
    low, high = INPUT_KINDS[loss_info(LOSSES[loss]).needs]
    return [name for name, op in ACTIVATIONS.items()
            if low <= op.domain.outputs[0] and op.domain.outputs[1] <= high]


@functools.cache
def _activation_layer(name: str) -> st.SearchStrategy[dict[str, Any]]:
    return op_options(name).map(lambda options: {"type": name, **options})


@functools.cache
def _layer_strategies(pool: tuple[str, ...], max_width: int, min_depth: int, max_depth: int
                      ) -> tuple[st.SearchStrategy[Any], ...]:
    """(an activation layer, the blocks, the optional leading activation), built once.

    Blocks form a list, so that shrinking deletes whole blocks (a linear layer and the
    zero to two activations after it).
    """
    act = st.sampled_from(pool).flatmap(_activation_layer)
    block = st.tuples(st.integers(1, max_width), st.lists(act, max_size=2))
    return act, st.lists(block, min_size=min_depth, max_size=max_depth), st.lists(act, max_size=1)


@st.composite
def specs(
    draw: st.DrawFn,
    *,
    dtypes: Sequence[str] = DTYPES,
    min_depth: int = 1,
    max_depth: int = 6,
    max_width: int = 64,
    activations: Collection[str] | None = None,
    losses: Collection[str] | None = None,
    include: Collection[str] = (),
) -> Spec:
    """A random network spec.

    ``depth`` (the number of linear layers) lies in ``[min_depth, max_depth]`` and
    every width in ``[1, max_width]``. Each linear layer is followed by zero to two
    activations, and one may come before the first linear layer. When the loss
    needs probabilities or log-probabilities the network ends with a compatible
    activation. ``include`` names ops (activations or a loss) that must appear.
    """
    activation_pool = sorted(activations if activations is not None else ACTIVATIONS)
    loss_pool = sorted(losses if losses is not None else LOSSES)
    wanted_loss = [name for name in include if name in LOSSES]
    # A fair die, not sampled_from (which favours the first losses): a campaign of a few
    # hundred cases must draw every loss (reference.fuzz.campaign.coverage_gaps).
    loss = wanted_loss[0] if wanted_loss else loss_pool[draw(edge.roll(len(loss_pool)))]
    _, blocks_strategy, lead = _layer_strategies(tuple(activation_pool), max_width,
                                                   min_depth, max_depth)
    blocks = draw(blocks_strategy)
    layers: list[dict[str, Any]] = draw(lead)
    for out_features, activations_after in blocks:
        layers.append({"type": "linear", "out_features": out_features})
        layers.extend(activations_after)
    for name in include:
        if name in ACTIVATIONS and all(layer["type"] != name for layer in layers):
            position = draw(st.integers(0, len(layers)))
            layers.insert(position, draw(_activation_layer(name)))
    enders = compatible_activations(loss)
    if layers[-1]["type"] not in enders:
        layers.append(draw(st.sampled_from(enders).flatmap(_activation_layer)))
    classes = next(layer["out_features"] for layer in reversed(layers)
                   if layer["type"] == "linear")
    raw = {
        "input_shape": [draw(st.integers(1, max_width))], "layers": layers,
        "loss": {"type": loss, **draw(op_options(loss)), **draw(_shaped_options(loss, classes))},
        "dtype": draw(st.sampled_from(list(dtypes))),
        "seed": draw(st.integers(0, 2**16)),
    }
    return manual.parse_spec(raw)


@dataclass(frozen=True)
class FuzzCase:
    """A spec, its data and the conformance protocol
    (:data:`reference.conformance.protocols.PROTOCOLS`)."""

    spec: Spec
    data: Data
    protocol: str = "single"
    edges: tuple[str, ...] = ()  # the edge classes drawn (reference.fuzz.edges)

    @property
    def hidden_layers(self) -> int:
        """Affine (linear) layers before the output layer: the spec's size in the kill table."""
        return max(sum(LAYERS[node.type].structure == "affine" for node in self.spec.nodes) - 1,
                   0)


@st.composite
def _chain_case(draw: st.DrawFn, spec_kwargs: Mapping[str, Any], max_batch: int, edges: bool
                ) -> tuple[Spec, Data, tuple[str, ...]]:
    """A chain of :func:`specs`, its data and the edge classes drawn for it: one chain in two
    (in four when ``include`` focuses the cases) gets structural edges
    (:func:`reference.fuzz.edges.edged_specs`) and soft targets off the simplex."""
    include = spec_kwargs.get("include", ())
    # A quarter when focused on an op, so that a focused search (reference.zoo.core.fuzz_kill)
    # keeps most of its budget for the op's typical inputs.
    edgy = edges and draw(edge.roll(4 if include else 2)) == 0
    kwargs = dict(spec_kwargs)
    if edgy and "losses" not in kwargs and not set(include) & set(LOSSES):
        faces = edge.EDGE_LOSS_FACES
        kwargs["include"] = (*include, faces[draw(edge.roll(len(faces)))])
    spec = draw(specs(**kwargs))
    applied: tuple[str, ...] = ()
    kink = None
    if edgy:
        pool = spec_kwargs.get("activations")
        spec, applied, kink = draw(edge.edged_specs(
            spec, ACTIVATIONS if pool is None else pool, _activation_layer, None, include))
    data, target_edges = draw(edge_datasets(spec, max_batch=max_batch, edges=edges, soft=edgy))
    if kink is not None:
        data = manual.make_data(spec, data.x, edge.loss_kink_target(data.y, kink, spec.dtype))
    return spec, data, (*applied, *target_edges)


@st.composite
def fuzz_cases(
    draw: st.DrawFn,
    *,
    protocols: Sequence[str] | None = None,
    max_batch: int = 32,
    graphs_too: bool = True,
    edges: bool = True,
    **spec_kwargs: Any,
) -> FuzzCase:
    """A :class:`FuzzCase`; keyword arguments go to :func:`specs`.

    One case in eight is a graph with skip connections and concatenations
    (:func:`reference.fuzz.graphs.graphs`), and one in eight a registry layer inside a
    network (:func:`reference.conformance.samples.layer_graphs`: conv, pooling, norms, dropout,
    embedding, recurrent cells, attention, ...), one in eight a composed conv net
    (:func:`reference.fuzz.conv.conv_nets`) and one in eight a sequence model or
    transformer block (:mod:`reference.fuzz.sequence`); ``include`` naming a graph op or
    such a layer focuses every case on it (a conv or pool layer, or a recurrent or attention
    layer: half of them in composed nets).
    ``graphs_too=False`` draws chains only (for checks that take a chain, such as the
    comparison with ``torch.autograd.gradcheck``).

    Chains reach the edges (:mod:`reference.fuzz.edges`): one chain in two (in four
    when ``include`` focuses the cases) gets some
    of the structural edge classes, and chains draw batch sizes 1 and 256 and soft targets
    off the simplex on purpose; ``case.edges`` names what was drawn. ``edges=False`` draws
    typical cases only (to show which mistakes only the edges reveal).
    """
    from reference.conformance.protocols import PROTOCOLS

    include = spec_kwargs.get("include", ())
    wanted = [op for op in include if op in GRAPH_OPS]
    layers = tuple(op for op in include if op in layers_with_samples())
    dtypes = tuple(spec_kwargs.get("dtypes", DTYPES))
    shape = draw(st.integers(0, 7)) if graphs_too and not include else -1
    applied: tuple[str, ...] = ()
    if shape == 2 or (bool(set(layers) & set(CONV_NET_LAYERS)) and draw(st.booleans())):
        spec, data = draw(conv_nets(dtypes=dtypes, include=layers))
    elif shape == 3 or (sequence_graphs.focused(include) and draw(st.booleans())):
        spec, data = draw(sequence_graphs.sequence_graphs(dtypes=dtypes, include=include))
    elif layers or shape == 1:
        spec, data = draw(layer_graphs(dtypes=dtypes, layers=layers or None))
    elif wanted or shape == 0:
        spec = draw(graphs(include=wanted, dtypes=dtypes))
        data = draw(graph_data(spec, max_batch=max_batch))
    else:
        spec, data, applied = draw(_chain_case(spec_kwargs, max_batch, edges))
    pool = list(protocols or PROTOCOLS)
    # sampled_from would favour the first protocol heavily; a wide integer spreads the
    # draws evenly and still shrinks toward the first (the single pass).
    protocol = pool[draw(st.integers(0, 2**16 - 1)) % len(pool)]
    return FuzzCase(spec, data, protocol, applied)
