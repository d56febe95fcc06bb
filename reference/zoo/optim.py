"""The optimizer bug zoo: classic mistakes in optimizers and schedules, each to be caught.

A mutant is a replacement registry entry (``dataclasses.replace(entry, step=...)``), handed
to :func:`reference.training.optimizers.compare_optimizer` directly; nothing is monkeypatched.
:func:`conformance_kill` runs the per-step conformance over the registry's variants in
both dtypes and names the first case and tensor at which the mutant is caught. Some
mistakes only show under some options (a momentum buffer started at zero is exactly
right when ``dampening`` is 0), which is why the registry's variants reach every option.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from manual.numerics import Array
from manual.optim import OPTIMIZERS, SCHEDULES, schedules, steps
from manual.optim.registry import OptimInfo, ScheduleInfo
from manual.spec import DTYPES
from reference.training.optimizers import compare_optimizer

STEPS = 6


@dataclass(frozen=True)
class OptimMutant:
    """One mistake: the registry entry it replaces (an optimizer or a schedule) and how."""

    name: str
    description: str
    entry: Callable[[], OptimInfo | ScheduleInfo]


@dataclass(frozen=True)
class OptimKill:
    """Where the conformance caught a mutant (``None`` fields when it lived)."""

    mutant: str
    description: str
    killed: bool
    case: str | None
    tensor: str | None


def _adam_no_bias_correction(param: Array, grad: Array, state: Any, *, lr: float = 1e-3,
                             eps: float = 1e-8, **options: Any) -> tuple[Array, dict[str, Array]]:
    # the moments as Adam keeps them, then m / (sqrt(v) + eps) with neither correction
    _, new_state = steps.adam(param, grad, state, lr=lr, eps=eps, **options)
    second = new_state.get("max_exp_avg_sq", new_state["exp_avg_sq"])
    denom = np.sqrt(second) + param.dtype.type(eps)
    return param - param.dtype.type(lr) * new_state["exp_avg"] / denom, new_state


def _adamw_coupled(param: Array, grad: Array, state: Any, **options: Any
                   ) -> tuple[Array, dict[str, Array]]:
    return steps.adam(param, grad, state, **options, decoupled_weight_decay=False)


def _sgd_buffer_from_zero(param: Array, grad: Array, state: Any, **options: Any
                          ) -> tuple[Array, dict[str, Array]]:
    if options.get("momentum", 0) != 0 and "momentum_buffer" not in state:
        state = {"momentum_buffer": np.zeros_like(param)}
    return steps.sgd(param, grad, state, **options)


def _sgd_nesterov_old_buffer(param: Array, grad: Array, state: Any, **options: Any
                             ) -> tuple[Array, dict[str, Array]]:
    new, new_state = steps.sgd(param, grad, state, **options)
    if not options.get("nesterov") or "momentum_buffer" not in state:
        return new, new_state
    # looks ahead along the buffer before this step's update instead of after it
    dt = param.dtype.type
    g = -grad if options.get("maximize") else grad
    if options.get("weight_decay", 0):
        g = g + dt(options["weight_decay"]) * param
    look_ahead = g + dt(options["momentum"]) * state["momentum_buffer"]
    return param - dt(options["lr"]) * look_ahead, new_state


def _rmsprop_eps_inside_sqrt(param: Array, grad: Array, state: Any, *, lr: float = 1e-2,
                             eps: float = 1e-8, momentum: float = 0, **options: Any
                             ) -> tuple[Array, dict[str, Array]]:
    # the buffers as RMSprop keeps them, then g / sqrt(v + eps) instead of g / (sqrt(v) + eps)
    _, new_state = steps.rmsprop(param, grad, state, lr=lr, eps=eps, momentum=momentum,
                                 **options)
    dt = param.dtype.type
    g = -grad if options.get("maximize") else grad
    if options.get("weight_decay", 0):
        g = g + dt(options["weight_decay"]) * param
    square = new_state["square_avg"]
    if "grad_avg" in new_state:
        square = square - new_state["grad_avg"] * new_state["grad_avg"]
    avg = np.sqrt(square + dt(eps))
    if momentum > 0:
        buf = state.get("momentum_buffer", np.zeros_like(param)) * dt(momentum) + g / avg
        return param - dt(lr) * buf, {**new_state, "momentum_buffer": buf}
    return param - dt(lr) * g / avg, new_state


def _step_schedule_early(lr: float, base_lr: float, epoch: int, **options: Any) -> float:
    return schedules.step(lr, base_lr, epoch + 1, **options) if epoch else lr


def _linear_warmup_late(lr: float, base_lr: float, epoch: int, **options: Any) -> float:
    # the warm-up factor first applied one step late: epoch e uses e - 1's factor
    return lr if epoch == 0 else schedules.linear(lr, base_lr, epoch - 1, **options)


def _optimizer(name: str, step: Callable[..., Any]) -> Callable[[], OptimInfo]:
    return lambda: dataclasses.replace(OPTIMIZERS[name], step=step)


def _schedule(name: str, next_lr: Callable[..., float]) -> Callable[[], ScheduleInfo]:
    return lambda: dataclasses.replace(SCHEDULES[name], next_lr=next_lr)


MUTANTS: tuple[OptimMutant, ...] = (
    OptimMutant("adam_no_bias_correction", "Adam without 1/(1 - beta^t): the first steps are "
                "~10x too short", _optimizer("adam", _adam_no_bias_correction)),
    OptimMutant("adamw_coupled_decay", "AdamW's weight decay added to the gradient (Adam's L2) "
                "instead of decoupled", _optimizer("adamw", _adamw_coupled)),
    OptimMutant("sgd_momentum_from_zero", "SGD's momentum buffer started at zero instead of at "
                "the first gradient", _optimizer("sgd", _sgd_buffer_from_zero)),
    OptimMutant("sgd_nesterov_old_buffer", "Nesterov's look-ahead along the buffer before this "
                "step's update", _optimizer("sgd", _sgd_nesterov_old_buffer)),
    OptimMutant("rmsprop_eps_inside_sqrt", "RMSprop's eps inside the square root: "
                "sqrt(v + eps) instead of sqrt(v) + eps",
                _optimizer("rmsprop", _rmsprop_eps_inside_sqrt)),
    OptimMutant("step_schedule_early", "StepLR decays one step early",
                _schedule("step", _step_schedule_early)),
    OptimMutant("linear_warmup_late", "LinearLR's warm-up factor applied one step late",
                _schedule("linear", _linear_warmup_late)),
)


def conformance_kill(mutant: OptimMutant, steps_: int = STEPS) -> OptimKill:
    """Run the mutant through every variant of its entry, both dtypes; the first failure."""
    entry = mutant.entry()
    for options in entry.variants:
        for dtype in DTYPES[::-1]:  # float64 first: a kill there is exact, not rounding
            if isinstance(entry, OptimInfo):
                record = compare_optimizer(entry, options, dtype, steps_, seed=5)
            else:
                record = compare_optimizer("sgd", {"lr": 0.1, "momentum": 0.9}, dtype, 10,
                                           seed=2, schedule=entry, schedule_options=options)
            if not record.passed:
                case = f"{entry.name}({', '.join(f'{k}={v}' for k, v in options.items())})"
                return OptimKill(mutant.name, mutant.description, True, f"{case} {dtype}",
                                 record.first_divergence)
    return OptimKill(mutant.name, mutant.description, False, None, None)
