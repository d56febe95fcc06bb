"""The bug zoo's edge-input mutants: mistakes that only the edges of the input space reveal.

Each is right on typical inputs and wrong at one edge class of
:mod:`reference.fuzz.edges`: logits past exp's overflow (no max shift), saturated
probabilities (an unclamped bce gradient), exact zeros in a target (``0 log 0``), soft
targets whose rows do not sum to 1, a kink convention (hardtanh at its bounds).
:func:`fuzz_kill`
runs the focused fuzzer with or without the edge draws: with them each mutant dies, without
them (the fuzzer before the edges) all but :data:`TYPICAL_DRAWS_REACH` survive, which is
the evidence the edges matter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from manual import numerics
from manual.ops import classification_losses as cls
from manual.ops import softmax as sx
from reference.zoo.core import Mutant, _backward, _op

Array = Any


def _softmax_unshifted(x: Array, dim: int = -1) -> Any:
    z = np.exp(x)  # no max shift: inf past 88.7 (float32) or 709.8 (float64), then inf/inf
    y = z / np.sum(z, axis=dim, keepdims=True)
    return y, sx.SoftmaxCache(y, dim)


def _log_softmax_unshifted(x: Array, axis: int = -1) -> Array:
    return x - np.log(np.sum(np.exp(x), axis=axis, keepdims=True))


def _bce_backward_unclamped(dloss: Array, cache: Any) -> Array:
    x, t, reduction, w = cache.x, cache.target, cache.reduction, cache.weight
    g = cls.upstream(dloss, reduction, x.size, x.dtype)
    if w is not None:
        g = g * w
    return g * (x - t) / ((1 - x) * x)  # no 1e-12 floor: inf at a probability of exactly 1


def _kl_div_forward_plain_log(x: Array, target: Array, reduction: str = "mean",
                              log_target: bool = False) -> Any:
    if log_target:
        return cls.kl_div_forward(x, target, reduction, log_target)
    loss = target * np.log(target) - target * x  # 0 log 0 = 0 * -inf = NaN, not 0
    value = cls.reduce(loss, "mean", count=x.shape[0]) if reduction == "batchmean" else \
        cls.reduce(loss, reduction)
    return value, cls.KlCache(target, reduction, log_target)


def _cross_entropy_forward_renormalised(x: Array, target: Array, *args: Any, **kwargs: Any
                                        ) -> Any:
    if np.ndim(target) == np.ndim(x):  # "the rows sum to 1 anyway": harmless only then
        target = target / np.sum(target, axis=1, keepdims=True)
    return cls.cross_entropy_forward(x, target, *args, **kwargs)


def _hardtanh_backward_inclusive(dy: Array, cache: Any) -> Array:
    inside = (cache.x >= cache.min_val) & (cache.x <= cache.max_val)  # PyTorch: strict
    return np.where(inside, dy, 0).astype(dy.dtype, copy=False)


EDGE_MUTANTS: tuple[Mutant, ...] = (
    Mutant("softmax_no_max_shift", "softmax computes exp(x) / sum exp(x) without subtracting "
           "the row maximum: NaN once a logit passes exp's overflow",
           lambda: _op("softmax", forward=_softmax_unshifted), ("softmax",)),
    Mutant("log_softmax_no_max_shift", "log-softmax as x - log sum exp(x) without the max "
           "shift (log_softmax and cross-entropy): x - inf once a logit passes exp's overflow",
           lambda: [(numerics, "log_softmax", _log_softmax_unshifted)],
           ("log_softmax", "cross_entropy")),
    Mutant("bce_gradient_unclamped", "bce backward divides by x(1 - x) without PyTorch's "
           "1e-12 floor: inf at a saturated probability of exactly 1",
           _backward("bce", _bce_backward_unclamped), ("bce",)),
    Mutant("kl_div_zero_log_zero", "kl_div computes t log t without the 0 log 0 = 0 "
           "convention: NaN at a zero target",
           lambda: _op("kl_div", forward=_kl_div_forward_plain_log), ("kl_div",)),
    Mutant("soft_cross_entropy_renormalises", "soft-target cross-entropy divides each target "
           "row by its sum, assuming rows sum to 1: wrong loss and gradient when they do not",
           lambda: _op("cross_entropy", forward=_cross_entropy_forward_renormalised),
           ("cross_entropy",)),
    Mutant("hardtanh_kink_inclusive", "hardtanh backward passes the gradient at x = min_val "
           "and x = max_val (PyTorch gives 0 there)",
           _backward("hardtanh", _hardtanh_backward_inclusive), ("hardtanh",)),
)

EDGE_ZOO: dict[str, Mutant] = {m.name: m for m in EDGE_MUTANTS}
# Mutants the typical draws can reach too: the kink points that reference.fuzz.strategies.datasets
# mixes into the input of a leading activation reach hardtanh's bounds at layer 0 (a kink
# convention is the same at any depth, so no kink mutant is edge-only; the edge draws add
# the weight-gradient paths behind it).
TYPICAL_DRAWS_REACH = frozenset({"hardtanh_kink_inclusive"})


def fuzz_kill(mutant: Mutant, max_examples: int, *, edges: bool = True) -> Any:
    """As :func:`reference.zoo.core.fuzz_kill` (focused on ``mutant.ops``, derandomised, no
    shrinking), with the edge draws on or off: the first failing case, or ``None``."""
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis.errors import NoSuchExample

    from reference.fuzz.campaign import fails, fixed_constants
    from reference.fuzz.strategies import fuzz_cases

    budget = settings(max_examples=max_examples, derandomize=True, database=None,
                      deadline=None, suppress_health_check=list(HealthCheck),
                      phases=(Phase.generate,))
    with mutant.inject(), fixed_constants():
        try:
            return find(fuzz_cases(include=mutant.ops, edges=edges), fails, settings=budget)
        except NoSuchExample:
            return None
