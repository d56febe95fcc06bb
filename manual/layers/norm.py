"""Registry entries for the layers with parameters, state and noise.

``batch_norm`` (state: running statistics; train and eval differ; samples of a batch
interact), ``layer_norm``, ``group_norm``, ``dropout`` (noise: the keep-mask the harness
draws) and ``embedding`` (an index input). The pure pairs live in :mod:`manual.ops`; the
entries here are thin adapters plus each layer's signature and conformance samples.
Option names and defaults are PyTorch's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from manual.layers.core import one_input
from manual.layers.info import Array, Behaviour, LayerInfo, Sample, Shape, Signature, Slot
from manual.ops import dropout as drop
from manual.ops import embedding as emb
from manual.ops import normalization as nrm
from manual.options import Flag, Given, Int, Real

B = "reference.builders.norm."
# PyTorch accepts eps = 0 (a constant channel then gives NaN in both engines).
EPS = Real(1e-5, low=0)


def _ones(rng: np.random.Generator, shape: Shape) -> Array:
    return np.ones(shape)


def _zeros(rng: np.random.Generator, shape: Shape) -> Array:
    return np.zeros(shape)


def _affine(shape: Shape, weight: bool, bias: bool) -> dict[str, Slot]:
    """PyTorch's norm parameters: ``weight`` ones, ``bias`` zeros."""
    slots = {}
    if weight:
        slots["weight"] = Slot(shape, _ones, torch="weight")
    if bias:
        slots["bias"] = Slot(shape, _zeros, torch="bias")
    return slots


# ---- batch_norm ------------------------------------------------------------------------

def _batch_norm_signature(options: Mapping[str, Any], shapes: tuple[Shape, ...]) -> Signature:
    shape = one_input(shapes)
    if len(shape) > 4:
        raise ValueError(f"needs (N, C), (N, C, L), (N, C, H, W) or (N, C, D, H, W) input, got "
                         f"{len(shape) + 1} dimensions (per-sample shape {shape})")
    momentum = options.get("momentum", 0.1)
    if momentum is not None and (isinstance(momentum, bool)
                                 or not isinstance(momentum, int | float)
                                 or not 0 <= momentum <= 1):
        raise ValueError(f"momentum must be a number in [0, 1] or null (cumulative average), "
                         f"got {momentum!r}")
    channels = (shape[0],)
    affine = options.get("affine", True)
    state = {}
    if options.get("track_running_stats", True):
        state = {"running_mean": Slot(channels, _zeros, torch="running_mean"),
                 "running_var": Slot(channels, _ones, torch="running_var"),
                 "num_batches_tracked": Slot((), _zeros, torch="num_batches_tracked",
                                             dtype="int64")}
    return Signature(shape, params=_affine(channels, affine, affine), state=state)


class NormNodeCache(NamedTuple):
    pair: Any
    has_weight: bool
    has_bias: bool


def _params_grads(dparams: tuple[Array | None, Array | None], cache: NormNodeCache
                  ) -> dict[str, Array]:
    grads = {}
    if cache.has_weight and dparams[0] is not None:
        grads["weight"] = dparams[0]
    if cache.has_bias and dparams[1] is not None:
        grads["bias"] = dparams[1]
    return grads


def _batch_norm_forward(inputs: tuple[Array, ...], params: Mapping[str, Array],
                        state: Mapping[str, Array], noise: Any, *, training: bool,
                        eps: float = 1e-5, momentum: float | None = 0.1, **flags: Any
                        ) -> tuple[Any, Any, dict[str, Array]]:
    y, cache, stats = nrm.batch_norm_forward(
        inputs[0], params.get("weight"), params.get("bias"), state.get("running_mean"),
        state.get("running_var"), state.get("num_batches_tracked"), training=training,
        momentum=momentum, eps=eps)
    new_state = dict(state) if stats is None else stats._asdict()
    return y, NormNodeCache(cache, "weight" in params, "bias" in params), new_state


def _batch_norm_backward(dy: Array, cache: NormNodeCache
                         ) -> tuple[tuple[Array, ...], dict[str, Array]]:
    dx, dweight, dbias = nrm.batch_norm_backward(dy, cache.pair)
    return (dx,), _params_grads((dweight, dbias), cache)


