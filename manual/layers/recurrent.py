r"""Registry entries for ``rnn``, ``lstm`` and ``gru``; :data:`RECURRENT_LAYERS` also joins
the attention layers and the tensor helpers that sequence graphs need.

**Layout in the graph.** The graph's batch is dim 0 of every tensor, so these layers are
batch-first in a spec: the sequence is ``(N, L, H_in)``, ``output`` ``(N, L, H)``, and the
states ``h0``/``c0`` (optional inputs 2 and 3) and ``h_n``/``c_n`` are ``(N, num_layers, H)``,
i.e. PyTorch's ``(num_layers, N, H)`` with the batch moved to the front. ``batch_first``
defaults to true (PyTorch's default is false) and false is refused with the reason: a
time-major tensor cannot flow through a batch-first graph. The torch builder uses
``batch_first=True`` and moves the state's batch axis at its boundary; the pure pair in
:mod:`manual.ops.recurrent` keeps PyTorch's two layouts.

Not supported (refused as unknown options): ``bidirectional``, ``dropout``, ``proj_size``.
Parameters copy one to one with PyTorch's (``weight_ih_l0``, ``weight_hh_l0``,
``bias_ih_l0``, ``bias_hh_l0``, ...), each drawn from PyTorch's default
:math:`\mathcal{U}(-1/\sqrt{H}, 1/\sqrt{H})`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from manual import init as initializers
from manual.layers.attention import ATTENTION_LAYERS
from manual.layers.info import Array, LayerInfo, Sample, Shape, Signature, Slot
from manual.layers.tensor import TENSOR_LAYERS
from manual.ops import recurrent as ops
from manual.options import Choice, Flag, Int

B = "reference.builders.recurrent."


def gates_of(layer: str, options: Mapping[str, Any]) -> ops.Mode:
    """The pair's mode for a layer type and its options."""
    if layer == "rnn":
        return "rnn_relu" if options.get("nonlinearity", "tanh") == "relu" else "rnn_tanh"
    return "lstm" if layer == "lstm" else "gru"


def check_batch_first(options: Mapping[str, Any]) -> None:
    if options.get("batch_first", True) is not True:
        raise ValueError("batch_first must be true: the graph's batch is dim 0 of every "
                         "tensor, so sequences are (N, L, features) in a spec")


def _uniform(bound: float) -> Any:
    return lambda rng, shape: initializers.uniform(shape, rng, -bound, bound)


def recurrent_signature(layer: str) -> Any:
    def signature(options: Mapping[str, Any], shapes: tuple[Shape, ...]) -> Signature:
        check_batch_first(options)
        states = 2 if layer == "lstm" else 1
        if len(shapes) not in (1, 1 + states):
            wanted = "x, or x, h0 and c0" if layer == "lstm" else "x, or x and h0"
            raise ValueError(f"takes {wanted}; got {len(shapes)} inputs")
        x = shapes[0]
        if len(x) != 2:
            raise ValueError(f"needs a sequence of shape (N, L, input_size), got per-sample "
                             f"shape {x}")
        hidden, layers = options.get("hidden_size"), options.get("num_layers", 1)
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"hidden_size must be a positive integer, got {hidden!r}")
        if "input_size" in options and options["input_size"] != x[1]:
            raise ValueError(f"input_size is {options['input_size']!r}, but the input has "
                             f"{x[1]} features (shape {x})")
        for name, shape in zip(("h0", "c0"), shapes[1:], strict=False):
            if shape != (layers, hidden):
                raise ValueError(f"{name} must have per-sample shape (num_layers, hidden_size) "
                                 f"= {(layers, hidden)}, got {shape}")
        rows, init = ops.GATES[gates_of(layer, options)] * hidden, _uniform(1 / math.sqrt(hidden))
        params: dict[str, Slot] = {}
        for k in range(layers):
            shapes_k: dict[str, Shape] = {f"weight_ih_l{k}": (rows, x[1] if k == 0 else hidden),
                        f"weight_hh_l{k}": (rows, hidden)}
            if options.get("bias", True):
                shapes_k |= {f"bias_ih_l{k}": (rows,), f"bias_hh_l{k}": (rows,)}
            params |= {name: Slot(s, init, torch=name) for name, s in shapes_k.items()}
        outputs = {"output": (x[0], hidden), "h_n": (layers, hidden)}
        if layer == "lstm":
            outputs["c_n"] = (layers, hidden)
        return Signature((x[0], hidden), outputs=outputs, params=params)
    return signature


