"""The bug zoo: realistic backprop mistakes, injected into the manual engine at test time.

Each :class:`Mutant` names one mistake, describes it in a line and knows how to inject
it: a registry entry replaced with ``dataclasses.replace(entry, backward=...)`` (an op in
:data:`manual.registry.ACTIVATIONS`/``LOSSES`` and ``OPS``, a layer in
:data:`manual.layers.LAYERS`), or a method of the generic layer or of the graph executor
(``Layer.backward``, ``Network.accumulate``). The engine's source is never edited.
:func:`conformance_kill` and :func:`fuzz_kill` say whether the conformance suite and the
fuzzer catch a mutant; a harness that lets one live is not testing what it claims to.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from manual import registry
from manual.layers import LAYERS
from manual.layers.core import linear_with
from manual.module import Layer
from manual.network import Network
from manual.ops import classification_losses as cls
from manual.ops import merge
from manual.ops import piecewise as pw
from manual.ops import smooth as sm
from manual.ops.linear import LinearCache, linear_backward, linear_forward
from manual.ops.reduction import upstream

Patch = tuple[Any, str, Any]  # (dict or object, key or attribute, replacement)


@dataclass(frozen=True)
class Mutant:
    """One injected mistake. ``ops`` are the registry ops it touches (the fuzzer's focus)."""

    name: str
    description: str
    patches: Callable[[], list[Patch]]
    ops: tuple[str, ...] = ()

    @contextlib.contextmanager
    def inject(self) -> Iterator[None]:
        """Apply the patches; restore the originals on exit, even after an error."""
        saved: list[Patch] = []
        try:
            for target, key, value in self.patches():
                if isinstance(target, dict):
                    saved.append((target, key, target[key]))
                    target[key] = value
                else:
                    saved.append((target, key, getattr(target, key)))
                    setattr(target, key, value)
            yield
        finally:
            for target, key, value in reversed(saved):
                if isinstance(target, dict):
                    target[key] = value
                else:
                    setattr(target, key, value)

    def apply(self, monkeypatch: Any) -> None:
        """Apply the patches through pytest's ``monkeypatch`` (undone after the test)."""
        for target, key, value in self.patches():
            if isinstance(target, dict):
                monkeypatch.setitem(target, key, value)
            else:
                monkeypatch.setattr(target, key, value)


def _op(name: str, **changes: Any) -> list[Patch]:
    """Replace registry entry ``name`` (in its kind's dict and in ``OPS``)."""
    op = registry.OPS[name]
    kind = registry.LOSSES if op.kind == "loss" else registry.ACTIVATIONS
    new = dataclasses.replace(op, **changes)
    return [(kind, name, new), (registry.OPS, name, new)]


def _backward(name: str, backward: Callable[..., Any]) -> Callable[[], list[Patch]]:
    return lambda: _op(name, backward=backward)


# ---- the linear layer and the network loop ------------------------------------------------

def _linear_dw_transposed(dy: Any, cache: Any) -> Any:
    x, weight = cache
    return dy @ weight, x.T @ dy, np.sum(dy, axis=0)


def _linear_bias_first_sample(dy: Any, cache: Any) -> Any:
    x, weight = cache
    return dy @ weight, dy.T @ x, dy[0].copy()


def _linear_forward_float64(x: Any, weight: Any, bias: Any) -> Any:
    y = x.astype(np.float64) @ weight.T.astype(np.float64)
    if bias is not None:
        y = y + bias
    return y, LinearCache(x, weight)


def _layer(name: str, **changes: Any) -> Callable[[], list[Patch]]:
    """Replace layer entry ``name`` of :data:`manual.layers.LAYERS`."""
    return lambda: [(LAYERS, name, dataclasses.replace(LAYERS[name], **changes))]


def _linear_pair(forward: Callable[..., Any] = linear_forward,
                 backward: Callable[..., Any] = linear_backward) -> Callable[[], list[Patch]]:
    """The linear entry with a mutated forward or backward pair underneath."""
    return lambda: [(LAYERS, "linear", linear_with(forward, backward))]


def _overwriting_backward(self: Any, dy: Any) -> Any:
    dinputs, dparams = self.info.backward(dy, self.cache)
    for name, grad in dparams.items():
        self.grads[name] = grad
    return dinputs


def _first_cache_forward(self: Any, *inputs: Any) -> Any:
    y, cache, _ = self.info.forward(inputs, self.params, self.state, self.noise,
                                    training=self.training, **self.options)
    if self.cache is None:
        self.cache = cache
    return y


def _backward_skipping_first(self: Any, grad: Any) -> Any:
    grads = {self.spec.output: grad}
    for node in reversed(self.spec.nodes[1:]):  # off by one: node 0 is never reached
        if node.name in grads:
            dinputs = self.modules[node.name].backward(grads[node.name])
            for ref, dx in zip(node.inputs, dinputs, strict=True):
                self.accumulate(grads, ref, dx)
    self.grad_at = grads
    self.input_grads = {i.name: grads.get(i.name) for i in self.spec.inputs}
    return self.input_grads[self.spec.inputs[0].name]


def _assign_at_fan_in(self: Any, grads: Any, ref: str, dx: Any) -> None:
    grads[ref] = dx


def _add_drops_skip(dy: Any, cache: Any) -> Any:
    return (dy, *(np.zeros_like(dy) for _ in range(cache.arity - 1))), {}


def _concat_split_shifted(dy: Any, cache: Any) -> Any:
    rolled = np.roll(dy, -1, axis=cache.axis)  # every offset one element too far
    return merge.concat_backward(rolled, cache), {}


def _method(owner: Any, name: str, value: Any) -> Callable[[], list[Patch]]:
    return lambda: [(owner, name, value)]


# ---- activations -----------------------------------------------------------------------

def _relu_forward_x(x: Any) -> Any:
    return np.maximum(x, 0), pw.InputCache(x)


def _relu_backward_ge(dy: Any, cache: Any) -> Any:
    return np.where(cache.x >= 0, dy, 0).astype(dy.dtype, copy=False)


def _relu_backward_in_place(dy: Any, cache: Any) -> Any:
    dy[cache.y <= 0] = 0
    return dy


def _tanh_forward_in_place(x: Any) -> Any:
    y = np.tanh(x, out=x)
    return y, pw.OutputCache(y)


def _elu_backward_no_alpha(dy: Any, cache: Any) -> Any:
    x, _, scale, input_scale = cache
    negative = np.exp(np.minimum(x, 0) * input_scale) * scale * input_scale
    return dy * np.where(x > 0, scale, negative).astype(dy.dtype, copy=False)


def _hardtanh_backward_default_bounds(dy: Any, cache: Any) -> Any:
    inside = (cache.x > -1) & (cache.x < 1)
    return np.where(inside, dy, 0).astype(dy.dtype, copy=False)


def _gelu_backward_no_cubic(dy: Any, cache: Any) -> Any:
    if cache.approximate != "tanh":
        return sm.gelu_backward(dy, cache)
    x = cache.x
    t = np.tanh(sm._SQRT_2_OVER_PI * (x + sm._KAPPA * x * x * x))
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * sm._SQRT_2_OVER_PI)


