"""Check a user's own hand-written backprop code against PyTorch.

- :func:`check_layer`: a forward/backward pair with parameters, over sweeps and special
  inputs, with state and modes (:mod:`.layer`, :mod:`.cases`, :mod:`.sweep`, :mod:`.state`);
- adapters for other conventions (:mod:`.adapters`): a loss returning ``(loss, dx)``,
  ``fn``/``grad`` activations, layer objects with parameter dicts or the Module protocol,
  scalar autograd engines;
- :func:`check_network`: a user's whole network, value by value, against the spec's torch
  mirror (:mod:`.network`);
- :class:`LayerCase` / :func:`parametrize_layers` for pytest (:mod:`.pytest`, imported on
  demand so that this package does not import pytest).
"""

from reference.checks.adapters import (
    from_activation,
    from_loss,
    from_module,
    from_object,
    from_scalar_autograd,
)
from reference.checks.cases import Case, Labels, Target
from reference.checks.layer import LayerCheck, Skip
from reference.checks.network import NetworkCase, check_network
from reference.checks.suite import LayerCase
from reference.checks.result import LayerResult
from reference.checks.sweep import Check, check_layer, layer_cases

__all__ = [
    "Case", "Check", "Labels", "Target", "LayerCase", "LayerCheck", "LayerResult", "NetworkCase", "Skip",
    "check_layer", "check_network", "from_activation", "from_loss", "from_module",
    "from_object", "from_scalar_autograd", "layer_cases",
]
