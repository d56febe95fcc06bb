r"""Registry entries for ``scaled_dot_product_attention`` and ``multi_head_attention``.

**Masks are graph inputs**, after the tensors, declared by an option naming their kind:
``"boolean"`` (any nonzero entry counts as True, so a 0/1 float array works) or
``"additive"`` (added to the scores, :math:`-\infty` blanks a key). They receive no gradient
(``None``). The boolean conventions are PyTorch's, and opposite:

- ``scaled_dot_product_attention``: inputs ``query (N, ..., L, E)``, ``key (N, ..., S, E)``,
  ``value (N, ..., S, Ev)`` [, ``attn_mask``, True = *may attend*, per-sample rank equal to
  the query's, each dim equal or 1]. ``is_causal`` and ``scale`` as PyTorch. The leading
  dims of query, key and value must match (no broadcasting between them).
- ``multi_head_attention``: inputs ``x`` (self-attention, query = key = value) or
  ``query (N, L, E), key (N, S, E), value (N, S, E)`` [, ``key_padding_mask (N, S)``]
  [, ``attn_mask (N, L, S)``], True = *ignored*. The builder hands torch the per-sample mask
  repeated per head, ``(N h, L, S)``, as ``nn.MultiheadAttention`` wants. Outputs ``output``
  and ``weights`` (averaged over heads). ``batch_first`` must be true (as the recurrent
  layers: the graph is batch-first); ``kdim``/``vdim``, ``add_bias_kv``, ``add_zero_attn``
  and ``dropout`` are not supported. A query row whose keys are all blanked is NaN, as in
  PyTorch (``scaled_dot_product_attention`` gives zeros there).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from manual import init as initializers
from manual.layers.info import Array, LayerInfo, Sample, Shape, Signature, Slot
from manual.ops import attention as ops
from manual.options import Choice, Flag, Given, Int

B = "reference.builders.recurrent."
MASK = Choice("none", ("none", "boolean", "additive"))


def as_mask(mask: Array, kind: str, dtype: np.dtype) -> Array:
    """A graph's mask input as the pair wants it: bool for ``boolean``, ``dtype`` otherwise."""
    return mask != 0 if kind == "boolean" else mask.astype(dtype, copy=False)


# ---- scaled_dot_product_attention ------------------------------------------------------------

def _sdpa_signature(options: Mapping[str, Any], shapes: tuple[Shape, ...]) -> Signature:
    masked = options.get("attn_mask", "none") != "none"
    if len(shapes) != 3 + masked:
        wanted = "query, key, value and attn_mask" if masked else "query, key and value"
        raise ValueError(f"takes {wanted}; got {len(shapes)} inputs")
    q, k, v = shapes[:3]
    if min(len(q), len(k), len(v)) < 2:
        raise ValueError(f"query, key and value need (..., length, features) per sample, got "
                         f"{q}, {k} and {v}")
    if not q[:-2] == k[:-2] == v[:-2] or q[-1] != k[-1] or k[-2] != v[-2]:
        raise ValueError(f"needs query (..., L, E), key (..., S, E), value (..., S, Ev) with "
                         f"one leading shape, got {q}, {k} and {v}")
    if options.get("is_causal", False) and masked:
        raise ValueError("attn_mask and is_causal cannot both be set")
    scale = options.get("scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int | float)
                              or not math.isfinite(scale)):
        raise ValueError(f"scale must be a finite number or null, got {scale!r}")
    if masked:
        target, mask = (*q[:-1], k[-2]), shapes[3]
        if len(mask) != len(target) or any(m not in (1, t)
                                           for m, t in zip(mask, target, strict=True)):
            raise ValueError(f"attn_mask must have per-sample shape {target} (or 1 along a "
                             f"dim), got {mask}")
    return Signature((*q[:-1], v[-1]), no_grad=(3,) if masked else ())


class SdpaNodeCache(NamedTuple):
    pair: ops.CoreCache
    masked: bool


def _sdpa_forward(inputs: tuple[Array, ...], params: Any, state: Any, noise: Any, *,
                  training: bool, attn_mask: str = "none", is_causal: bool = False,
                  scale: float | None = None) -> tuple[Any, Any, dict]:
    mask = as_mask(inputs[3], attn_mask, inputs[0].dtype) if attn_mask != "none" else None
    query, key, value = inputs[:3]
    y, cache = ops.sdpa_forward(query, key, value, mask, is_causal=is_causal, scale=scale)
    return y, SdpaNodeCache(cache, mask is not None), {}


