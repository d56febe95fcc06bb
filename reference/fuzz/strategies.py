"""Public Hypothesis strategies for random architectures, drawn from the registry.

Every strategy here iterates :data:`manual.registry.ACTIVATIONS` and
:data:`manual.registry.LOSSES`, so a newly registered op is fuzzed without new
strategy code. Arrays come from :mod:`hypothesis.extra.numpy`.

- :func:`op_options`: an op's options (random values around each option's default,
  inside its declared bounds, or a registered variant);
- :func:`specs`: a network spec (1-6 linear layers, widths 1-64, any activation in
  any position, a loss whose input the last layer can produce, float32 or float64);
- :func:`parameters`: explicit weights and biases for a spec;
- :func:`datasets`: ``x`` inside the first op's domain (kink points included) and a
  target of a kind the loss accepts (class labels in range, probabilities in [0, 1], ...);
- :func:`op_inputs` / :func:`op_cases`: one op alone, with an extreme-value mode
  (magnitudes up to :data:`EXTREME_LIMIT`) for the ops whose domain is the whole line;
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
from typing import Any, Literal

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import manual
from manual.data import Data
from manual.layers import LAYERS
from manual.options import Choice, Flag, Real, Values
from manual.registry import ACTIVATIONS, INPUT_KINDS, LOSSES, OPS, OpInfo, loss_info
from manual.spec import DTYPES, Spec
from reference.conformance.samples import layer_graphs, layers_with_samples
from reference.core import sampling
from reference.fuzz import edges as edge
from reference.fuzz import sequence as sequence_graphs
from reference.fuzz.conv import CONV_NET_LAYERS, conv_nets
from reference.fuzz.graphs import GRAPH_OPS, graph_data, graphs

# Magnitudes the extreme-value mode reaches: exp(80) is finite in float32, and the
# stable formulas never take exp of a positive number, so 1e4 is safe in float64.
EXTREME_LIMIT: Mapping[str, float] = {"float32": 80.0, "float64": 1e4}
# Shift-invariant ops (Domain.shift_invariant: a row plus a constant gives the same softmax)
# are also drawn with every row offset this far: past exp's overflow by orders of magnitude,
# and where the low bits of a large maximum must not leak into the result (log-softmax as
# (x - m) - log s).
EXTREME_OFFSET: Mapping[str, float] = {"float32": 1e3, "float64": 1e6}
DEFAULT_DOMAIN = (-4.0, 4.0)


def _bits(dtype: str) -> Literal[32, 64]:
    return 32 if dtype == "float32" else 64


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


@functools.cache
def _floats(dtype: str, low: float, high: float) -> st.SearchStrategy[float]:
    """Finite floats of ``dtype`` in [low, high] (bounds rounded inward to the dtype)."""
    if dtype == "float32":
        low32, high32 = np.float32(low), np.float32(high)
        if low32 < low:
            low32 = np.nextafter(low32, np.float32(np.inf))
        if high32 > high:
            high32 = np.nextafter(high32, np.float32(-np.inf))
        low, high = float(low32), float(high32)
    return st.floats(low, high, width=_bits(dtype), allow_nan=False, allow_infinity=False)


def parameters(spec: Spec, bound: float = 1.0) -> st.SearchStrategy[dict[str, np.ndarray]]:
    """Explicit values for every parameter of ``spec`` (the shapes its nodes' signatures give),
    each entry in ``[-bound, bound]``."""
    shapes = {f"{node.name}.{key}": slot.shape for node in spec.nodes
              for key, slot in node.signature.params.items()}
    elements = _floats(spec.dtype, -bound, bound)
    return st.fixed_dictionaries(
        {name: hnp.arrays(spec.dtype, shape, elements=elements) for name, shape in
         shapes.items()})


def _domain_values(op: OpInfo | None, dtype: str, options: Mapping[str, Any],
                   domain: tuple[float, float] | None = None) -> st.SearchStrategy[float]:
    """Floats in the op's domain, with its kink points (inside the domain) mixed in."""
    low, high = domain or (op.domain.inputs if op is not None else DEFAULT_DOMAIN)
    kinks = tuple(sorted(k for k in (op.domain.kinks(options) if op else ()) if low <= k <= high))
    return _values_with_kinks(dtype, low, high, kinks)


@functools.cache
def _values_with_kinks(dtype: str, low: float, high: float, kinks: tuple[float, ...]
                       ) -> st.SearchStrategy[float]:
    values = _floats(dtype, low, high)
    return st.one_of(values, st.sampled_from(kinks)) if kinks else values


@functools.lru_cache(maxsize=4096)
def _arrays(dtype: Any, shape: tuple[int, ...], elements: st.SearchStrategy[Any]
            ) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(dtype, shape, elements=elements)


def targets(
    kind: str, shape: tuple[int, int], dtype: str, options: Mapping[str, Any] | None = None,
) -> st.SearchStrategy[np.ndarray]:
    """A target of ``kind`` for an output of shape ``(N, C)`` (as
    :mod:`reference.core.sampling`)."""
    options = options or {}
    n, c = shape
    if kind == "real":
        return _arrays(dtype, shape, _floats(dtype, -4, 4))
    if kind == "probability":
        return _arrays(dtype, shape, _floats(dtype, 0, 1))
    if kind == "class_index":
        return _arrays(np.int64, (n,), _class_labels(c))
    if kind not in ("class_probability", "distribution"):
        raise ValueError(f"kind: unknown target kind {kind!r}")

    def normalise(weights: np.ndarray) -> np.ndarray:
        rows = weights / weights.sum(axis=-1, keepdims=True)
        if kind == "distribution" and options.get("log_target", False):
            rows = np.log(rows)
        return rows.astype(dtype)

    return _arrays(np.float64, shape, _floats("float64", 0.01, 1.0)).map(normalise)


@functools.cache
def _class_labels(classes: int) -> st.SearchStrategy[int]:
    return st.integers(0, classes - 1)


def datasets(spec: Spec, max_batch: int = 32) -> st.SearchStrategy[Data]:
    """``x`` of shape ``(N, D)``, ``N`` in ``[1, max_batch]``, and a target for the loss.

    ``x`` lies in the domain of the first layer when it is an activation (its kink
    points included), else in [-4, 4].
    """
    return edge_datasets(spec, max_batch, edges=False).map(lambda pair: pair[0])


@st.composite
def edge_datasets(draw: st.DrawFn, spec: Spec, max_batch: int = 32, edges: bool = True,
                  soft: bool = False, aim: str | None = None
                  ) -> tuple[Data, tuple[str, ...]]:
    """As :func:`datasets`; with ``edges``, batch sizes 1 and
    :data:`~reference.fuzz.edges.LARGE_BATCH` on purpose and, half the time, soft
    targets that do not sum to 1 or hold zeros (always, with ``soft``, and soft targets
    whenever the loss takes them). Returns the data and the target edge classes.
    """
    n = draw(edge.batch_sizes(max_batch, edges))
    first = spec.layers[0] if spec.layers else None
    op = ACTIVATIONS.get(first.type) if first is not None else None
    options = dict(first.options) if (first is not None and op is not None) else {}
    shape = (n, spec.input_shape[0])
    rng = None
    if n >= edge.LARGE_BATCH:  # from a drawn seed: Hypothesis arrays this size cost seconds
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        low, high = op.domain.inputs if op is not None else DEFAULT_DOMAIN
        x = rng.uniform(low, high, shape)
        kinks = [k for k in (op.domain.kinks(options) if op else ()) if low <= k <= high]
        if kinks:  # as the drawn arrays: kink points mixed in
            x = np.where(rng.random(shape) < 0.25, rng.choice(kinks, shape), x)
        x = x.astype(spec.dtype)
    else:
        x = draw(_arrays(spec.dtype, shape, _domain_values(op, spec.dtype, options)))
    loss = LOSSES[spec.loss.type]
    ignored = spec.loss.options.get("ignore_index", -100)
    # PyTorch refuses an ignore_index with probability targets: draw class indices then.
    kinds = [k for k in loss.targets if ignored < 0 or k == "class_index"]
    soft_kinds = [k for k in kinds if k in ("class_probability", "distribution")]
    kind = soft_kinds[0] if soft and soft_kinds else draw(st.sampled_from(kinds))
    if rng is not None:
        y = sampling.target(kind, (n, spec.output_width), rng, spec.dtype, spec.loss.options)
    else:
        y = draw(targets(kind, (n, spec.output_width), spec.dtype, spec.loss.options))
    target_edges: tuple[str, ...] = ()
    if edges and kind in soft_kinds and (soft or draw(edge.roll(2))):
        y, target_edges = draw(edge.edge_targets(y, kind, spec.loss.options, aim))
    if ignored >= 0 and kind == "class_index":  # hit the ignored class, not by luck alone
        y = np.where(draw(hnp.arrays(np.bool_, (n,))), ignored, y)
    # Every target ignored makes a mean of no terms, NaN in both engines: not a comparison.
    assume(ignored < 0 or kind != "class_index" or bool(np.any(y != ignored))
           or spec.loss.options.get("reduction", "mean") != "mean")
    return manual.make_data(spec, x, y), target_edges


def stable_ops() -> list[str]:
    """Ops whose domain straddles zero on both sides: the extreme-value mode applies to them.

    (``bce``, ``nll`` and ``kl_div`` take probabilities or log-probabilities.)
    """
    return [name for name, op in OPS.items() if op.domain.inputs[0] < 0 < op.domain.inputs[1]]


def op_inputs(op: OpInfo | str, dtype: str, shape: tuple[int, int], options: Mapping[str, Any]
              | None = None, *, extreme: bool = False) -> st.SearchStrategy[np.ndarray]:
    """An input for ``op`` alone; ``extreme`` widens the domain to ``±EXTREME_LIMIT[dtype]``
    and, for a shift-invariant op, offsets each row by 0 or ``±EXTREME_OFFSET[dtype]``."""
    op = OPS[op] if isinstance(op, str) else op
    domain = None
    if extreme:
        if op.name not in stable_ops():
            raise ValueError(f"op: {op.name!r} has a bounded domain {op.domain.inputs}; the "
                             f"extreme-value mode covers {', '.join(stable_ops())}")
        limit = EXTREME_LIMIT[dtype]
        domain = (-limit, limit)
    elements = _domain_values(op, dtype, options or {}, domain)
    arrays = hnp.arrays(dtype, shape, elements=elements)
    if not extreme or not op.domain.shift_invariant:
        return arrays
    big = EXTREME_OFFSET[dtype]
    offsets = hnp.arrays(dtype, (shape[0], 1), elements=st.sampled_from((0.0, big, -big)))
    return st.tuples(arrays, offsets).map(lambda pair: (pair[0] + pair[1]).astype(dtype))


@dataclass(frozen=True)
class OpFuzzCase:
    """One op alone on a drawn input (see :func:`op_cases`)."""

    op: str
    dtype: str
    options: dict[str, Any]
    x: np.ndarray
    target: np.ndarray | None
    dy: np.ndarray


@functools.cache
def _saturated_probabilities(dtype: str, low: float, high: float) -> st.SearchStrategy[float]:
    """0, 1 and the floats next to them (beside the domain ``[low, high]``): where bce's
    clamps (log >= -100, x(1 - x) >= 1e-12) decide the result."""
    tiny = float(np.finfo(dtype).tiny)
    below_one = float(np.nextafter(np.array(1, dtype), np.array(0, dtype)))
    return st.one_of(_floats(dtype, low, high),
                     st.sampled_from((0.0, tiny, 1e-30, below_one, 1.0)))


@st.composite
def op_cases(draw: st.DrawFn, *, ops: Collection[str] | None = None,
             dtypes: Sequence[str] = DTYPES, extreme: bool = False,
             edges: bool = True) -> OpFuzzCase:
    """A registry op, options, an input (extreme magnitudes if asked), target and upstream.

    With ``edges``, the inputs of a loss on probabilities (``bce``) include saturated ones (0,
    1 and their neighbours), and soft targets, half the time, rows off the simplex or with
    zeros.
    """
    pool = sorted(ops if ops is not None else (stable_ops() if extreme else OPS))
    op = OPS[draw(st.sampled_from(pool))]
    dtype = draw(st.sampled_from(list(dtypes)))
    options = draw(op_options(op))
    shape = (draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    on_probabilities = op.loss is not None and op.loss.needs == "probabilities"
    if edges and on_probabilities and draw(edge.roll(2)):
        x = draw(_arrays(dtype, shape, _saturated_probabilities(dtype, *op.domain.inputs)))
    else:
        x = draw(op_inputs(op, dtype, shape, options, extreme=extreme))
    target = None
    if op.kind == "loss":
        kind = draw(st.sampled_from(op.targets))
        target = draw(targets(kind, shape, dtype, options))
        if edges and draw(edge.roll(2)):
            target, _ = draw(edge.edge_targets(target, kind, options))
    # The upstream gradient has the output's shape, which only the op knows (a loss with
    # reduction 'none' gives (N,) or (N, C)); the registry's forward tells us.
    with np.errstate(all="ignore"):
        args = (x.copy(),) if target is None else (x.copy(), target)
        out_shape = np.shape(op.forward(*args, **options)[0])
    dy = draw(hnp.arrays(dtype, out_shape, elements=_floats(dtype, -2, 2)))
    return OpFuzzCase(op.name, dtype, options, x, target, dy)


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
        # Half the chains; a quarter when focused on an op, so that a focused search
        # (reference.zoo.core.fuzz_kill) keeps most of its budget for the op's typical inputs.
        edgy = edges and draw(edge.roll(4 if include else 2)) == 0
        kwargs = dict(spec_kwargs)
        if edgy and "losses" not in kwargs and not set(include) & set(LOSSES):
            faces = edge.EDGE_LOSS_FACES
            kwargs["include"] = (*include, faces[draw(edge.roll(len(faces)))])
        spec = draw(specs(**kwargs))
        kink = None
        if edgy:
            pool = spec_kwargs.get("activations")
            spec, applied, kink = draw(edge.edged_specs(
                spec, ACTIVATIONS if pool is None else pool, _activation_layer, None, include))
        data, target_edges = draw(edge_datasets(spec, max_batch=max_batch, edges=edges,
                                                soft=edgy))
        if kink is not None:
            data = manual.make_data(spec, data.x, edge.loss_kink_target(data.y, kink,
                                                                        spec.dtype))
        applied = (*applied, *target_edges)
    pool = list(protocols or PROTOCOLS)
    # sampled_from would favour the first protocol heavily; a wide integer spreads the
    # draws evenly and still shrinks toward the first (the single pass).
    protocol = pool[draw(st.integers(0, 2**16 - 1)) % len(pool)]
    return FuzzCase(spec, data, protocol, applied)