def _batch_norm_samples(rng: np.random.Generator, dtype: str) -> Iterator[Sample]:
    def draw(*shape: int, offset: float = 0.0) -> tuple[Array]:
        return ((rng.standard_normal(shape) * 2 + offset).astype(dtype),)

    yield Sample({}, draw(8, 5), "(N, C)")
    yield Sample({"momentum": None}, draw(4, 3, 7), "(N, C, L) cumulative average")
    yield Sample({"momentum": 0.3, "eps": 1e-3}, draw(3, 4, 5, 6), "(N, C, H, W)")
    yield Sample({}, draw(2, 3, 2, 3, 4), "(N, C, D, H, W)")
    yield Sample({"affine": False}, draw(6, 4, 3), "no affine")
    yield Sample({"track_running_stats": False}, draw(5, 4, 3, 3), "no running statistics")
    yield Sample({}, draw(1, 3, 6), "batch of one, spatial positions")
    yield Sample({}, draw(16, 4, offset=50.0), "large mean (catastrophic cancellation)")


BATCH_NORM = LayerInfo(
    name="batch_norm", forward=_batch_norm_forward, backward=_batch_norm_backward,
    torch=B + "batch_norm",
    options={"eps": EPS, "momentum": Given(0.1),
             "affine": Flag(True), "track_running_stats": Flag(True)},
    signature=_batch_norm_signature,
    behaviour=Behaviour(rows_independent=False, train_eval_differ=True),
    samples=_batch_norm_samples,
)


# ---- layer_norm ------------------------------------------------------------------------

def normalized_shape(options: Mapping[str, Any], shape: Shape) -> Shape:
    """``normalized_shape`` as a tuple (default: the last per-sample dimension), validated."""
    raw = options.get("normalized_shape")
    if raw is None:
        if not shape:
            raise ValueError("needs inputs with at least one dimension per sample, got "
                             "per-sample shape ()")
        return shape[-1:]
    given = [raw] if isinstance(raw, int) and not isinstance(raw, bool) else raw
    if (not isinstance(given, list) or not given
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in given)):
        raise ValueError(f"normalized_shape must be an integer or a non-empty list of integers, "
                         f"got {raw!r}")
    wanted = tuple(given)
    if len(wanted) > len(shape) or shape[len(shape) - len(wanted):] != wanted:
        raise ValueError(f"normalized_shape {list(wanted)} must be the trailing dimensions of "
                         f"the per-sample shape {shape}")
    return wanted


def _layer_norm_signature(options: Mapping[str, Any], shapes: tuple[Shape, ...]) -> Signature:
    shape = one_input(shapes)
    affine = options.get("elementwise_affine", True)
    params = _affine(normalized_shape(options, shape), affine,
                     affine and options.get("bias", True))
    return Signature(shape, params=params)


def _layer_norm_forward(inputs: tuple[Array, ...], params: Mapping[str, Array], state: Any,
                        noise: Any, *, training: bool, eps: float = 1e-5,
                        normalized_shape: int | list[int] | None = None, **flags: Any
                        ) -> tuple[Any, Any, dict[str, Array]]:
    dims = (1 if normalized_shape is None or isinstance(normalized_shape, int)
            else len(normalized_shape))
    y, cache = nrm.layer_norm_forward(inputs[0], params.get("weight"), params.get("bias"),
                                      normalized_dims=dims, eps=eps)
    return y, NormNodeCache(cache, "weight" in params, "bias" in params), {}


def _layer_norm_backward(dy: Array, cache: NormNodeCache
                         ) -> tuple[tuple[Array, ...], dict[str, Array]]:
    dx, dweight, dbias = nrm.layer_norm_backward(dy, cache.pair)
    return (dx,), _params_grads((dweight, dbias), cache)


def _layer_norm_samples(rng: np.random.Generator, dtype: str) -> Iterator[Sample]:
    def draw(*shape: int, offset: float = 0.0) -> tuple[Array]:
        return ((rng.standard_normal(shape) * 2 + offset).astype(dtype),)

    yield Sample({}, draw(4, 7), "(N, D)")
    yield Sample({}, draw(3, 5, 6), "(N, L, D): over the last dim only")
    yield Sample({"normalized_shape": [4, 5]}, draw(3, 2, 4, 5), "two trailing dims")
    yield Sample({"bias": False}, draw(4, 6), "no bias")
    yield Sample({"elementwise_affine": False, "eps": 1e-3}, draw(3, 4, 5), "no affine")
    yield Sample({}, draw(5, 8, offset=30.0), "large mean")


