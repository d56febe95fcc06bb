r"""What the harness knows about one layer type: :class:`LayerInfo`, beside the ops' OpInfo.

A layer is a node of the graph spec. Its entry gives the pure forward/backward pair, the
dotted name of the PyTorch builder that mirrors it (so that ``manual`` never imports torch),
its options, and a *signature*: given the options and the per-sample shapes of its inputs,
the per-sample output shape and the slots it owns (parameters, state buffers, noise), each
with its default initialisation and its PyTorch attribute name. Parsing, both engines'
builders, the strategies and the gradient check all read the signature, so a layer's shape
rules are written once.

The pair's convention (every entry):

.. code-block:: text

    forward(inputs, params, state, noise, *, training, **options) -> (y, cache, new_state)
    backward(dy, cache) -> (dinputs, dparams)

A node's forward gets its resolved options (:attr:`manual.spec.Node.resolved`: the spec's,
plus what its signature resolved once, such as a convolution's geometry); given the spec's
options alone, a forward resolves them itself.

``inputs`` is a tuple of arrays with the batch first; ``dinputs`` has one entry per input
(``None`` for an index input); ``dparams`` has the keys of ``params``. Both are pure:
``new_state`` is a new dict (empty when the layer has no state) and nothing given is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from manual.options import LayerOption
from manual.registry import DEFAULT_TOLERANCES, OpInfo, Tolerance

Shape = tuple[int, ...]
Array = NDArray[Any]
Init = Callable[[np.random.Generator, Shape], NDArray[Any]]
Structure = Literal["affine", "elementwise", "rowwise", "general"]
EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class Slot:
    """A parameter, state buffer or noise input of one layer.

    ``init(rng, shape)`` draws its starting values in float64 (for noise, ``shape`` has the
    batch in front); ``torch`` is the attribute of the PyTorch module it maps to;
    ``dtype`` is ``""`` for the spec's float dtype, or a fixed one (``"int64"``).
    """

    shape: Shape
    init: Init
    torch: str = ""
    dtype: str = ""


@dataclass(frozen=True)
class Signature:
    """A node's per-sample output shape and the slots it owns, for its options and inputs.

    A layer with several outputs (an LSTM's ``output``, ``h_n``, ``c_n``) names them in
    ``outputs`` (name -> per-sample shape, in the order its forward returns them as a tuple);
    ``shape`` is then the first one's. Its backward receives a tuple of upstream gradients,
    one per output (zeros for an output nothing consumed). Other nodes refer to an output as
    ``<node>.<output>``; ``<node>`` alone is the first. ``no_grad`` lists the input positions
    that carry no gradient (an attention mask, a loss's target): the pair returns ``None``
    there and PyTorch's side is detached.

    ``options`` are what the signature resolved from the node's options once, at load (a
    convolution's or a pooling's window geometry: kernel, stride and dilation as tuples, the
    padding per side, the output size): the node's forward and its torch builder read them
    (:attr:`manual.spec.Node.resolved`), so that nothing derives them again per call.
    """

    shape: Shape
    outputs: Mapping[str, Shape] = field(default_factory=dict)
    params: Mapping[str, Slot] = field(default_factory=dict)
    state: Mapping[str, Slot] = field(default_factory=dict)
    noise: Mapping[str, Slot] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    no_grad: tuple[int, ...] = ()


@dataclass(frozen=True)
class Sample:
    """One configuration to check a layer alone on: options and its inputs (batch first).

    A ``name`` ending in ``_nan`` marks a sample whose output is expected to hold NaN, as
    PyTorch's does (a fully masked attention row)."""

    options: Mapping[str, Any]
    inputs: tuple[Array, ...]
    name: str = ""


Forward = Callable[..., tuple[Any, Any, dict[str, Array]]]
Backward = Callable[[Array, Any], tuple[tuple[Array | None, ...], dict[str, Array]]]
SignatureFn = Callable[[Mapping[str, Any], tuple[Shape, ...]], Signature]
Samples = Callable[[np.random.Generator, str], Iterator[Sample]]
Switches = Callable[[tuple[Array, ...], Mapping[str, Any]], Array]


@dataclass(frozen=True)
class Behaviour:
    """How a layer treats its batch and its modes.

    ``rows_independent`` is False when samples of a batch interact (batch norm in train
    mode); ``train_eval_differ`` when train and eval mode compute different things (batch
    norm, dropout), so both are checked; ``input_kind`` is ``"index"`` for a layer that reads
    integer inputs (embedding).
    """

    rows_independent: bool = True
    train_eval_differ: bool = False
    input_kind: Literal["real", "index"] = "real"


@dataclass(frozen=True)
class LayerInfo:
    """Everything the harness knows about one layer type.

    ``structure`` tells the gradient check and the strategies what they may assume (they choose
    by it, never by the name): ``affine`` (a matrix product over the last axis, with
    parameters ``weight`` ``(out, in)`` and an optional ``bias``), ``elementwise`` (one scalar
    function of each element, the shape kept), ``rowwise`` (mixes the last axis only) or
    ``general``. :class:`Behaviour` says how it treats the batch and the modes. An activation's
    entry points at its ``op``, which keeps its domain, kinks, variants, tolerances and complex
    forward.

    ``switches(inputs, options)`` (optional) names the branch the forward takes at each output
    position (max pooling: the winning offset of each window). A perturbation that changes any
    of them crossed a kink: the gradient check reports it as a kink instead of judging it.
    """

    name: str
    forward: Forward
    backward: Backward
    torch: str
    options: Mapping[str, LayerOption]
    signature: SignatureFn
    structure: Structure = "general"
    behaviour: Behaviour = Behaviour()
    samples: Samples | None = None
    op: OpInfo | None = None
    switches: Switches | None = None
    tolerances: Mapping[str, Tolerance] = field(default_factory=dict)

    def tolerance(self, dtype: str, stage: str = "forward") -> Tolerance:
        """The override for ``dtype`` (``"float32:backward"`` beats ``"float32"``), or the op's."""
        for key in (f"{dtype}:{stage}", dtype):
            if key in self.tolerances:
                return self.tolerances[key]
        if self.op is not None:
            return self.op.tolerance(dtype, stage)
        return DEFAULT_TOLERANCES[dtype]


def stateless(forward: Callable[..., tuple[Any, Any]], backward: Callable[..., Any]
              ) -> tuple[Forward, Backward]:
    """The layer convention over a pure pair without parameters, state or noise.

    ``forward(*inputs, **options) -> (y, cache)``; ``backward(dy, cache)`` returns one
    gradient per input (a bare array when there is one).
    """
    def layer_forward(inputs: tuple[Array, ...], params: Any, state: Any, noise: Any, *,
                      training: bool, **options: Any) -> tuple[Any, Any, dict[str, Array]]:
        y, cache = forward(*inputs, **options)
        return y, cache, {}

    def layer_backward(dy: Array, cache: Any) -> tuple[tuple[Array | None, ...], dict]:
        dinputs = backward(dy, cache)
        return (dinputs if isinstance(dinputs, tuple) else (dinputs,)), {}

    return layer_forward, layer_backward
