"""The bug zoo for the norm, dropout and embedding layers and the weighted losses.

Each :class:`~reference.zoo.core.Mutant` swaps one registry entry (``manual.layers.LAYERS`` or
``manual.registry.LOSSES``/``OPS``) for a copy with one realistic mistake, taken from the bug
classes that hand-written code gets wrong (``review/users-own-code.md``): biased running
variance, eval mode on batch statistics, batch-norm backward without its mean terms,
per-pixel normalisation, (1, C) parameter gradients, dropout not rescaled or leaking float64,
an embedding gradient assigned instead of accumulated, class weights left out of the mean.
Several of these pass gradient checks and mean/std checks; they die only when state and both
modes are compared with PyTorch. :func:`conformance_kill` names the first check that fails.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from manual import registry
from manual.layers import LAYERS
from manual.ops import classification_losses as cls
from manual.ops import dropout as drop
from manual.ops import embedding as emb
from manual.ops import normalization as nrm
from manual.random import stream
from manual.spec import DTYPES
from reference.zoo.core import Mutant, Patch

_ORIGINAL = dict(LAYERS)  # the entries as registered, captured before any mutant runs
Arrays = dict[str, np.ndarray]


def _layer(name: str, **changes: Any) -> Callable[[], list[Patch]]:
    return lambda: [(LAYERS, name, dataclasses.replace(_ORIGINAL[name], **changes))]


def _loss(name: str, **changes: Any) -> Callable[[], list[Patch]]:
    def patches() -> list[Patch]:
        new = dataclasses.replace(registry.OPS[name], **changes)
        return [(registry.LOSSES, name, new), (registry.OPS, name, new)]
    return patches


def _bn_forward(*args: Any, **kwargs: Any) -> Any:
    return _ORIGINAL["batch_norm"].forward(*args, **kwargs)


def _bn_backward(dy: Any, cache: Any) -> Any:
    return _ORIGINAL["batch_norm"].backward(dy, cache)


# ---- batch norm ----------------------------------------------------------------------------

def _bn_biased_running_var(inputs: Any, params: Any, state: Any, noise: Any, *,
                           training: bool, **options: Any) -> Any:
    y, cache, new = _bn_forward(inputs, params, state, noise, training=training, **options)
    if training and "running_var" in state:
        x = inputs[0]
        n = nrm.statistics_count(x.shape)
        m = options.get("momentum", 0.1)
        m = 1.0 / float(new["num_batches_tracked"]) if m is None else m
        unbiased = (new["running_var"] - (1 - m) * state["running_var"]) / m if m else 0
        new = {**new, "running_var": ((1 - m) * state["running_var"] + m * unbiased * (n - 1)
                                      / n).astype(x.dtype)}
    return y, cache, new


def _bn_eval_on_batch(inputs: Any, params: Any, state: Any, noise: Any, *, training: bool,
                      **options: Any) -> Any:
    y, cache, new = _bn_forward(inputs, params, state, noise, training=True, **options)
    return y, cache, new if training else dict(state)


def _bn_no_mean_terms(dy: Any, cache: Any) -> Any:
    return _bn_backward(dy, cache._replace(pair=cache.pair._replace(batch_stats=False)))


def _bn_gamma_grad_row(dy: Any, cache: Any) -> Any:
    dinputs, grads = _bn_backward(dy, cache)
    return dinputs, {k: v[None] for k, v in grads.items()}


def _bn_momentum_flipped(inputs: Any, params: Any, state: Any, noise: Any, *,
                         training: bool, **options: Any) -> Any:
    m = options.get("momentum", 0.1)
    flipped = {**options, "momentum": None if m is None else 1 - m}
    return _bn_forward(inputs, params, state, noise, training=training, **flipped)


def _bn_count_not_incremented(inputs: Any, params: Any, state: Any, noise: Any, *,
                              training: bool, **options: Any) -> Any:
    y, cache, new = _bn_forward(inputs, params, state, noise, training=training, **options)
    if "num_batches_tracked" in state:
        new = {**new, "num_batches_tracked": state["num_batches_tracked"]}
    return y, cache, new


class _PerPixel(NamedTuple):
    pair: nrm.BatchNormCache
    shape: tuple[int, ...]
    keys: tuple[str, ...]


def _bn_per_pixel(inputs: Any, params: Any, state: Any, noise: Any, *, training: bool,
                  **options: Any) -> Any:
    """Spatial batch norm with statistics per (channel, pixel) instead of per channel."""
    x = inputs[0]
    y, cache, new = _bn_forward(inputs, params, state, noise, training=training, **options)
    if x.ndim <= 2 or not training:
        return y, cache, new
    spatial = math.prod(x.shape[2:])
    repeat = {k: np.repeat(v, spatial) for k, v in params.items()}
    y, pair, _ = nrm.batch_norm_forward(
        x.reshape(x.shape[0], -1), repeat.get("weight"), repeat.get("bias"), None, None, None,
        training=True, eps=options.get("eps", 1e-5))
    return y.reshape(x.shape), _PerPixel(pair, x.shape, tuple(params)), new


def _bn_per_pixel_backward(dy: Any, cache: Any) -> Any:
    if not isinstance(cache, _PerPixel):
        return _bn_backward(dy, cache)
    dx, dweight, dbias = nrm.batch_norm_backward(dy.reshape(dy.shape[0], -1), cache.pair)
    channels = cache.shape[1]
    grads: dict[str, Any] = {"weight": dweight, "bias": dbias}
    return (dx.reshape(cache.shape),), {k: np.reshape(grads[k], (channels, -1)).sum(1)
                                        for k in cache.keys}


# ---- layer norm and group norm -------------------------------------------------------------

class _Swapped(NamedTuple):
    pair: nrm.LayerNormCache
    x_hat: np.ndarray
    weight: np.ndarray | None
    keys: tuple[str, ...]


def _ln_batch_axis(inputs: Any, params: Any, state: Any, noise: Any, *, training: bool,
                   eps: float = 1e-5, **options: Any) -> Any:
    """Layer norm over the batch axis (a transposed reduction) instead of the features."""
    x = inputs[0]
    z, pair = nrm.layer_norm_forward(np.swapaxes(x, 0, -1), None, None, normalized_dims=1,
                                     eps=eps)
    x_hat = np.swapaxes(z, 0, -1)
    weight, bias = params.get("weight"), params.get("bias")
    y = x_hat if weight is None else x_hat * weight
    return (y if bias is None else y + bias), _Swapped(pair, x_hat, weight, tuple(params)), {}


def _ln_batch_axis_backward(dy: Any, cache: _Swapped) -> Any:
    g = dy if cache.weight is None else dy * cache.weight
    dz = nrm.layer_norm_backward(np.swapaxes(g, 0, -1), cache.pair)[0]
    lead = tuple(range(dy.ndim - (cache.weight.ndim if cache.weight is not None else 1)))
    grads = {"weight": np.sum(dy * cache.x_hat, axis=lead), "bias": np.sum(dy, axis=lead)}
    return (np.swapaxes(dz, 0, -1),), {k: grads[k] for k in cache.keys}


def _ln_gamma_grad_row(dy: Any, cache: Any) -> Any:
    dinputs, grads = _ORIGINAL["layer_norm"].backward(dy, cache)
    return dinputs, {k: v.reshape(1, *v.shape) for k, v in grads.items()}


class _GroupPerPixel(NamedTuple):
    x_hat: np.ndarray     # (N, G, S, C/G)
    inv_std: np.ndarray
    weight: np.ndarray | None
    shape: tuple[int, ...]
    keys: tuple[str, ...]


def _gn_per_pixel(inputs: Any, params: Any, state: Any, noise: Any, *, training: bool,
                  num_groups: int, eps: float = 1e-5, **options: Any) -> Any:
    """Group norm with statistics per pixel (over a group's channels only), not over space."""
    x = inputs[0]
    n, c = x.shape[:2]
    rows = np.moveaxis(x.reshape(n, num_groups, c // num_groups, -1), 2, -1)
    centred = rows - rows.mean(-1, keepdims=True)
    inv_std = 1 / np.sqrt((centred ** 2).mean(-1, keepdims=True) + x.dtype.type(eps))
    x_hat = centred * inv_std
    view = (1, c) + (1,) * (x.ndim - 2)
    y = np.moveaxis(x_hat, -1, 2).reshape(x.shape)
    weight, bias = params.get("weight"), params.get("bias")
    y = y if weight is None else y * weight.reshape(view)
    y = y if bias is None else y + bias.reshape(view)
    return y, _GroupPerPixel(x_hat, inv_std, weight, x.shape, tuple(params)), {}


def _gn_per_pixel_backward(dy: Any, cache: _GroupPerPixel) -> Any:
    x_hat, inv_std, weight, shape, keys = cache
    view = (1, shape[1]) + (1,) * (len(shape) - 2)
    g = dy if weight is None else dy * weight.reshape(view)
    g_rows = np.moveaxis(g.reshape(x_hat.shape[0], x_hat.shape[1], x_hat.shape[3], -1), 2, -1)
    d = inv_std * (g_rows - g_rows.mean(-1, keepdims=True)
                   - x_hat * (g_rows * x_hat).mean(-1, keepdims=True))
    dx = np.moveaxis(d, -1, 2).reshape(shape)
    flat_hat = np.moveaxis(x_hat, -1, 2).reshape(shape)
    axes = (0, *range(2, len(shape)))
    grads = {"weight": np.sum(dy * flat_hat, axis=axes), "bias": np.sum(dy, axis=axes)}
    return (dx,), {k: grads[k] for k in keys}


# ---- dropout and embedding ------------------------------------------------------------------

def _dropout_unscaled(inputs: Any, params: Any, state: Any, noise: Any, *, training: bool,
                      p: float = 0.5) -> Any:
    x = inputs[0]
    if not training:
        return x.copy(), drop.DropoutCache(None), {}
    mask = noise["mask"].astype(x.dtype)
    return x * mask, drop.DropoutCache(mask), {}


def _dropout_float64(inputs: Any, params: Any, state: Any, noise: Any, *, training: bool,
                     p: float = 0.5) -> Any:
    x = inputs[0]
    if not training:
        return x.copy(), drop.DropoutCache(None), {}
    mask = noise["mask"] * (0.0 if p == 1 else 1 / (1 - p))  # float64: never cast to x's dtype
    return x * mask, drop.DropoutCache(mask), {}


def _embedding_assigned(dy: Any, cache: emb.EmbeddingCache) -> Any:
    dweight = np.zeros(cache.weight_shape, dtype=cache.dtype)
    dweight[cache.indices.reshape(-1)] = dy.reshape(-1, cache.weight_shape[1])  # last one wins
    if cache.padding_idx is not None:
        dweight[cache.padding_idx] = 0
    return (None,), {"weight": dweight}


def _embedding_padding_trained(dy: Any, cache: emb.EmbeddingCache) -> Any:
    return (None,), {"weight": emb.embedding_backward(dy, cache._replace(padding_idx=None))}


# ---- weighted losses -----------------------------------------------------------------------

def _ce_count_not_weights(x: Any, target: Any, reduction: str = "mean", **options: Any) -> Any:
    """Mean over the number of targets kept instead of the sum of their class weights."""
    loss, cache = cls.cross_entropy_forward(x, target, reduction, **options)
    if reduction != "mean" or cache.denominator is None:
        return loss, cache
    kept = np.sum(target.reshape(-1) != options.get("ignore_index", -100))
    return (loss * cache.denominator / kept).astype(x.dtype), cache._replace(denominator=kept)


def _nll_ignored_counted(x: Any, target: Any, reduction: str = "mean", **options: Any) -> Any:
    """Mean over every position, the ignored ones included."""
    loss, cache = cls.nll_forward(x, target, reduction, **options)
    if reduction != "mean" or cache.denominator is None or options.get("weight") is not None:
        return loss, cache
    count = target.size
    return (loss * cache.denominator / count).astype(x.dtype), cache._replace(denominator=count)


def _bce_logits_pos_weight_dropped(dloss: Any, cache: Any) -> Any:
    return cls.bce_with_logits_backward(dloss, cache._replace(pos_weight=None))


NORM_MUTANTS: tuple[Mutant, ...] = (
    Mutant("bn_running_var_biased", "running variance updated with the biased batch variance "
           "(PyTorch's is unbiased: eval-mode output differs)",
           _layer("batch_norm", forward=_bn_biased_running_var), ("batch_norm",)),
    Mutant("bn_eval_batch_stats", "eval mode normalises with the batch statistics instead of "
           "the running ones", _layer("batch_norm", forward=_bn_eval_on_batch), ("batch_norm",)),
    Mutant("bn_backward_no_mean_terms", "batch-norm backward drops the mean-of-dy and "
           "mean-of-dy·x̂ terms (treats the statistics as constants)",
           _layer("batch_norm", backward=_bn_no_mean_terms), ("batch_norm",)),
    Mutant("bn_per_pixel", "spatial batch norm with statistics per (channel, pixel) instead of "
           "per channel", _layer("batch_norm", forward=_bn_per_pixel,
                                 backward=_bn_per_pixel_backward), ("batch_norm",)),
    Mutant("bn_gamma_grad_1xC", "dgamma/dbeta returned with shape (1, C), which broadcasts in "
           "an update", _layer("batch_norm", backward=_bn_gamma_grad_row), ("batch_norm",)),
    Mutant("bn_momentum_flipped", "running statistics updated as m·old + (1 - m)·new",
           _layer("batch_norm", forward=_bn_momentum_flipped), ("batch_norm",)),
    Mutant("bn_count_not_incremented", "num_batches_tracked never incremented (momentum=None's "
           "cumulative average stays at the first batch)",
           _layer("batch_norm", forward=_bn_count_not_incremented), ("batch_norm",)),
    Mutant("ln_batch_axis", "layer norm taken over the batch axis instead of the features",
           _layer("layer_norm", forward=_ln_batch_axis, backward=_ln_batch_axis_backward),
           ("layer_norm",)),
    Mutant("ln_gamma_grad_1xD", "layer-norm dgamma/dbeta with shape (1, D)",
           _layer("layer_norm", backward=_ln_gamma_grad_row), ("layer_norm",)),
    Mutant("gn_per_pixel", "group norm with statistics per pixel (a group's channels only) "
           "instead of over the group's channels and space",
           _layer("group_norm", forward=_gn_per_pixel, backward=_gn_per_pixel_backward),
           ("group_norm",)),
    Mutant("dropout_not_rescaled", "dropout keeps x·mask without the 1/(1 - p) rescaling",
           _layer("dropout", forward=_dropout_unscaled), ("dropout",)),
    Mutant("dropout_mask_float64", "the float64 mask multiplies a float32 input uncast: the "
           "output leaks float64", _layer("dropout", forward=_dropout_float64), ("dropout",)),
    Mutant("embedding_grad_assigned", "embedding weight gradient assigned (dW[i] = dy) instead "
           "of accumulated over repeated indices",
           _layer("embedding", backward=_embedding_assigned), ("embedding",)),
    Mutant("embedding_padding_trained", "the padding_idx row receives a gradient",
           _layer("embedding", backward=_embedding_padding_trained), ("embedding",)),
    Mutant("ce_weights_not_in_mean", "cross-entropy mean divides by the number of kept targets, "
           "not by the sum of their class weights",
           _loss("cross_entropy", forward=_ce_count_not_weights), ("cross_entropy",)),
    Mutant("nll_ignored_counted", "nll mean divides by every position, ignored ones included",
           _loss("nll", forward=_nll_ignored_counted), ("nll",)),
    Mutant("bce_logits_pos_weight_dropped", "bce_with_logits backward forgets pos_weight",
           _loss("bce_with_logits", backward=_bce_logits_pos_weight_dropped),
           ("bce_with_logits",)),
)

NORM_ZOO: dict[str, Mutant] = {m.name: m for m in NORM_MUTANTS}


def _loss_cases(loss: str) -> list[tuple[np.ndarray, np.ndarray, dict[str, Any]]]:
    """The weighted-loss cases of ``tests/test_losses_any_rank.py`` that the zoo runs."""
    rng = stream(0, "zoo", f"{loss} cases")
    x = rng.normal(size=(4, 3, 5))
    t = rng.integers(0, 3, size=(4, 5))
    t.reshape(-1)[::3] = 1
    info = registry.loss_info(registry.LOSSES[loss])
    if info.needs == "log-probabilities":  # nll: log-softmax over the classes (dim 1)
        x = x - np.log(np.exp(x).sum(1, keepdims=True))
    if "class_index" in info.targets:
        return [(x, t, {"weight": [0.5, 2.0, 1.0], "ignore_index": 1}),
                (x, t, {"ignore_index": 1})]
    probability = rng.uniform(size=x.shape)
    return [(x, probability, {"pos_weight": [0.5, 1.0, 2.0, 3.0, 1.5]})]


def conformance_kill(mutant: Mutant, dtypes: tuple[str, ...] = DTYPES
                     ) -> str | None:
    """The first comparison that fails under ``mutant`` (``None`` if it survives).

    Layers: every sample of each layer the mutant touches as a one-node graph spec, in
    train mode and eval mode (``compare_network``) and a train→eval→train sequence with the
    state carried (``reference.conformance.layers``), after the pair's own protocol. Losses:
    weighted and ignore_index cases through ``compare_op``. An exception counts as a kill
    (the engine refused or broke).
    """
    from reference.conformance.layers import check_sample
    from reference.core.compare import compare_op

    with mutant.inject(), np.errstate(all="ignore"):
        for name in mutant.ops:
            for dtype in dtypes:
                if name in registry.LOSSES:
                    for x, target, options in _loss_cases(name):
                        cast = target if target.dtype.kind in "iu" else target.astype(dtype)
                        record = compare_op(name, dtype, options, x=x.astype(dtype),
                                            target=cast)
                        if not record.passed:
                            return f"{name} {dtype} {options}: {record.first_divergence}"
                    continue
                samples = LAYERS[name].samples
                for sample in samples(stream(0, "zoo", name), dtype) if samples else ():
                    for modes in ((True,), (False,), (True, False, True)):
                        where = f"{name} {dtype} {sample.name} {modes}"
                        try:
                            result = check_sample(name, sample.options, sample.inputs, dtype,
                                                  modes)
                        except (ValueError, TypeError, IndexError) as error:
                            return f"{where}: raised {type(error).__name__}: {error}"
                        if not result.passed:
                            return f"{where}: {result.record.first_divergence}"
    return None
