"""Torch builders for ``select``, ``transpose``, ``permute``, ``reshape`` and ``matmul``
(``builder(info, options, signature, input_shapes, dtype) -> nn.Module``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn


class Lambda(nn.Module):
    """A parameterless module around one torch function of the inputs."""

    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.fn(*inputs)


def select(info: Any, options: Mapping[str, Any], signature: Any, input_shapes: Any,
           dtype: torch.dtype) -> nn.Module:
    dim, index = options.get("dim", 1), options["index"]
    return Lambda(lambda x: torch.select(x, dim, index))


def transpose(info: Any, options: Mapping[str, Any], signature: Any, input_shapes: Any,
              dtype: torch.dtype) -> nn.Module:
    dim0, dim1 = options.get("dim0", 1), options.get("dim1", 2)
    return Lambda(lambda x: torch.transpose(x, dim0, dim1))


def permute(info: Any, options: Mapping[str, Any], signature: Any, input_shapes: Any,
            dtype: torch.dtype) -> nn.Module:
    dims = tuple(options["dims"])
    return Lambda(lambda x: x.permute(dims))


def reshape(info: Any, options: Mapping[str, Any], signature: Any, input_shapes: Any,
            dtype: torch.dtype) -> nn.Module:
    shape = tuple(options["shape"])
    return Lambda(lambda x: x.reshape(x.shape[0], *shape))


def matmul(info: Any, options: Mapping[str, Any], signature: Any, input_shapes: Any,
           dtype: torch.dtype) -> nn.Module:
    return Lambda(torch.matmul)