LAYER_NORM = LayerInfo(
    name="layer_norm", forward=_layer_norm_forward, backward=_layer_norm_backward,
    torch=B + "layer_norm",
    options={"normalized_shape": Given(), "eps": EPS,
             "elementwise_affine": Flag(True), "bias": Flag(True)},
    signature=_layer_norm_signature, samples=_layer_norm_samples,
)


# ---- group_norm ------------------------------------------------------------------------

def _group_norm_signature(options: Mapping[str, Any], shapes: tuple[Shape, ...]) -> Signature:
    shape = one_input(shapes)
    groups = options.get("num_groups")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"num_groups must be a positive integer, got {groups!r}")
    if shape[0] % groups:
        raise ValueError(f"num_channels {shape[0]} (per-sample shape {shape}) must be divisible "
                         f"by num_groups {groups}")
    affine = options.get("affine", True)
    return Signature(shape, params=_affine(shape[:1], affine, affine))


def _group_norm_forward(inputs: tuple[Array, ...], params: Mapping[str, Array], state: Any,
                        noise: Any, *, training: bool, num_groups: int, eps: float = 1e-5,
                        **flags: Any) -> tuple[Any, Any, dict[str, Array]]:
    y, cache = nrm.group_norm_forward(inputs[0], params.get("weight"), params.get("bias"),
                                      num_groups=num_groups, eps=eps)
    return y, NormNodeCache(cache, "weight" in params, "bias" in params), {}


def _group_norm_backward(dy: Array, cache: NormNodeCache
                         ) -> tuple[tuple[Array, ...], dict[str, Array]]:
    dx, dweight, dbias = nrm.group_norm_backward(dy, cache.pair)
    return (dx,), _params_grads((dweight, dbias), cache)


def _group_norm_samples(rng: np.random.Generator, dtype: str) -> Iterator[Sample]:
    def draw(*shape: int) -> tuple[Array]:
        return ((rng.standard_normal(shape) * 2 + 1).astype(dtype),)

    yield Sample({"num_groups": 2}, draw(3, 6, 4, 5), "(N, C, H, W), 2 groups")
    yield Sample({"num_groups": 1}, draw(4, 3, 7), "one group (layer norm over C and L)")
    yield Sample({"num_groups": 4}, draw(3, 4, 6), "one channel per group (instance norm)")
    yield Sample({"num_groups": 2, "affine": False}, draw(5, 6), "(N, C), no affine")
    yield Sample({"num_groups": 2, "eps": 1e-3}, draw(2, 4, 2, 3, 2), "(N, C, D, H, W)")


GROUP_NORM = LayerInfo(
    name="group_norm", forward=_group_norm_forward, backward=_group_norm_backward,
    torch=B + "group_norm",
    options={"num_groups": Int(None, low=1, required=True),
             "eps": EPS, "affine": Flag(True)},
    signature=_group_norm_signature, samples=_group_norm_samples,
)


# ---- dropout ---------------------------------------------------------------------------

def _dropout_signature(options: Mapping[str, Any], shapes: tuple[Shape, ...]) -> Signature:
    shape = one_input(shapes, rank=0)
    p = options.get("p", 0.5)

    def mask(rng: np.random.Generator, batch_shape: Shape) -> Array:
        return drop.keep_mask(rng, batch_shape, p)

    # The mask reaches both engines as drawn, float64 0/1 in any run: the layer must cast it,
    # and one that multiplies it uncast leaks float64 into a float32 run (a real bug class).
    return Signature(shape, noise={"mask": Slot(shape, mask, dtype="float64")})


def _dropout_forward(inputs: tuple[Array, ...], params: Any, state: Any,
                     noise: Mapping[str, Array], *, training: bool, p: float = 0.5
                     ) -> tuple[Any, Any, dict[str, Array]]:
    x = inputs[0]
    mask = noise.get("mask") if training else None
    if training and (mask is None or np.shape(mask) != x.shape):
        raise ValueError(f"dropout: needs a keep-mask of the input's shape {x.shape} in train "
                         f"mode, got {None if mask is None else np.shape(mask)}")
    y, cache = drop.dropout_forward(x, x if mask is None else mask, p=p, training=training)
    return y, cache, {}


