r"""Learning-rate schedules as ``torch.optim.lr_scheduler`` computes them.

PyTorch updates the rate recursively from the previous one (``get_lr``), not from the
closed form, and the two differ in the last bits (cosine annealing by a few units in the
last place after a few hundred steps). These functions repeat the recursion in the same
float64 operations, so the rates are the same numbers. ``epoch`` counts scheduler steps:
0 is the rate at construction, and one scheduler step follows each optimizer step.

Each schedule is ``next_lr(lr, base_lr, epoch, **options) -> float``: the rate for
``epoch`` given the rate at ``epoch - 1`` (for ``epoch == 0``, ``lr`` is the base rate).
:func:`rates` runs one from the start.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

NextLr = Callable[..., float]


def step(lr: float, base_lr: float, epoch: int, *, step_size: int, gamma: float = 0.1) -> float:
    r"""``StepLR``: multiply by :math:`\gamma` every ``step_size`` epochs.

    .. math:: \gamma_e = \gamma_0 \cdot \gamma^{\lfloor e / s \rfloor}
    """
    if epoch == 0 or epoch % step_size != 0:
        return lr
    return lr * gamma


def exponential(lr: float, base_lr: float, epoch: int, *, gamma: float) -> float:
    r"""``ExponentialLR``: :math:`\gamma_e = \gamma_{e-1} \cdot \gamma`."""
    return lr if epoch == 0 else lr * gamma


def cosine(lr: float, base_lr: float, epoch: int, *, T_max: int, eta_min: float = 0.0
           ) -> float:
    r"""``CosineAnnealingLR``, by torch's recursion.

    .. math::
        \gamma_e = \eta_{min} + (\gamma_{e-1} - \eta_{min})
        \frac{1 + \cos(\pi e / T)}{1 + \cos(\pi (e - 1) / T)}

    which follows :math:`\eta_{min} + \tfrac12(\gamma_0 - \eta_{min})(1 + \cos(\pi e/T))`;
    past :math:`T` the rate climbs back (at :math:`e - 1 - T \equiv 0 \pmod{2T}` torch
    adds :math:`(\gamma_0 - \eta_{min})(1 - \cos(\pi/T))/2` instead, avoiding 0/0).
    """
    if epoch == 0:
        return lr
    if (epoch - 1 - T_max) % (2 * T_max) == 0:
        return lr + (base_lr - eta_min) * (1 - math.cos(math.pi / T_max)) / 2
    return ((1 + math.cos(math.pi * epoch / T_max))
            / (1 + math.cos(math.pi * (epoch - 1) / T_max)) * (lr - eta_min) + eta_min)


def linear(lr: float, base_lr: float, epoch: int, *, start_factor: float = 1.0 / 3,
           end_factor: float = 1.0, total_iters: int = 5) -> float:
    r"""``LinearLR`` (linear warm-up): the factor moves from ``start_factor`` to
    ``end_factor`` over ``total_iters`` epochs, then stays.

    .. math::
        \gamma_e = \gamma_{e-1}\left(1 + \frac{f_1 - f_0}
        {T f_0 + (e - 1)(f_1 - f_0)}\right), \quad \gamma_0 = f_0\,\gamma_{base}
    """
    if epoch == 0:
        return lr * start_factor
    if epoch > total_iters:
        return lr
    return lr * (1.0 + (end_factor - start_factor)
                 / (total_iters * start_factor + (epoch - 1) * (end_factor - start_factor)))


SCHEDULES: dict[str, NextLr] = {"step": step, "exponential": exponential, "cosine": cosine,
                                "linear": linear}


def rates(schedule: str | NextLr, base_lr: float, count: int, **options: Any) -> list[float]:
    """The rate in force for each of the first ``count`` optimizer steps (by name or function)."""
    next_lr = SCHEDULES[schedule] if isinstance(schedule, str) else schedule
    out, lr = [], base_lr
    for epoch in range(count):
        lr = next_lr(lr, base_lr, epoch, **options)
        out.append(lr)
    return out