class RecurrentNodeCache(NamedTuple):
    pair: ops.RecurrentCache
    lstm: bool


def _batch_second(state: Array | None) -> Array | None:
    """The graph's ``(N, num_layers, H)`` state as PyTorch's ``(num_layers, N, H)`` (and back)."""
    return None if state is None else np.swapaxes(state, 0, 1)


def recurrent_forward(layer: str) -> Any:
    def forward(inputs: tuple[Array, ...], params: Mapping[str, Array], state: Any, noise: Any,
                *, training: bool, **options: Any) -> tuple[Any, Any, dict]:
        h0 = _batch_second(inputs[1]) if len(inputs) > 1 else None
        c0 = _batch_second(inputs[2]) if len(inputs) > 2 else None
        mode = gates_of(layer, options)
        (y, h_n, c_n), cache = ops.recurrent_forward(
            inputs[0], params, h0, c0, mode=mode, num_layers=options.get("num_layers", 1),
            batch_first=True)
        outputs = (y, _batch_second(h_n)) + ((_batch_second(c_n),) if mode == "lstm" else ())
        return outputs, RecurrentNodeCache(cache, mode == "lstm"), {}
    return forward


def recurrent_backward(dys: Any, cache: RecurrentNodeCache
                       ) -> tuple[tuple[Array | None, ...], dict[str, Array]]:
    d_y, d_h_n = dys[0], _batch_second(dys[1])
    d_c_n = _batch_second(dys[2]) if cache.lstm else None
    dx, dh0, dc0, dparams = ops.recurrent_backward((d_y, d_h_n, d_c_n), cache.pair)  # type: ignore[arg-type]
    dinputs: tuple[Array | None, ...] = (dx,)
    if cache.pair.has_h0:
        dinputs += (_batch_second(dh0),)
    if cache.pair.has_c0:
        dinputs += (_batch_second(dc0),)
    return dinputs, dparams


def recurrent_samples(layer: str) -> Any:
    """Sequence lengths from 1, batch 1, stacked layers, no bias, given initial states."""
    def samples(rng: np.random.Generator, dtype: str) -> Iterator[Sample]:
        extra = {"rnn": [({"nonlinearity": "relu"}, "relu")]}.get(layer, [])
        configs: list[tuple[dict[str, Any], str, int, int, bool]] = [
            ({}, "default", 3, 4, False), ({}, "length_1", 2, 1, False),
            ({}, "batch_1", 1, 5, False), ({"num_layers": 2}, "two_layers", 2, 3, True),
            ({"bias": False}, "no_bias", 2, 3, False),
            ({"input_size": 3}, "initial_states", 2, 4, True),
            *((opts, name, 2, 4, True) for opts, name in extra)]
        hidden = 5
        for opts, name, batch, length, with_states in configs:
            options = {"hidden_size": hidden, **opts}
            x = rng.normal(size=(batch, length, 3)).astype(dtype)
            states = 2 if layer == "lstm" else 1
            layers = opts.get("num_layers", 1)
            given = tuple(rng.normal(size=(batch, layers, hidden)).astype(dtype)
                          for _ in range(states if with_states else 0))
            yield Sample(options, (x, *given), name)
    return samples


def _entry(layer: str) -> LayerInfo:
    options: dict[str, Any] = {"hidden_size": Int(None, low=1, required=True),
                               "input_size": Int(None, low=1), "num_layers": Int(1, low=1),
                               "bias": Flag(True), "batch_first": Flag(True)}
    if layer == "rnn":
        options["nonlinearity"] = Choice("tanh", ("tanh", "relu"))
    return LayerInfo(name=layer, forward=recurrent_forward(layer), backward=recurrent_backward,
                     torch=B + layer, options=options, signature=recurrent_signature(layer),
                     samples=recurrent_samples(layer))


RNN_LAYERS = tuple(_entry(layer) for layer in ("rnn", "lstm", "gru"))
RECURRENT_LAYERS = (*RNN_LAYERS, *ATTENTION_LAYERS, *TENSOR_LAYERS)
