"""The seed's update step, ``W ← W − 0.1 · ∂L/∂W``, in both engines and from its printed numbers.

The tutorial ends its worked example with one step of gradient descent at α = 0.1. Here
both engines take that step (the manual engine with :func:`manual.optim.sgd`, PyTorch with
``torch.optim.SGD``) from the example's weights on its input, and beside them stands
where the tutorial's own printed gradients would have put the weights. Those gradients
inherit its slip at ∂L/∂z2 (``reports.experiments.seed_figures``), so they are about 18 times too
small and its step moves the weights about 18 times too little.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import manual
from manual.optim import sgd
from reference.core import mirror
from reference.core.run import run_manual, run_torch
from reports.experiments.seed_figures import _PRINTED, SEED_DATA, SEED_SPEC

LR = 0.1
_GRADIENT_FIGURES = {"layers.0.weight": "dL/dW1", "layers.0.bias": "dL/db1",
                     "layers.2.weight": "dL/dW2", "layers.2.bias": "dL/db2"}


@dataclass(frozen=True)
class UpdatedWeight:
    """One parameter before and after the step, flattened (row-major)."""

    name: str
    figure: str
    before: list[float]
    manual: list[float]
    reference: list[float]
    seed: list[float]
    engines_agree: bool
    max_engine_diff: float
    max_seed_diff: float


def _manual_step(spec: manual.Spec, data: manual.Data) -> dict[str, np.ndarray]:
    params = manual.initial_parameters(spec)
    grads = run_manual(spec, data, params=params).param_grads
    return {name: sgd(p, grads[name], {}, lr=LR)[0] for name, p in params.items()}


def _torch_step(spec: manual.Spec, data: manual.Data) -> dict[str, np.ndarray]:
    net = mirror.build(spec)
    slots = net.named_slots("params")
    optimizer = torch.optim.SGD(list(slots.values()), lr=LR, foreach=False)
    run_torch(spec, data, net=net)
    optimizer.step()
    return {name: p.detach().numpy() for name, p in slots.items()}


def seed_update() -> list[UpdatedWeight]:
    """Every parameter of the seed example after one SGD step at lr 0.1."""
    spec = manual.load_spec(SEED_SPEC)
    data = manual.load_data(SEED_DATA, spec)
    before = manual.initial_parameters(spec)
    ours, theirs = _manual_step(spec, data), _torch_step(spec, data)
    printed = {figure: values for figure, _, values, _ in _PRINTED}
    rows = []
    for name, figure in _GRADIENT_FIGURES.items():
        start = before[name].ravel()
        seed = start - LR * np.asarray(printed[figure])
        m, r = ours[name].ravel(), theirs[name].ravel()
        rows.append(UpdatedWeight(
            name, figure, start.tolist(), m.tolist(), r.tolist(), seed.tolist(),
            bool(np.allclose(m, r, rtol=1e-12, atol=1e-15)),
            float(np.max(np.abs(m - r))), float(np.max(np.abs(seed - r)))))
    return rows