def _dropout_backward(dy: Array, cache: drop.DropoutCache
                      ) -> tuple[tuple[Array, ...], dict[str, Array]]:
    return (drop.dropout_backward(dy, cache),), {}


def _dropout_samples(rng: np.random.Generator, dtype: str) -> Iterator[Sample]:
    def draw(*shape: int) -> tuple[Array]:
        return (rng.standard_normal(shape).astype(dtype),)

    yield Sample({}, draw(8, 6), "p = 0.5")
    yield Sample({"p": 0.2}, draw(4, 3, 5), "(N, C, L), p = 0.2")
    yield Sample({"p": 0.9}, draw(3, 2, 4, 4), "(N, C, H, W), p = 0.9")
    yield Sample({"p": 0.0}, draw(5, 4), "p = 0: identity")
    yield Sample({"p": 1.0}, draw(5, 4), "p = 1: all dropped")


DROPOUT = LayerInfo(
    name="dropout", forward=_dropout_forward, backward=_dropout_backward,
    torch=B + "dropout", options={"p": Real(0.5, low=0, high=1)},
    signature=_dropout_signature, behaviour=Behaviour(train_eval_differ=True),
    samples=_dropout_samples,
)


# ---- embedding -------------------------------------------------------------------------

def _embedding_signature(options: Mapping[str, Any], shapes: tuple[Shape, ...]) -> Signature:
    shape = one_input(shapes, rank=0)
    sizes = []
    for name in ("num_embeddings", "embedding_dim"):
        value = options.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
        sizes.append(value)
    count, dim = sizes
    pad = options.get("padding_idx")
    if pad is not None and (isinstance(pad, bool) or not isinstance(pad, int)
                            or not -count <= pad < count):
        raise ValueError(f"padding_idx must be an integer in [-{count}, {count - 1}] "
                         f"(num_embeddings {count}) or null, got {pad!r}")

    def init(rng: np.random.Generator, weight_shape: Shape) -> Array:
        weight = rng.standard_normal(weight_shape)  # nn.Embedding: normal(0, 1) ...
        if pad is not None:
            weight[pad] = 0                         # ... with the padding row zeroed
        return weight

    return Signature((*shape, dim), params={"weight": Slot((count, dim), init, torch="weight")})


def _embedding_forward(inputs: tuple[Array, ...], params: Mapping[str, Array], state: Any,
                       noise: Any, *, training: bool, padding_idx: int | None = None,
                       **sizes: Any) -> tuple[Any, Any, dict[str, Array]]:
    y, cache = emb.embedding_forward(inputs[0], params["weight"], padding_idx)
    return y, cache, {}


def _embedding_backward(dy: Array, cache: emb.EmbeddingCache
                        ) -> tuple[tuple[Array | None, ...], dict[str, Array]]:
    return (None,), {"weight": emb.embedding_backward(dy, cache)}


def _embedding_samples(rng: np.random.Generator, dtype: str) -> Iterator[Sample]:
    sizes = {"num_embeddings": 6, "embedding_dim": 4}
    yield Sample(sizes, (rng.integers(0, 6, size=(12,)),), "(N,), repeated indices")
    yield Sample({**sizes, "padding_idx": 2}, (rng.integers(0, 6, size=(4, 5)),),
                 "(N, L) with padding_idx")
    yield Sample({**sizes, "padding_idx": -1}, (np.array([[5, 5, 0], [5, 1, 5]]),),
                 "negative padding_idx, hit repeatedly")
    yield Sample({"num_embeddings": 3, "embedding_dim": 2}, (np.zeros((7, 2), np.int64),),
                 "one index everywhere")


EMBEDDING = LayerInfo(
    name="embedding", forward=_embedding_forward, backward=_embedding_backward,
    torch=B + "embedding",
    options={"num_embeddings": Int(None, low=1, required=True),
             "embedding_dim": Int(None, low=1, required=True), "padding_idx": Given()},
    signature=_embedding_signature, behaviour=Behaviour(input_kind="index"),
    samples=_embedding_samples,
)

NORM_LAYERS = (BATCH_NORM, LAYER_NORM, GROUP_NORM, DROPOUT, EMBEDDING)
