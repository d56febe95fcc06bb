"""Layers and the sequential network that the manual engine builds from a spec.

Layers hold ``params`` and ``grads`` dicts with the same keys; gradients
accumulate (``+=``) across backward passes until :meth:`Network.zero_grad`, as
PyTorch's ``.grad`` does. The network records each layer's output on the way
forward and the gradient reaching each layer's output on the way back, so that
the differential core can say where two engines part.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from manual.init import linear_parameters
from manual.numerics import Array
from manual.ops.linear import linear_backward, linear_forward
from manual.registry import ACTIVATIONS, LOSSES, OpInfo
from manual.spec import LayerSpec, Spec


def default_linear_init(
    rng: np.random.Generator, out_features: int, in_features: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r"""``nn.Linear``'s default: weight and bias both :math:`U(-k, k)`, :math:`k = 1/\sqrt{D_{in}}`.

    (PyTorch draws the weight with ``kaiming_uniform_(a=sqrt(5))``, which is the
    same interval.)
    """
    bound = 1 / math.sqrt(in_features)
    weight = rng.uniform(-bound, bound, size=(out_features, in_features))
    bias = rng.uniform(-bound, bound, size=out_features)
    return weight, bias


def initial_parameters(spec: Spec) -> dict[str, Array]:
    """Every parameter of ``spec``, named ``layers.{i}.weight`` / ``layers.{i}.bias``.

    Explicit values in the spec win; the rest are drawn from ``spec.seed`` in
    float64 (with the layer's ``init`` when it has one, see :mod:`manual.init`) and
    cast to the spec's dtype. Both engines start from these arrays.
    """
    rng = np.random.default_rng(spec.seed)
    params: dict[str, Array] = {}
    width = spec.input_shape[0]
    for i, layer in enumerate(spec.layers):
        if layer.type != "linear":
            continue
        out = layer.options["out_features"]
        if "init" in layer.options:
            weight, bias = linear_parameters(rng, out, width, layer.options["init"])
        else:
            weight, bias = default_linear_init(rng, out, width)
        if "weight" in layer.options:
            weight = np.asarray(layer.options["weight"], dtype=np.float64)
        bias_option = layer.options.get("bias", True)
        params[f"layers.{i}.weight"] = weight.astype(spec.dtype)
        if bias_option is not False:
            values = bias if bias_option is True else np.asarray(bias_option, dtype=np.float64)
            params[f"layers.{i}.bias"] = values.astype(spec.dtype)
        width = out
    return params


class Linear:
    """A fully connected layer; ``params`` and ``grads`` have keys ``weight`` (and ``bias``)."""

    def __init__(self, weight: Array, bias: Array | None) -> None:
        self.params: dict[str, Array] = {"weight": weight}
        if bias is not None:
            self.params["bias"] = bias
        self.grads: dict[str, Array] = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.cache: Any = None

    def forward(self, x: Array) -> Array:
        y, self.cache = linear_forward(x, self.params["weight"], self.params.get("bias"))
        return y

    def backward(self, dy: Array) -> Array:
        dx, dweight, dbias = linear_backward(dy, self.cache)
        self.grads["weight"] += dweight
        if "bias" in self.grads:
            self.grads["bias"] += dbias
        return dx


class Activation:
    """An elementwise or row-wise activation from the registry; it has no parameters."""

    def __init__(self, op: OpInfo, options: dict[str, Any]) -> None:
        self.op, self.options = op, options
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self.cache: Any = None

    def forward(self, x: Array) -> Array:
        y, self.cache = self.op.forward(x, **self.options)
        return y

    def backward(self, dy: Array) -> Array:
        return self.op.backward(dy, self.cache)


Layer = Linear | Activation


class Network:
    """A sequence of layers and a loss, as described by one spec.

    After :meth:`forward`, ``outputs[i]`` is layer ``i``'s output; after
    :meth:`backward`, ``upstream[i]`` is :math:`\\partial L / \\partial` that
    output and ``input_grad`` is :math:`\\partial L / \\partial x`.
    """

    def __init__(self, spec: Spec, params: dict[str, Array] | None = None) -> None:
        self.spec = spec
        params = initial_parameters(spec) if params is None else params
        self.layers: list[Layer] = [self._layer(i, layer, params) for i, layer in
                                    enumerate(spec.layers)]
        self.loss_op: OpInfo = LOSSES[spec.loss.type]
        self.loss_options = dict(spec.loss.options)
        self.outputs: list[Array] = []
        self.upstream: list[Array] = []
        self.input_grad: Array | None = None
        self._loss_cache: Any = None

    @staticmethod
    def _layer(i: int, layer: LayerSpec, params: dict[str, Array]) -> Layer:
        if layer.type == "linear":
            return Linear(params[f"layers.{i}.weight"], params.get(f"layers.{i}.bias"))
        return Activation(ACTIVATIONS[layer.type], dict(layer.options))

    def forward(self, x: Array) -> Array:
        self.outputs = []
        for layer in self.layers:
            x = layer.forward(x)
            self.outputs.append(x)
        return x

    def loss(self, output: Array, target: Array) -> Array:
        value, self._loss_cache = self.loss_op.forward(output, target, **self.loss_options)
        return value

    def backward(self, dloss: Array | float = 1.0) -> Array:
        """Backpropagate ``dloss`` (1 for a reduced loss) from the loss to the input."""
        dtype = np.dtype(self.spec.dtype)
        dy = self.loss_op.backward(np.asarray(dloss, dtype=dtype), self._loss_cache)
        self.upstream = [dy] * len(self.layers)
        for i in range(len(self.layers) - 1, -1, -1):
            self.upstream[i] = dy
            dy = self.layers[i].backward(dy)
        self.input_grad = dy
        return dy

    def zero_grad(self) -> None:
        for layer in self.layers:
            for grad in layer.grads.values():
                grad.fill(0)

    def named_parameters(self) -> dict[str, Array]:
        return {f"layers.{i}.{k}": v for i, layer in enumerate(self.layers)
                for k, v in layer.params.items()}

    def named_grads(self) -> dict[str, Array]:
        return {f"layers.{i}.{k}": v for i, layer in enumerate(self.layers)
                for k, v in layer.grads.items()}


def build(spec: Spec, params: dict[str, Array] | None = None) -> Network:
    """Build the manual network for ``spec`` (parameters from the spec's seed by default)."""
    return Network(spec, params)
