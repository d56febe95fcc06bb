"""Per-step optimizer conformance: both engines take the same steps on the same gradients.

:func:`compare_optimizer` starts a few named parameters from the same values in both
engines, feeds both the same random gradients for ``steps`` steps (``torch.optim`` with
``foreach=False``, so that PyTorch runs its single-tensor arithmetic), and after every step
compares every parameter and every state buffer: ``step 3: layers.0.weight``,
``step 3: state layers.0.weight.exp_avg`` and, under a schedule, ``step 3: lr``.
Whole training runs in lockstep are in :mod:`reference.training.lockstep`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from manual.numerics import Array
from manual.optim.registry import OPTIMIZERS, SCHEDULES, OptimInfo, ScheduleInfo
from manual.random import stream
from manual.registry import Tolerance
from reference.core.compare import compare_arrays
from reference.core.engine import resolve
from reference.core.records import ComparisonRecord, TensorComparison

#: The parameters that the per-step conformance steps: an MLP's, 4 -> 5 -> 3.
PARAM_SHAPES: Mapping[str, tuple[int, ...]] = {
    "layers.0.weight": (5, 4), "layers.0.bias": (5,),
    "layers.2.weight": (3, 5), "layers.2.bias": (3,),
}


def optimizer_info(optimizer: str | OptimInfo) -> OptimInfo:
    if isinstance(optimizer, OptimInfo):
        return optimizer
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer: unknown optimizer {optimizer!r} (known: "
                         f"{', '.join(OPTIMIZERS)})")
    return OPTIMIZERS[optimizer]


def schedule_info(schedule: str | ScheduleInfo | None) -> ScheduleInfo | None:
    if schedule is None or isinstance(schedule, ScheduleInfo):
        return schedule
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: unknown schedule {schedule!r} (known: "
                         f"{', '.join(SCHEDULES)})")
    return SCHEDULES[schedule]


def torch_optimizer(info: OptimInfo, params: Any, options: Mapping[str, Any]
                    ) -> torch.optim.Optimizer:
    """The ``torch.optim`` mirror of ``info`` on ``params``, single-tensor path."""
    return resolve(info.torch)(params, foreach=False, **options)


def torch_scheduler(info: ScheduleInfo, optimizer: torch.optim.Optimizer,
                    options: Mapping[str, Any]) -> Any:
    return resolve(info.torch)(optimizer, **options)


def _missing(name: str, side: str, tolerance: Tolerance) -> TensorComparison:
    return TensorComparison(name=name, shape=[], dtype="", max_abs_error=np.inf,
                            max_rel_error=np.inf, tolerance_ratio=np.inf, worst_index=[],
                            rtol=tolerance.rtol, atol=tolerance.atol, passed=False,
                            problem=f"missing in the {side}")


def compare_state(prefix: str, info: OptimInfo, manual_state: Mapping[str, Array],
                  torch_state: Mapping[str, Any], tolerance: Tolerance,
                  keep_values: bool = False) -> list[TensorComparison]:
    """Every buffer of one parameter's state, through the registry's ``state_map``."""
    out = []
    wanted = {info.state_map.get(k, k): v for k, v in manual_state.items()}
    for key in sorted(set(wanted) | set(torch_state)):
        name = f"{prefix}.{key}"
        if key not in torch_state:
            out.append(_missing(name, "reference", tolerance))
        elif key not in wanted:
            out.append(_missing(name, "manual engine", tolerance))
        else:
            ref = torch_state[key]
            ref = ref.detach().numpy() if isinstance(ref, torch.Tensor) else np.asarray(ref)
            out.append(compare_arrays(name, wanted[key], ref, tolerance, keep_values))
    return out


def _normal(seed: int, what: str, shape: tuple[int, ...], dtype: str) -> Array:
    return stream(seed, "optim", what).standard_normal(shape).astype(dtype)


def _step_both(info: OptimInfo, params: dict[str, Array], states: dict[str, Mapping[str, Array]],
               grads: Mapping[str, Array], tensors: Mapping[str, torch.nn.Parameter],
               options: Mapping[str, Any]) -> None:
    """One manual step of every parameter (``params`` and ``states`` replaced in place), and
    the same gradients handed to the torch parameters for the optimizer's own step."""
    for name in params:
        params[name], states[name] = info.step(params[name], grads[name], states[name],
                                               **options)
        tensors[name].grad = torch.from_numpy(grads[name].copy())


def compare_optimizer(
    optimizer: str | OptimInfo,
    options: Mapping[str, Any] | None = None,
    dtype: str = "float64",
    steps: int = 5,
    seed: int = 0,
    *,
    schedule: str | ScheduleInfo | None = None,
    schedule_options: Mapping[str, Any] | None = None,
    keep_values: bool = False,
) -> ComparisonRecord:
    """``steps`` steps of ``optimizer`` in both engines from the same parameters and gradients.

    Parameters (:data:`PARAM_SHAPES`) and each step's gradients are standard normal draws
    from named streams (:func:`manual.random.stream`, purpose ``optim``: ``param <name>``,
    ``grad <name>@<step>``). Under ``schedule`` the manual rates come from the registry's
    recursion and torch's from its scheduler, stepped after each optimizer step; the
    rate is compared too. Every tensor of every step is in the record, in order.
    """
    info = optimizer_info(optimizer)
    options = info.check_options(options or {})
    sched = schedule_info(schedule)
    sched_options = sched.check_options(schedule_options or {}) if sched else {}
    tolerance = info.tolerance(dtype)
    params = {name: _normal(seed, f"param {name}", shape, dtype)
              for name, shape in PARAM_SHAPES.items()}
    tensors = {name: torch.nn.Parameter(torch.from_numpy(p.copy())) for name, p in
               params.items()}
    reference = torch_optimizer(info, list(tensors.values()), options)
    scheduler = torch_scheduler(sched, reference, sched_options) if sched else None
    base_lr = float(options.get("lr", info.options["lr"].default))
    rates = sched.rates(base_lr, steps, sched_options) if sched else [base_lr] * steps
    states: dict[str, Mapping[str, Array]] = {name: {} for name in params}
    results: list[TensorComparison] = []
    for k in range(1, steps + 1):
        grads = {name: _normal(seed, f"grad {name}@{k}", p.shape, dtype)
                 for name, p in params.items()}
        if sched is not None:
            torch_lr = np.asarray(reference.param_groups[0]["lr"])
            results.append(compare_arrays(f"step {k}: lr", np.asarray(rates[k - 1]), torch_lr,
                                          tolerance, keep_values))
        _step_both(info, params, states, grads, tensors, {**options, "lr": rates[k - 1]})
        reference.step()
        if scheduler is not None:
            scheduler.step()
        for name, tensor in tensors.items():
            results.append(compare_arrays(f"step {k}: {name}", params[name],
                                          tensor.detach().numpy(), tolerance, keep_values))
            results += compare_state(f"step {k}: state {name}", info, states[name],
                                     reference.state[tensor], tolerance, keep_values)
    passed = all(t.passed for t in results)
    recorded = {**options, **({"schedule": sched.name, **sched_options} if sched else {})}
    return ComparisonRecord(
        subject=info.name, kind="optimizer", dtype=dtype, seed=seed, passed=passed,
        first_divergence=next((t.name for t in results if not t.passed), None),
        tolerance_reason=tolerance.reason, tensors=results,
        options={k: list(v) if isinstance(v, tuple) else v for k, v in recorded.items()},
    )