def _softplus_backward_no_beta(dy: Any, cache: Any) -> Any:
    bx = cache.x * cache.beta
    return np.where(bx > cache.threshold, dy, dy * sm.numerics.sigmoid(cache.x))


# ---- losses ----------------------------------------------------------------------------

def _mse_backward_sum(dloss: Any, cache: Any) -> Any:
    d = cache.d
    reduction = "sum" if cache.reduction == "mean" else cache.reduction
    return upstream(dloss, reduction, d.size, d.dtype) * 2 * d


def _mse_backward_sign(dloss: Any, cache: Any) -> Any:
    d = cache.d
    return upstream(dloss, cache.reduction, d.size, d.dtype) * 2 * -d


def _huber_backward_unit_clip(dloss: Any, cache: Any) -> Any:
    d, reduction, _ = cache
    g = upstream(dloss, reduction, d.size, d.dtype)
    return np.where(d <= -cache.width, -g, np.where(d >= cache.width, g, g * d))


def _bce_backward_logit_gradient(dloss: Any, cache: Any) -> Any:
    x, t, reduction = cache.x, cache.target, cache.reduction
    return upstream(dloss, reduction, x.size, x.dtype) * (x - t)


def _cross_entropy_backward_no_mean(dloss: Any, cache: Any) -> Any:
    reduction = "sum" if cache.reduction == "mean" else cache.reduction
    return cls.cross_entropy_backward(dloss, cache._replace(reduction=reduction))


