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
:class:`Skip`: PyTorch itself rejects the case.
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


class _Twin(nn.Module):
    """The user's twin as the node's module; what it raises is :class:`Skip`."""

    def __init__(self, reference: Callable[..., Any] | nn.Module,
                 options: Mapping[str, Any]) -> None:
        super().__init__()
        self.options = options  # the caller's dict: a later mode's overrides reach it
        if isinstance(reference, nn.Module):
            self.twin = reference
        else:
            self.function = reference

    def forward(self, *inputs: torch.Tensor) -> Any:
        try:
            if hasattr(self, TWIN):
                return self.twin(*inputs)
            return self.function(*inputs, **torch_options(self.options))
        except Exception as error:
            raise Skip(f"PyTorch rejects this case: {type(error).__name__}: {error}") from error


class _UserCache(NamedTuple):
    cache: Any
    real: tuple[bool, ...]  # which of the arrays (inputs, then parameters) get a gradient


def user_subject(forward: Callable[..., tuple[Any, Any]], backward: Callable[[Any, Any], Any],
                 reference: Callable[..., Any] | nn.Module, *, options: Mapping[str, Any],
                 params: Mapping[str, str] | None = None, name: str = "layer") -> Subject:
    """The pair and its twin as a :class:`~reference.core.driver.Subject`. ``options`` is the
    dict the twin reads at every call; ``params`` maps the user's parameter names to the
    module's (their shapes are the module's)."""
    params = dict(params or {})
    found = dict(reference.named_parameters()) if isinstance(reference, nn.Module) else {}
    slots = {user: Slot(tuple(found[theirs].shape),
                        lambda rng, shape: rng.standard_normal(shape), torch=f"{TWIN}.{theirs}")
             for user, theirs in params.items()}

    def layer_forward(inputs: tuple[np.ndarray, ...], values: Mapping[str, np.ndarray],
                      state: Any, noise: Any, *, training: bool, **given: Any) -> Any:
        arrays = [*inputs, *(values[p] for p in params)]
        out, cache = forward(*arrays, **given)
        return out, _UserCache(cache, tuple(np.asarray(a).dtype.kind == "f" for a in arrays)), {}

    def layer_backward(dy: Any, cache: _UserCache) -> tuple[tuple[Any, ...], dict[str, Any]]:
        grads = backward(dy, cache.cache)
        count = sum(cache.real)
        got = iter([grads] if count == 1 and not isinstance(grads, tuple | list) else grads)
        each = [next(got) if real else None for real in cache.real]
        return tuple(each[:len(each) - len(params)]), dict(zip(params, each[len(each)
                                                                             - len(params):],
                                                               strict=True))

    def signature(given: Mapping[str, Any], shapes: tuple[Shape, ...]) -> Signature:
        # The output's shape is PyTorch's (the upstream is drawn for it): unknown until then.
        return Signature((), params=slots)

    def twin(spec: Spec, node: Node) -> nn.Module:
        return _Twin(reference, options)

    info = LayerInfo(name=name, forward=layer_forward, backward=layer_backward, torch="",
                     options={}, signature=signature)
    return Subject(info, twin)


def node_name(inputs: Sequence[str]) -> str:
    """The node's name for a pair reading ``inputs``: ``out`` (its tensor is ``forward:
    out``), unless an input is so called."""
    return "out" if "out" not in inputs else "layer_out"
