"""Torch set-up for reproducible comparisons, and the registry's torch callables.

Importing this module configures torch: TF32 off, float32 matmuls at full precision,
deterministic algorithms on. The graph mirror built from a spec is :mod:`reference.core.mirror`.
"""

from __future__ import annotations

import importlib
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from manual.options import Values
from manual.registry import OpInfo

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_float32_matmul_precision("highest")
torch.use_deterministic_algorithms(True)


def resolve(dotted: str) -> Any:
    """The object a dotted name names (``torch.nn.functional.gelu``,
    ``reference.builders.core.linear``): the one resolver of the registries' torch names."""
    module_name, _, attribute = dotted.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def torch_callable(op: OpInfo) -> Callable[..., torch.Tensor]:
    """Resolve the registry's dotted name (``torch.nn.functional.gelu``) to the callable.

    A user's op may give the callable itself. The input is positional-only, so that an
    option may be called ``x``. An array option of the registry (a loss's ``weight``,
    ``pos_weight``: :class:`manual.options.Values`) arrives from a spec as a list and goes to
    PyTorch as a tensor of the input's dtype; a spec's option overrides the registry's
    ``oracle.kwargs`` (softmax's ``dim``); a warning the oracle names as ``quiet`` is ignored.
    """
    function = op.torch if callable(op.torch) else resolve(op.torch)
    arrays = {name for name, option in op.options.items() if isinstance(option, Values)}
    defaults = dict(op.oracle.kwargs)
    # Only for an op whose oracle names a warning: catching warnings costs more than a small
    # op itself.
    quiet = op.oracle.quiet

    def call(x: torch.Tensor, /, *args: Any, **options: Any) -> torch.Tensor:
        kwargs = {**defaults, **{k: torch.tensor(v, dtype=x.dtype)
                                 if k in arrays and isinstance(v, list) else v
                                 for k, v in options.items()}} if options else defaults
        if not quiet:
            return function(x, *args, **kwargs)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=re.escape(quiet))
            return function(x, *args, **kwargs)

    return call


class TorchActivation(nn.Module):
    """A registry activation as a module (so that the network is an ordinary ``nn.Module``)."""

    def __init__(self, op: OpInfo, options: Mapping[str, Any]) -> None:
        super().__init__()
        self.name, self.fn, self.options = op.name, torch_callable(op), dict(options)

    def forward(self, x: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
        return self.fn(x, *others, **self.options)  # others: a loss's target

    def extra_repr(self) -> str:
        return f"{self.name}, {self.options}" if self.options else self.name
