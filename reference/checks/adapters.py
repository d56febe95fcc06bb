"""Adapters: other conventions met in users' code, turned into a ``(forward, backward)`` pair.

Each returns the pair ``check_layer`` takes, so that checking is one line more::

    check_layer(*from_loss(softmax_loss), torch=F.cross_entropy,
                inputs={"x": (5, 10), "y": Labels((5,), 10)})

- :func:`from_loss`: ``loss, dx = f(x, y)`` (the course's losses);
- :func:`from_activation`: ``fn(x)`` and an elementwise ``grad(x)`` (numpy-ml's activations);
- :func:`from_object`: a layer object with ``forward(X)``, ``backward(dy) -> dX`` and
  parameter and gradient dicts (numpy-ml: ``parameters``/``gradients``);
  :func:`from_module` is the same for the Module protocol (``params``/``grads``);
- :func:`from_scalar_autograd`: an elementwise function of scalar autograd values
  (micrograd's ``Value``): the output is seeded with :math:`\\sum dy \\cdot out` and each
  input's ``.grad`` read back;
- :func:`from_scalar_model`: a whole model on scalar autograd values, for ``check_network``:
  its parameters by name (nested lists of values), read as arrays of ``.data`` and ``.grad``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

Pair = tuple[Callable[..., Any], Callable[..., Any]]


class _LossCache(NamedTuple):
    dx: Any


def from_loss(loss: Callable[..., tuple[Any, Any]]) -> Pair:
    """``loss(x, *targets, **options) -> (loss, dx)``: the backward is ``dout * dx``."""
    def forward(x: Any, *targets: Any, **options: Any) -> tuple[Any, _LossCache]:
        value, dx = loss(x, *targets, **options)
        return value, _LossCache(dx)

    def backward(dout: Any, cache: _LossCache) -> Any:
        return None if cache.dx is None else dout * cache.dx

    forward.__name__ = getattr(loss, "__name__", "loss")
    return forward, backward


class _ActivationCache(NamedTuple):
    x: Any


def from_activation(fn: Callable[[Any], Any], grad: Callable[[Any], Any]) -> Pair:
    """``fn(x)`` and its elementwise derivative ``grad(x)``: the backward is ``dout * grad(x)``."""
    def forward(x: Any, **options: Any) -> tuple[Any, _ActivationCache]:
        return fn(x, **options), _ActivationCache(x)

    def backward(dout: Any, cache: _ActivationCache) -> Any:
        derivative = grad(cache.x)
        return None if derivative is None else dout * derivative

    owner = getattr(fn, "__self__", None)
    forward.__name__ = type(owner).__name__ if owner is not None else \
        getattr(fn, "__name__", "activation")
    return forward, backward


class _ObjectCache(NamedTuple):
    layer: Any


def from_object(make: Callable[[], Any] | Any, params: Sequence[str] = (), *,
                params_attr: str = "parameters", grads_attr: str = "gradients") -> Pair:
    """A layer object made fresh by ``make()`` for every call (so that state kept on the object
    across calls, like numpy-ml's list of inputs, does not leak between cases), or a layer
    object itself (one with a ``forward``), deep-copied for every call.

    The forward takes the input, then ``params`` in order, which it writes into the object's
    ``params_attr`` dict; the backward returns ``dX`` and then ``grads_attr[name]`` for each
    (``dX`` may be ``None`` for an integer input, an embedding's indices: the check reads the
    parameters' gradients after it).
    """
    names = list(params)
    label = getattr(make, "__name__", None) or type(make).__name__
    if not isinstance(make, type) and hasattr(make, "forward") and hasattr(make, "backward"):
        instance = make

        def make() -> Any:  # a fresh copy per call
            return copy.deepcopy(instance)

    def forward(x: Any, *values: Any, **options: Any) -> tuple[Any, _ObjectCache]:
        if len(values) != len(names):
            raise TypeError(f"from_object: expected parameters {names}, got {len(values)}")
        layer = make()
        store = getattr(layer, params_attr)
        for name, value in zip(names, values, strict=True):
            store[name] = value
        return layer.forward(x, **options), _ObjectCache(layer)

    def backward(dout: Any, cache: _ObjectCache) -> Any:
        dx = cache.layer.backward(dout)
        if not names:
            return dx
        grads = getattr(cache.layer, grads_attr)
        return (dx, *(grads.get(name) for name in names))

    forward.__name__ = label
    return forward, backward


def from_module(make: Callable[[], Any], params: Sequence[str] = ()) -> Pair:
    """:func:`from_object` for the Module protocol (``params``, ``grads``, ``forward``,
    ``backward``) that the harness's own layers and a user's layer both satisfy."""
    return from_object(make, params, params_attr="params", grads_attr="grads")


class _ScalarCache(NamedTuple):
    leaves: list[Any]
    out: Any


def from_scalar_autograd(f: Callable[..., Any], value: Callable[[float], Any], *,
                         data: str = "data", grad: str = "grad") -> Pair:
    """An elementwise ``f`` on scalar autograd values (micrograd: ``value=Value``).

    Each element becomes ``value(x)``; ``f`` is applied elementwise (broadcasting the
    inputs); the backward builds :math:`L = \\sum_i dy_i \\, out_i` and calls
    ``L.backward()``, then reads ``.grad`` of every leaf. Values are Python floats, so the
    adapter casts results to the input's dtype (a dtype leak cannot be seen through it).
    """
    to_value = np.frompyfunc(value, 1, 1)
    read_data = np.frompyfunc(lambda v: getattr(v, data), 1, 1)
    read_grad = np.frompyfunc(lambda v: getattr(v, grad), 1, 1)

    def forward(*arrays: Any) -> tuple[Any, _ScalarCache]:
        leaves = [to_value(np.asarray(a, dtype=np.float64)) for a in arrays]
        elementwise = np.frompyfunc(f, len(arrays), 1)
        out = elementwise(*leaves)
        dtype = np.result_type(*arrays)
        return np.asarray(read_data(out), dtype=np.float64).astype(dtype), \
            _ScalarCache(leaves, out)

    def backward(dout: Any, cache: _ScalarCache) -> Any:
        seed = (np.asarray(cache.out, dtype=object) * np.asarray(dout, dtype=np.float64)
                .astype(object)).sum()
        seed.backward()
        dtype = np.asarray(dout).dtype
        grads = [np.asarray(read_grad(leaf), dtype=np.float64).astype(dtype)
                 for leaf in cache.leaves]
        return grads[0] if len(grads) == 1 else tuple(grads)

    forward.__name__ = getattr(f, "__name__", "scalar")
    return forward, backward


class ScalarModel:
    """A model on scalar autograd values as ``check_network`` takes one: ``params`` (arrays
    of the values' ``data``) and ``loss(X, y) -> (loss, grads)``: every named value's
    ``grad`` set to 0, the user's ``loss(X, y)`` built, its ``backward()`` called, and the
    ``grad`` of each read back as arrays."""

    def __init__(self, loss: Callable[[Any, Any], Any], values: Mapping[str, Any],
                 data: str, grad: str) -> None:
        self._loss, self._values, self._data, self._grad = loss, dict(values), data, grad
        self.__name__ = getattr(loss, "__name__", "model")

    def _each(self, action: Callable[[Any], Any]) -> dict[str, np.ndarray]:
        apply = np.frompyfunc(action, 1, 1)
        return {name: np.asarray(apply(np.asarray(v, dtype=object)), dtype=np.float64)
                for name, v in self._values.items()}

    @property
    def params(self) -> dict[str, np.ndarray]:
        return self._each(lambda v: getattr(v, self._data))

    def loss(self, X: Any, y: Any) -> tuple[float, dict[str, np.ndarray]]:
        def zero(value: Any) -> float:
            setattr(value, self._grad, 0.0)
            return 0.0

        self._each(zero)
        value = self._loss(X, y)
        value.backward()
        return float(getattr(value, self._data)), self._each(lambda v: getattr(v, self._grad))


def from_scalar_model(loss: Callable[[Any, Any], Any], values: Mapping[str, Any], *,
                      data: str = "data", grad: str = "grad") -> ScalarModel:
    """A micrograd-style model for ``check_network``: ``loss(X, y)`` returns the loss value
    (the adapter zeroes the parameters' gradients first and calls its ``backward()``);
    ``values`` names the parameters as nested lists of values (``{"W0": [n.w for n in
    layer0.neurons], ...}``)."""
    return ScalarModel(loss, values, data, grad)
