"""PyTorch modules for the convolution and pooling entries (``manual.layers.conv``).

Builder convention: ``builder(info, options, signature, input_shapes, dtype) -> nn.Module``.
Real torch layers (``nn.Conv2d``, ``nn.MaxPool2d``, ...), so that the comparison is against
PyTorch's own kernels. The window options come as the signature stored them at load (ints and
lists as tuples, ``"same"`` and null as given: PyTorch resolves those itself); options left
out take PyTorch's defaults. One builder per entry (``info.torch`` names it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from manual.layers.info import LayerInfo, Shape, Signature

Builder = Callable[[LayerInfo, Mapping[str, Any], Signature | None, tuple[Shape, ...],
                    torch.dtype], nn.Module]
_CONV_KEYS = ("stride", "padding", "dilation", "groups", "bias", "padding_mode")
_POOL_KEYS = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "count_include_pad",
              "divisor_override", "output_size")


def _stored(options: Mapping[str, Any], signature: Signature | None) -> dict[str, Any]:
    """The spec's options with what the signature stored for them (never its geometry);
    without a signature (a configuration the signature refuses), lists as tuples."""
    if signature is None:
        return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    return {k: v for k, v in {**options, **signature.options}.items() if k != "geometry"}


def _conv(module: type[nn.Module]) -> Builder:
    def build(info: LayerInfo, options: Mapping[str, Any], signature: Signature | None,
              input_shapes: tuple[Shape, ...], dtype: torch.dtype) -> nn.Module:
        """``nn.Conv1d`` / ``nn.Conv2d`` with the input's channels."""
        stored = _stored(options, signature)
        kwargs = {k: stored[k] for k in _CONV_KEYS if k in stored}
        return module(input_shapes[0][0], stored["out_channels"], stored["kernel_size"],
                      dtype=dtype, **kwargs)
    return build


def _pool(module: type[nn.Module]) -> Builder:
    def build(info: LayerInfo, options: Mapping[str, Any], signature: Signature | None,
              input_shapes: tuple[Shape, ...], dtype: torch.dtype) -> nn.Module:
        """``nn.MaxPool*`` / ``nn.AvgPool*`` / ``nn.AdaptiveAvgPool2d`` (no parameters)."""
        stored = _stored(options, signature)
        return module(**{k: v for k, v in stored.items() if k in _POOL_KEYS})
    return build


conv1d, conv2d = _conv(nn.Conv1d), _conv(nn.Conv2d)
max_pool1d, max_pool2d = _pool(nn.MaxPool1d), _pool(nn.MaxPool2d)
avg_pool1d, avg_pool2d = _pool(nn.AvgPool1d), _pool(nn.AvgPool2d)
adaptive_avg_pool2d = _pool(nn.AdaptiveAvgPool2d)
