"""Builders for ``linear``, the activations and the graph layers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from manual.layers.info import LayerInfo, Shape, Signature
from reference.core.engine import TorchActivation


class SlotLinear(nn.Linear):
    """``nn.Linear`` without its random initialisation: the weight and bias are slots, which
    the mirror always copies in, so drawing them first is wasted (half of the construction
    time of a small layer) and would consume torch's global generator for nothing."""

    def reset_parameters(self) -> None:
        pass


def linear(info: LayerInfo, options: Mapping[str, Any], signature: Signature,
           input_shapes: tuple[Shape, ...], dtype: torch.dtype) -> nn.Module:
    return SlotLinear(input_shapes[0][-1], options["out_features"],
                      bias="bias" in signature.params, dtype=dtype)


def activation(info: LayerInfo, options: Mapping[str, Any], signature: Signature,
               input_shapes: tuple[Shape, ...], dtype: torch.dtype) -> nn.Module:
    if info.op is None:
        raise TypeError(f"layer {info.name!r}: an activation's entry must point at its OpInfo")
    return TorchActivation(info.op, options)


class Add(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y


class Concat(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=self.dim)


def add(info: LayerInfo, options: Mapping[str, Any], signature: Signature,
        input_shapes: tuple[Shape, ...], dtype: torch.dtype) -> nn.Module:
    return Add()


def concat(info: LayerInfo, options: Mapping[str, Any], signature: Signature,
           input_shapes: tuple[Shape, ...], dtype: torch.dtype) -> nn.Module:
    return Concat(options.get("dim", 1))


def flatten(info: LayerInfo, options: Mapping[str, Any], signature: Signature,
            input_shapes: tuple[Shape, ...], dtype: torch.dtype) -> nn.Module:
    return nn.Flatten(options.get("start_dim", 1), options.get("end_dim", -1))