def _cross_entropy_forward_unsmoothed_cache(x: Any, target: Any, reduction: str = "mean",
                                            label_smoothing: float = 0.0) -> Any:
    loss, cache = cls.cross_entropy_forward(x, target, reduction, label_smoothing)
    plain = cls.smoothed_target(target, x.shape[-1], x.dtype, 0.0)
    return loss, cache._replace(smoothed_target=plain)


def _nll_backward_sign(dloss: Any, cache: Any) -> Any:
    return -cls.nll_backward(dloss, cache)


def _kl_backward_batchmean_as_mean(dloss: Any, cache: Any) -> Any:
    reduction = "mean" if cache.reduction == "batchmean" else cache.reduction
    return cls.kl_div_backward(dloss, cache._replace(reduction=reduction))


MUTANTS: tuple[Mutant, ...] = (
    Mutant("linear_dW_transposed", "forgotten transpose: dW = xᵀ·dy (in × out) instead of dyᵀ·x",
           _linear_pair(backward=_linear_dw_transposed)),
    Mutant("bias_grad_not_summed", "bias gradient taken from the first sample, not summed over "
           "the batch", _linear_pair(backward=_linear_bias_first_sample)),
    Mutant("linear_float64", "float64 silently used in a float32 run: the linear layer "
           "multiplies in float64 and never casts back",
           _linear_pair(forward=_linear_forward_float64)),
    Mutant("grad_overwritten", "gradients assigned (=) instead of accumulated (+=): a second "
           "backward without zero_grad loses the first",
           _method(Layer, "backward", _overwriting_backward)),
    Mutant("stale_cache", "a layer caches its input only on the first forward, so backward "
           "uses a previous batch", _method(Layer, "forward", _first_cache_forward)),
    Mutant("skip_first_layer", "off-by-one in the backward loop: layer 0 never gets its "
           "gradient", _method(Network, "backward_from", _backward_skipping_first)),
    Mutant("fan_in_assigned", "where a value feeds two nodes, the second gradient replaces the "
           "first (=) instead of adding to it (+=)",
           _method(Network, "accumulate", _assign_at_fan_in), ("add",)),
    Mutant("skip_gradient_dropped", "add backward sends the gradient down the first input "
           "only: a skip connection's gradient is dropped",
           _layer("add", backward=_add_drops_skip), ("add",)),
    Mutant("concat_offset_shifted", "concat backward splits the upstream gradient one element "
           "past each input's offset", _layer("concat", backward=_concat_split_shifted),
           ("concat",)),
    Mutant("relu_grad_at_zero", "relu'(0) = 1 (x >= 0) instead of PyTorch's 0",
           lambda: _op("relu", forward=_relu_forward_x, backward=_relu_backward_ge), ("relu",)),
    Mutant("relu_mutates_upstream", "relu backward zeroes the upstream gradient in place "
           "instead of returning a new array", _backward("relu", _relu_backward_in_place),
           ("relu",)),
    Mutant("tanh_mutates_input", "tanh forward writes into its input (np.tanh(x, out=x))",
           lambda: _op("tanh", forward=_tanh_forward_in_place), ("tanh",)),
    Mutant("tanh_one_minus_y", "tanh' written as 1 - tanh(x) instead of 1 - tanh(x)²",
           _backward("tanh", lambda dy, c: dy * (1 - c.y)), ("tanh",)),
    Mutant("sigmoid_missing_factor", "sigmoid' written as σ(x) instead of σ(x)(1 - σ(x))",
           _backward("sigmoid", lambda dy, c: dy * c.y), ("sigmoid",)),
    Mutant("leaky_slope_dropped", "leaky_relu backward drops the negative slope (gradient 0 "
           "for x <= 0)", _backward("leaky_relu", lambda dy, c: np.where(c.x > 0, dy, 0)),
           ("leaky_relu",)),
    Mutant("elu_alpha_dropped", "elu backward forgets alpha on the negative branch",
           _backward("elu", _elu_backward_no_alpha), ("elu",)),
    Mutant("silu_one_path", "x is used twice in x·σ(x); backward keeps one path: f' = σ(x)",
           _backward("silu", lambda dy, c: dy * sm.numerics.sigmoid(c.x)), ("silu",)),
    Mutant("gelu_tanh_no_cubic", "tanh-approximate gelu backward drops the 3κx² term of du/dx",
           _backward("gelu", _gelu_backward_no_cubic), ("gelu",)),
    Mutant("softplus_beta_dropped", "softplus backward uses σ(x) instead of σ(βx)",
           _backward("softplus", _softplus_backward_no_beta), ("softplus",)),
    Mutant("hardtanh_default_bounds", "hardtanh backward ignores min_val/max_val and clips at "
           "±1", _backward("hardtanh", _hardtanh_backward_default_bounds), ("hardtanh",)),
    Mutant("softmax_diagonal", "softmax Jacobian reduced to its diagonal: y(1 - y)·dy",
           _backward("softmax", lambda dy, c: dy * c.y * (1 - c.y)), ("softmax",)),
    Mutant("log_softmax_no_sum", "log_softmax backward drops the Σ dy: dy - softmax(x)",
           _backward("log_softmax", lambda dy, c: dy - np.exp(c.y)), ("log_softmax",)),
    Mutant("mse_mean_as_sum", "mean reduction differentiated as sum: the MSE gradient misses "
           "1/N", _backward("mse", _mse_backward_sum), ("mse",)),
    Mutant("mse_sign_flip", "sign flip: the MSE gradient written as 2(t - x)",
           _backward("mse", _mse_backward_sign), ("mse",)),
    Mutant("huber_delta_dropped", "huber backward clips at ±1 instead of ±delta",
           _backward("huber", _huber_backward_unit_clip), ("huber",)),
    Mutant("bce_sigmoid_twice", "bce backward returns p - t (the logit's gradient), so the "
           "sigmoid derivative is applied twice", _backward("bce", _bce_backward_logit_gradient),
           ("bce",)),
    Mutant("cross_entropy_no_mean", "cross-entropy gradient not divided by the batch size N",
           _backward("cross_entropy", _cross_entropy_backward_no_mean), ("cross_entropy",)),
    Mutant("label_smoothing_ignored", "cross-entropy backward uses the unsmoothed target",
           lambda: _op("cross_entropy", forward=_cross_entropy_forward_unsmoothed_cache),
           ("cross_entropy",)),
    Mutant("nll_sign_flip", "nll backward puts +1 at the target class instead of -1",
           _backward("nll", _nll_backward_sign), ("nll",)),
    Mutant("kl_batchmean_as_mean", "kl_div batchmean backward divides by N·C instead of N",
           _backward("kl_div", _kl_backward_batchmean_as_mean), ("kl_div",)),
)

ZOO: dict[str, Mutant] = {m.name: m for m in MUTANTS}
