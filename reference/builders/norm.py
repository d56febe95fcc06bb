"""Torch modules mirroring the norm, dropout and embedding layers (PyTorch's own kernels).

Builder convention: ``builder(info, options, signature, input_shapes, dtype) -> nn.Module``
with ``input_shapes`` per sample (no batch). Every slot of the signature is an attribute of
the module under its ``torch`` name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from manual.layers.info import LayerInfo, Shape, Signature

_BATCH_NORMS: Mapping[int, type[nn.Module]] = {
    1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}


def batch_norm(info: LayerInfo, options: Mapping[str, Any], signature: Signature,
               input_shapes: tuple[Shape, ...], dtype: torch.dtype) -> nn.Module:
    """``nn.BatchNorm1d`` for ``(N, C)`` and ``(N, C, L)``, ``2d`` for images, ``3d`` for
    volumes."""
    shape = input_shapes[0]
    return _BATCH_NORMS[len(shape)](
        shape[0], eps=options.get("eps", 1e-5), momentum=options.get("momentum", 0.1),
        affine=options.get("affine", True),
        track_running_stats=options.get("track_running_stats", True), dtype=dtype)


def layer_norm(info: LayerInfo, options: Mapping[str, Any], signature: Signature,
               input_shapes: tuple[Shape, ...], dtype: torch.dtype) -> nn.Module:
    raw = options.get("normalized_shape")
    shape = input_shapes[0][-1:] if raw is None else ([raw] if isinstance(raw, int) else raw)
    return nn.LayerNorm(list(shape), eps=options.get("eps", 1e-5),
                        elementwise_affine=options.get("elementwise_affine", True),
                        bias=options.get("bias", True), dtype=dtype)


def group_norm(info: LayerInfo, options: Mapping[str, Any], signature: Signature,
               input_shapes: tuple[Shape, ...], dtype: torch.dtype) -> nn.Module:
    return nn.GroupNorm(options["num_groups"], input_shapes[0][0],
                        eps=options.get("eps", 1e-5), affine=options.get("affine", True),
                        dtype=dtype)


class MaskedDropout(nn.Module):
    """Dropout with the harness's keep-mask (``self.noise["mask"]``) in place of torch's RNG.

    Computes what ``torch.nn.functional.dropout`` computes from its Bernoulli noise:
    ``x * (mask / (1 - p))`` in train mode (``x * 0`` for ``p = 1``), ``x`` in eval mode.
    ``tests/test_norm_layers.py`` checks that ``F.dropout`` itself keeps at rate ``1 - p``
    and scales by ``1 / (1 - p)``.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.noise: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if "mask" not in self.noise:
            raise ValueError("dropout: needs a keep-mask (noise 'mask') in train mode; the "
                             "harness draws it with manual.draw_noise")
        mask = self.noise["mask"].to(x.dtype)
        if self.p == 1:
            return x * torch.zeros((), dtype=x.dtype)
        return x * mask.div(1 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def dropout(info: LayerInfo, options: Mapping[str, Any], signature: Signature,
            input_shapes: tuple[Shape, ...], dtype: torch.dtype) -> nn.Module:
    return MaskedDropout(options.get("p", 0.5))


def embedding(info: LayerInfo, options: Mapping[str, Any], signature: Signature,
              input_shapes: tuple[Shape, ...], dtype: torch.dtype) -> nn.Module:
    return nn.Embedding(options["num_embeddings"], options["embedding_dim"],
                        padding_idx=options.get("padding_idx"), dtype=dtype)
