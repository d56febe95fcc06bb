"""A user's forward/backward pair and their PyTorch twin as a layer-driver subject.

The user's convention (:mod:`reference.checks.layer`)::

    out, cache = forward(*arrays, **options)     # the inputs, then the parameters, in order
    grads = backward(dout, cache)                 # one gradient per float array, same order

:func:`user_subject` turns it into the registry's layer convention, so that the one layer
driver (:mod:`reference.core.driver`) runs it: the inputs are the node's inputs (an integer
array, such as class labels, carries no gradient), the parameters are its slots, and the
twin is the node's torch module. ``torch`` is a callable on tensors (inputs positionally,
options by name with their arrays as tensors) or an ``nn.Module`` called on the inputs alone
whose parameters ``params`` maps from the user's names. A twin that raises is
:class:`Skip`: PyTorch itself rejects the case. A twin returning a tuple has several outputs
(``outputs`` names them, the node's signature lists them): the user's forward returns them
before its cache, ``next_h, next_c, cache = forward(...)``, and the backward takes one
upstream gradient per output, ``backward(dnext_h, dnext_c, cache)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from manual.layers.info import LayerInfo, Shape, Signature, Slot
from manual.spec import Node, Spec
from reference.core.compare import torch_options
from reference.core.driver import Subject

TWIN = "twin"  # the user's module inside the node's wrapper: slots are "twin.<name>"


class Skip(Exception):
    """PyTorch itself rejects the case (an empty output, a kernel larger than the input)."""


class Outside(Skip):
    """PyTorch is not finite at finite inputs: the case is outside the reference's domain."""


class _Twin(nn.Module):
    """The user's twin as the node's module; what it raises is :class:`Skip`."""

    def __init__(self, reference: Callable[..., Any] | nn.Module,
                 options: Mapping[str, Any], extra: Mapping[str, Any]) -> None:
        super().__init__()
        self.options = options  # the caller's dict: a later mode's overrides reach it
        self.extra = extra  # tensors handed to a function twin by name (the user's mask)
        if isinstance(reference, nn.Module):
            self.twin = reference
        else:
            self.function = reference

    def forward(self, *inputs: torch.Tensor) -> Any:
        try:
            if hasattr(self, TWIN):
                return self.twin(*inputs)
            return self.function(*inputs, **torch_options(self.options), **self.extra)
        except Exception as error:
            raise Skip(f"PyTorch rejects this case: {type(error).__name__}: {error}") from error


class _UserCache(NamedTuple):
    cache: Any
    real: tuple[bool, ...]  # which of the arrays (inputs, then parameters) get a gradient


def user_subject(forward: Callable[..., Any], backward: Callable[..., Any],
                 reference: Callable[..., Any] | nn.Module, *, options: Mapping[str, Any],
                 params: Mapping[str, str] | None = None, name: str = "layer",
                 outputs: Sequence[str] = ("out",), extra: Mapping[str, Any] | None = None
                 ) -> Subject:
    """The pair and its twin as a :class:`~reference.core.driver.Subject`. ``options`` is the
    dict the twin reads at every call; ``params`` maps the user's parameter names to the
    module's (their shapes are the module's); ``outputs`` names the twin's outputs (several
    when it returns a tuple); ``extra`` is handed to a function twin by keyword."""
    params = dict(params or {})
    found = dict(reference.named_parameters()) if isinstance(reference, nn.Module) else {}
    slots = {user: Slot(tuple(found[theirs].shape),
                        lambda rng, shape: rng.standard_normal(shape), torch=f"{TWIN}.{theirs}")
             for user, theirs in params.items()}
    several = len(outputs) > 1

    def layer_forward(inputs: tuple[np.ndarray, ...], values: Mapping[str, np.ndarray],
                      state: Any, noise: Any, *, training: bool, **given: Any) -> Any:
        arrays = [*inputs, *(values[p] for p in params)]
        outs, cache = split_outputs(forward(*arrays, **given), len(outputs))
        real = tuple(np.asarray(a).dtype.kind == "f" for a in arrays)
        return (tuple(outs) if several else outs[0]), _UserCache(cache, real), {}

    def layer_backward(dy: Any, cache: _UserCache) -> tuple[tuple[Any, ...], dict[str, Any]]:
        upstream = tuple(dy) if several else (dy,)
        grads = gradients(backward(*upstream, cache.cache), cache.real)
        each = list(grads)
        cut = len(each) - len(params)
        return tuple(each[:cut]), dict(zip(params, each[cut:], strict=True))

    def signature(given: Mapping[str, Any], shapes: tuple[Shape, ...]) -> Signature:
        # The output's shape is PyTorch's (the upstream is drawn for it): unknown until then.
        return Signature((), params=slots, outputs={o: () for o in outputs} if several else {})

    def twin(spec: Spec, node: Node) -> nn.Module:
        return _Twin(reference, options, extra if extra is not None else {})

    info = LayerInfo(name=name, forward=layer_forward, backward=layer_backward, torch="",
                     options={}, signature=signature)
    return Subject(info, twin)


def split_outputs(result: Any, count: int) -> tuple[list[Any], Any]:
    """The user's forward result as (outputs, cache): ``(out, cache)``, or for ``count``
    outputs ``(o1, ..., ok, cache)`` or ``((o1, ..., ok), cache)``."""
    if not isinstance(result, tuple):
        raise TypeError(f"forward must return (out, cache), got {type(result).__name__}")
    if count == 1:
        if len(result) != 2:
            raise TypeError(f"forward must return (out, cache), got a tuple of {len(result)}")
        return [result[0]], result[1]
    if len(result) == count + 1:
        return list(result[:count]), result[count]
    if len(result) == 2 and isinstance(result[0], tuple | list) and len(result[0]) == count:
        return list(result[0]), result[1]
    raise TypeError(f"forward must return its {count} outputs and the cache "
                    f"(o1, ..., o{count}, cache), got a tuple of {len(result)}")


def gradients(grads: Any, real: Sequence[bool]) -> list[Any]:
    """The user's gradients, one per array with ``real[i]`` (a float array); ``None`` at the
    others. A backward may return one per float array, or one per array with anything
    (``None``) at an integer input's place (an embedding's ``(None, dW)``)."""
    count = sum(real)
    if count == 1 and not isinstance(grads, tuple | list):
        got = [grads]
    elif isinstance(grads, tuple | list) and len(grads) == len(real) > count:
        got = [g for g, r in zip(grads, real, strict=True) if r]
    else:
        got = list(grads) if isinstance(grads, tuple | list) else [grads]
    found = iter(got)
    return [next(found, None) if r else None for r in real]


def node_name(inputs: Sequence[str]) -> str:
    """The node's name for a pair reading ``inputs``: ``out`` (its tensor is ``forward:
    out``), unless an input is so called."""
    return "out" if "out" not in inputs else "layer_out"
