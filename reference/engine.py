"""Torch set-up for reproducible comparisons, and the registry's torch callables.

Importing this module configures torch: TF32 off, float32 matmuls at full precision,
deterministic algorithms on. The graph mirror built from a spec is :mod:`reference.mirror`.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from manual.registry import OpInfo

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_float32_matmul_precision("highest")
torch.use_deterministic_algorithms(True)


def torch_callable(op: OpInfo) -> Callable[..., torch.Tensor]:
    """Resolve the registry's dotted name (``torch.nn.functional.gelu``) to the callable."""
    module_name, _, attribute = op.torch.rpartition(".")
    function = getattr(importlib.import_module(module_name), attribute)

    def call(x: torch.Tensor, *args: Any, **options: Any) -> torch.Tensor:
        # Array-valued options (a loss's weight, pos_weight) arrive as lists; a spec's option
        # overrides the registry's torch_kwargs (softmax's dim).
        given = {k: torch.tensor(v, dtype=x.dtype) if isinstance(v, list | np.ndarray) else v
                 for k, v in options.items()}
        with warnings.catch_warnings():
            # kl_div warns that 'mean' will change meaning; we test today's meaning.
            warnings.filterwarnings("ignore", message="reduction: 'mean' divides")
            return function(x, *args, **{**op.torch_kwargs, **given})

    return call


class TorchActivation(nn.Module):
    """A registry activation as a module (so that the network is an ordinary ``nn.Module``)."""

    def __init__(self, op: OpInfo, options: Mapping[str, Any]) -> None:
        super().__init__()
        self.name, self.fn, self.options = op.name, torch_callable(op), dict(options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x, **self.options)

    def extra_repr(self) -> str:
        return f"{self.name}, {self.options}" if self.options else self.name
