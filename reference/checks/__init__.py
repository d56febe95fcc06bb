"""Check a user's own hand-written backprop code against PyTorch.

- :func:`check_layer`: a forward/backward pair with parameters, over sweeps and special
  inputs, with state and modes (:mod:`.layer`, :mod:`.cases`, :mod:`.sweep`, :mod:`.state`);
- adapters for other conventions (:mod:`.adapters`): a loss returning ``(loss, dx)``,
  ``fn``/``grad`` activations, layer objects with parameter dicts or the Module protocol,
  scalar autograd engines;
- :func:`check_network`: a user's whole network, value by value, against the spec's torch
  mirror (:mod:`.network`), or a user's model object and its twin (:mod:`.model`);
- :func:`check_dropout`: a dropout-like layer by its statistics (:mod:`.dropout`);
- :mod:`.course`: PyTorch twins for the course's recurrent layers;
- :class:`LayerCase` / :func:`parametrize_layers` for pytest (:mod:`.pytest`, imported on
  demand so that this package does not import pytest).
"""

from reference.checks import course
from reference.checks.adapters import (
    from_activation,
    from_loss,
    from_module,
    from_object,
    from_scalar_autograd,
    from_scalar_model,
)
from reference.checks.cases import Case, Labels, Target
from reference.checks.dropout import DropoutCase, check_dropout
from reference.checks.layer import LayerCheck, Skip
from reference.checks.model import ModelCase, check_model
from reference.checks.network import NetworkCase, check_network
from reference.checks.result import LayerResult
from reference.checks.suite import LayerCase
from reference.checks.sweep import Check, check_layer, layer_cases

__all__ = [
    "Case", "Check", "DropoutCase", "Labels", "LayerCase", "LayerCheck", "LayerResult",
    "ModelCase", "NetworkCase", "Skip", "Target", "check_dropout", "check_layer", "check_model",
    "check_network", "course", "from_activation", "from_loss", "from_module", "from_object",
    "from_scalar_autograd", "from_scalar_model", "layer_cases",
]