def _sdpa_backward(dy: Array, cache: SdpaNodeCache) -> tuple[tuple[Array | None, ...], dict]:
    grads: tuple[Array | None, ...] = ops.sdpa_backward(dy, cache.pair)
    return grads + ((None,) if cache.masked else ()), {}


def _sdpa_samples(rng: np.random.Generator, dtype: str) -> Iterator[Sample]:
    def draw(*shape: int) -> Array:
        return rng.normal(size=shape).astype(dtype)
    yield Sample({}, (draw(2, 4, 6), draw(2, 5, 6), draw(2, 5, 3)), "default")
    yield Sample({}, (draw(1, 2, 1, 4), draw(1, 2, 1, 4), draw(1, 2, 1, 4)), "length_1_batch_1")
    yield Sample({"is_causal": True}, (draw(2, 2, 4, 6), draw(2, 2, 4, 6), draw(2, 2, 4, 5)),
                 "causal")
    yield Sample({"is_causal": True}, (draw(2, 3, 4), draw(2, 5, 4), draw(2, 5, 4)),
                 "causal_rectangular")
    yield Sample({"scale": 0.7}, (draw(2, 3, 4), draw(2, 5, 4), draw(2, 5, 4)), "scale")
    boolean = (rng.random((2, 1, 3, 5)) > 0.3).astype(dtype)
    boolean[0, 0, 1] = 0  # a query that may attend to nothing: the safe softmax's zeros
    yield Sample({"attn_mask": "boolean"},
                 (draw(2, 2, 3, 4), draw(2, 2, 5, 4), draw(2, 2, 5, 4), boolean), "boolean_mask")
    additive = draw(2, 3, 5)
    additive[1, :, 0] = -np.inf
    yield Sample({"attn_mask": "additive"},
                 (draw(2, 3, 4), draw(2, 5, 4), draw(2, 5, 4), additive), "additive_mask")


SDPA = LayerInfo(
    name="scaled_dot_product_attention", forward=_sdpa_forward, backward=_sdpa_backward,
    torch=B + "scaled_dot_product_attention",
    options={"attn_mask": MASK, "is_causal": Flag(False), "scale": Given(None)},
    signature=_sdpa_signature, samples=_sdpa_samples)


# ---- multi_head_attention ----------------------------------------------------------------------

def mha_layout(options: Mapping[str, Any], count: int) -> tuple[int, bool, bool]:
    """``(tensors, key_padding_mask given, attn_mask given)`` for ``count`` inputs."""
    kpm = options.get("key_padding_mask", "none") != "none"
    am = options.get("attn_mask", "none") != "none"
    tensors = count - kpm - am
    if tensors not in (1, 3):
        masks = " plus " + " and ".join(n for n, on in (("key_padding_mask", kpm),
                                                          ("attn_mask", am)) if on) \
            if kpm or am else ""
        raise ValueError(f"takes x (self-attention) or query, key and value{masks}; got "
                         f"{count} inputs")
    return tensors, kpm, am


def _positive(options: Mapping[str, Any], name: str) -> int:
    value = options.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _mha_signature(options: Mapping[str, Any], shapes: tuple[Shape, ...]) -> Signature:
    if options.get("batch_first", True) is not True:
        raise ValueError("batch_first must be true: the graph's batch is dim 0 of every "
                         "tensor, so sequences are (N, L, embed_dim) in a spec")
    tensors, kpm, am = mha_layout(options, len(shapes))
    q, k, v = shapes[:3] if tensors == 3 else shapes[:1] * 3
    embed, heads = (_positive(options, name) for name in ("embed_dim", "num_heads"))
    if embed % heads:
        raise ValueError(f"embed_dim must be divisible by num_heads, got {embed} and {heads}")
    if any(len(s) != 2 or s[1] != embed for s in (q, k, v)) or k[0] != v[0]:
        raise ValueError(f"needs query (L, {embed}), key and value (S, {embed}) per sample, "
                         f"got {q}, {k} and {v}")
    kinds = {options.get(m) for m, on in (("key_padding_mask", kpm), ("attn_mask", am)) if on}
    if len(kinds) > 1:
        raise ValueError("key_padding_mask and attn_mask must be of one kind (both boolean or "
                         "both additive)")
    for name, on, at, want in (("key_padding_mask", kpm, tensors, (k[0],)),
                               ("attn_mask", am, len(shapes) - 1, (q[0], k[0]))):
        if on and shapes[at] != want:
            got = shapes[at]
            raise ValueError(f"{name} must have per-sample shape {want}, got {got}")
    bias = options.get("bias", True)
    params = {"in_proj_weight": Slot((3 * embed, embed), lambda rng, s: initializers.
                                     xavier_uniform(s, rng), torch="in_proj_weight"),
              "out_proj.weight": Slot((embed, embed), lambda rng, s: initializers.
                                      kaiming_uniform(s, rng, a=math.sqrt(5)),
                                      torch="out_proj.weight")}
    if bias:
        zeros = lambda rng, s: initializers.zeros(s)  # noqa: E731 (torch zeroes both biases)
        params |= {"in_proj_bias": Slot((3 * embed,), zeros, torch="in_proj_bias"),
                   "out_proj.bias": Slot((embed,), zeros, torch="out_proj.bias")}
    return Signature((q[0], embed), outputs={"output": (q[0], embed), "weights": (q[0], k[0])},
                     params=params, no_grad=tuple(range(tensors, len(shapes))))


