"""The PyTorch mirror of a spec: same layers, same parameters, same dtype.

Importing this module configures torch for reproducible comparisons: TF32 off,
float32 matmuls at full precision, deterministic algorithms on.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from manual.network import initial_parameters
from manual.registry import ACTIVATIONS, LOSSES, OpInfo
from manual.spec import Spec

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_float32_matmul_precision("highest")
torch.use_deterministic_algorithms(True)

# Arguments that the manual engine fixes and PyTorch needs spelled out.
_FIXED_KWARGS: Mapping[str, Mapping[str, Any]] = {
    "softmax": {"dim": -1}, "log_softmax": {"dim": -1},
}


def torch_callable(op: OpInfo) -> Callable[..., torch.Tensor]:
    """Resolve the registry's dotted name (``torch.nn.functional.gelu``) to the callable."""
    module_name, _, attribute = op.torch.rpartition(".")
    function = getattr(importlib.import_module(module_name), attribute)
    fixed = _FIXED_KWARGS.get(op.name, {})

    def call(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        # Array-valued options (a loss's weight, pos_weight) arrive as lists; a spec's option
        # overrides a fixed default (softmax's dim).
        given = {k: torch.tensor(v, dtype=x.dtype) if isinstance(v, list | np.ndarray) else v
                 for k, v in kwargs.items()}
        with warnings.catch_warnings():
            # kl_div warns that 'mean' will change meaning; we test today's meaning.
            warnings.filterwarnings("ignore", message="reduction: 'mean' divides")
            return function(x, *args, **{**fixed, **given})

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


class TorchNetwork(nn.Module):
    """``layers`` is a ModuleList, so parameter names match the manual engine's."""

    def __init__(self, spec: Spec, params: Mapping[str, np.ndarray]) -> None:
        super().__init__()
        self.spec = spec
        modules: list[nn.Module] = []
        width = spec.input_shape[0]
        for i, layer in enumerate(spec.layers):
            if layer.type == "linear":
                out = layer.options["out_features"]
                has_bias = f"layers.{i}.bias" in params
                linear = nn.Linear(width, out, bias=has_bias, dtype=getattr(torch, spec.dtype))
                with torch.no_grad():
                    linear.weight.copy_(torch.from_numpy(params[f"layers.{i}.weight"]))
                    if has_bias:
                        linear.bias.copy_(torch.from_numpy(params[f"layers.{i}.bias"]))
                modules.append(linear)
                width = out
            else:
                modules.append(TorchActivation(ACTIVATIONS[layer.type], layer.options))
        self.layers = nn.ModuleList(modules)
        self.loss_fn = torch_callable(LOSSES[spec.loss.type])
        self.loss_options = dict(spec.loss.options)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for layer in self.layers:
            x = layer(x)
            outputs.append(x)
        return outputs


@dataclass
class TorchRun:
    """Everything one forward and backward pass of the torch network produced, as numpy."""

    outputs: list[np.ndarray]
    loss: np.ndarray
    upstream: list[np.ndarray]
    loss_grad: np.ndarray
    input_grad: np.ndarray
    grads: dict[str, np.ndarray]


def build(spec: Spec, params: Mapping[str, np.ndarray] | None = None) -> TorchNetwork:
    """Build the torch network with the manual engine's initial parameters (bit-identical)."""
    return TorchNetwork(spec, initial_parameters(spec) if params is None else params)


def run(net: TorchNetwork, x: np.ndarray, y: np.ndarray, dloss: np.ndarray) -> TorchRun:
    """One forward and backward pass; every intermediate output keeps its gradient."""
    net.zero_grad(set_to_none=False)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    outputs = net(tx)
    for out in outputs:
        out.retain_grad()
    top = outputs[-1] if outputs else tx
    top.retain_grad()
    loss = net.loss_fn(top, torch.from_numpy(y), **net.loss_options)
    loss.backward(torch.from_numpy(np.asarray(dloss, dtype=x.dtype)))

    def grad_of(t: torch.Tensor) -> np.ndarray:
        return np.zeros(tuple(t.shape), x.dtype) if t.grad is None else t.grad.detach().numpy()

    return TorchRun(
        outputs=[o.detach().numpy() for o in outputs],
        loss=loss.detach().numpy(),
        upstream=[grad_of(o) for o in outputs],
        loss_grad=grad_of(top),
        input_grad=grad_of(tx),
        grads={name: grad_of(p) for name, p in net.named_parameters()},
    )
