"""The Module protocol, and the one generic layer built from a registry entry.

A module holds ``params`` and ``grads`` dicts with the same keys, a ``state`` dict (running
statistics) and a ``training`` flag. ``forward(*inputs)`` keeps what backward needs;
``backward(dy)`` adds the parameter gradients into ``grads`` (``+=``, as PyTorch's ``.grad``
accumulates until ``zero_grad``) and returns one gradient per input (``None`` for an index
input). A user's own layer satisfies the same protocol, so every check that takes a module
takes theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from manual.layers import LAYERS
from manual.layers.info import LayerInfo
from manual.numerics import Array


@runtime_checkable
class Module(Protocol):
    params: dict[str, Array]
    grads: dict[str, Array]
    state: dict[str, Array]
    training: bool

    def forward(self, *inputs: Array) -> Any: ...

    def backward(self, dy: Any) -> tuple[Array | None, ...]: ...


class Layer:
    """A node of the manual engine: a registry entry's pure pair plus its slots.

    State is replaced by the forward's new state only in training mode; ``noise`` (a dropout
    mask) is set by the network before each forward. A layer built with ``registered=True``
    looks its entry up in :data:`manual.layers.LAYERS` at each call, so that an entry swapped
    there (a bug-zoo mutant, a counting wrapper) is the one an existing network runs.
    """

    def __init__(self, info: LayerInfo, options: Mapping[str, Any], params: dict[str, Array],
                 state: dict[str, Array] | None = None, registered: bool = False) -> None:
        self._info, self.options = info, dict(options)
        self.registered = registered
        self.params = params
        self.grads: dict[str, Array] = {k: np.zeros_like(v) for k, v in params.items()}
        self.state: dict[str, Array] = dict(state or {})
        self.noise: dict[str, Array] = {}
        self.training = True
        self.cache: Any = None

    @property
    def info(self) -> LayerInfo:
        return LAYERS.get(self._info.name, self._info) if self.registered else self._info

    def forward(self, *inputs: Array) -> Any:
        y, self.cache, new_state = self.info.forward(
            inputs, self.params, self.state, self.noise, training=self.training, **self.options)
        if self.training and new_state:
            self.state.update(new_state)
        return y

    def backward(self, dy: Any) -> tuple[Array | None, ...]:
        dinputs, dparams = self.info.backward(dy, self.cache)
        for name, grad in dparams.items():
            self.grads[name] += grad
        return dinputs

    def __repr__(self) -> str:
        return f"Layer({self.info.name}, {self.options})" if self.options else \
            f"Layer({self.info.name})"
