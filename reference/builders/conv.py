"""PyTorch modules for the convolution and pooling entries (``manual.layers.conv``).

Builder convention: ``builder(info, options, signature, input_shapes, dtype) -> nn.Module``.
Real torch layers (``nn.Conv2d``, ``nn.MaxPool2d``, ...), so that the comparison is against
PyTorch's own kernels. JSON lists become tuples; options left out take PyTorch's defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from manual.layers.info import LayerInfo, Shape, Signature

_CONV = {"conv1d": nn.Conv1d, "conv2d": nn.Conv2d}
_POOL = {"max_pool1d": nn.MaxPool1d, "max_pool2d": nn.MaxPool2d, "avg_pool1d": nn.AvgPool1d,
         "avg_pool2d": nn.AvgPool2d, "adaptive_avg_pool2d": nn.AdaptiveAvgPool2d}
_CONV_KEYS = ("stride", "padding", "dilation", "groups", "bias", "padding_mode")


def _tupled(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def conv(info: LayerInfo, options: Mapping[str, Any], signature: Signature,
         input_shapes: tuple[Shape, ...], dtype: torch.dtype) -> nn.Module:
    """``nn.Conv1d`` / ``nn.Conv2d`` with the input's channels."""
    kwargs = {k: _tupled(options[k]) for k in _CONV_KEYS if k in options}
    return _CONV[info.name](input_shapes[0][0], options["out_channels"],
                            _tupled(options["kernel_size"]), dtype=dtype, **kwargs)


def pool(info: LayerInfo, options: Mapping[str, Any], signature: Signature,
         input_shapes: tuple[Shape, ...], dtype: torch.dtype) -> nn.Module:
    """``nn.MaxPool*`` / ``nn.AvgPool*`` / ``nn.AdaptiveAvgPool2d`` (no parameters)."""
    return _POOL[info.name](**{k: _tupled(v) for k, v in options.items()})