class MhaNodeCache(NamedTuple):
    pair: ops.MultiHeadCache
    tensors: int
    masks: int


def _mha_forward(inputs: tuple[Array, ...], params: Mapping[str, Array], state: Any,
                 noise: Any, *, training: bool, num_heads: int, **options: Any
                 ) -> tuple[Any, Any, dict]:
    tensors, kpm, am = mha_layout(options, len(inputs))
    q, k, v = inputs[:3] if tensors == 3 else inputs[:1] * 3
    dtype = q.dtype
    key_padding = as_mask(inputs[tensors], options["key_padding_mask"], dtype) if kpm else None
    attn = None
    if am:
        attn = as_mask(inputs[-1], options["attn_mask"], dtype)
        attn = np.repeat(attn, num_heads, axis=0)  # (N h, L, S), torch's batch-major order
    outputs, cache = ops.mha_forward(q, k, v, params, num_heads=num_heads, batch_first=True,
                                     key_padding_mask=key_padding, attn_mask=attn)
    return outputs, MhaNodeCache(cache, tensors, kpm + am), {}


def _mha_backward(dys: Any, cache: MhaNodeCache) -> tuple[tuple[Array | None, ...], dict]:
    (dq, dk, dv), dparams = ops.mha_backward((dys[0], dys[1]), cache.pair)
    grads: tuple[Array | None, ...] = (dq, dk, dv) if cache.tensors == 3 else (dq + dk + dv,)
    return grads + (None,) * cache.masks, dparams


def _mha_samples(rng: np.random.Generator, dtype: str) -> Iterator[Sample]:
    def draw(*shape: int) -> Array:
        return rng.normal(size=shape).astype(dtype)
    base = {"embed_dim": 6, "num_heads": 2}
    yield Sample(base, (draw(2, 4, 6),), "self_attention")
    yield Sample(base, (draw(2, 3, 6), draw(2, 5, 6), draw(2, 5, 6)), "cross_attention")
    yield Sample({**base, "num_heads": 1}, (draw(1, 1, 6),), "length_1_batch_1_one_head")
    yield Sample({**base, "bias": False}, (draw(2, 4, 6),), "no_bias")
    padding = np.zeros((2, 5), dtype)
    padding[0, 3:] = 1
    yield Sample({**base, "key_padding_mask": "boolean"},
                 (draw(2, 3, 6), draw(2, 5, 6), draw(2, 5, 6), padding), "key_padding_mask")
    causal = np.triu(np.ones((4, 4), dtype), 1)[None].repeat(2, axis=0)
    yield Sample({**base, "attn_mask": "boolean"}, (draw(2, 4, 6), causal), "causal_attn_mask")
    additive = draw(2, 4, 4)
    yield Sample({**base, "attn_mask": "additive", "key_padding_mask": "additive"},
                 (draw(2, 4, 6), np.where(padding[:, :4] != 0, -np.inf, 0).astype(dtype),
                  additive), "additive_masks")
    blank = np.zeros((2, 5), dtype)
    blank[1] = 1  # every key of sample 1 ignored: its rows are NaN, as PyTorch's
    yield Sample({**base, "key_padding_mask": "boolean"},
                 (draw(2, 3, 6), draw(2, 5, 6), draw(2, 5, 6), blank), "blank_rows_nan")


MHA = LayerInfo(
    name="multi_head_attention", forward=_mha_forward, backward=_mha_backward,
    torch=B + "multi_head_attention",
    options={"embed_dim": Int(None, low=1, required=True),
             "num_heads": Int(None, low=1, required=True), "bias": Flag(True),
             "batch_first": Flag(True), "key_padding_mask": MASK, "attn_mask": MASK},
    signature=_mha_signature, samples=_mha_samples)

ATTENTION_LAYERS = (SDPA, MHA)
