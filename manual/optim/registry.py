"""The optimizer registry, beside the op registry: one frozen entry per optimizer.

Each :class:`OptimInfo` names the manual step function, the ``torch.optim`` class that
mirrors it (a dotted name, so this module never imports torch), its options with
PyTorch's defaults and what values they accept, the variants that the per-step
conformance runs, how each state buffer is called in ``optimizer.state[p]``, and any
tolerance override with its reason. :data:`SCHEDULES` does the same for learning-rate
schedules. Conformance tests, the bug zoo, the CLI and the report iterate these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from manual.optim import schedules, steps
from manual.options import Flag, Real
from manual.registry import DEFAULT_TOLERANCES, Tolerance

Options = Mapping[str, Any]


@dataclass(frozen=True)
class Betas:
    """A pair of coefficients, each in ``[0, 1)`` (Adam's ``betas``)."""

    default: tuple[float, float]

    def check(self, value: object) -> str | None:
        if not isinstance(value, list | tuple) or len(value) != 2:
            return f"must be a pair of numbers, got {value!r}"
        for beta in value:
            if isinstance(beta, bool) or not isinstance(beta, int | float):
                return f"must be a pair of numbers, got {value!r}"
            if not 0 <= beta < 1:
                return f"must both lie in [0, 1), got {value!r}"
        return None


@dataclass(frozen=True)
class Count:
    """A positive integer (a number of epochs)."""

    default: int

    def check(self, value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return f"must be a positive integer, got {value!r}"
        return None


OptimOption = Real | Flag | Betas | Count

# Both engines do the same float64 operations in the same order; PyTorch's CPU kernels
# fuse some multiply-adds, which moves a result by an ulp or so per step. The default
# float64 tolerance (1e-7) would hide a wrong formula whose effect is small (eps inside
# RMSprop's square root moves a step by ~1e-8), so float64 is held to far less.
_FLOAT64 = Tolerance(1e-10, 1e-12, "same float64 operations in the same order; fused "
                     "multiply-adds in torch's kernels differ by about an ulp per step")


@dataclass(frozen=True)
class OptimInfo:
    """Everything the harness knows about one optimizer.

    ``step(param, grad, state, **options) -> (param, state)`` is pure; ``state`` is empty
    before the first step. ``state_map`` maps each manual state name to the key of
    ``torch.optim.Optimizer.state[p]``. ``variants`` are option sets (``lr`` included) that
    the per-step conformance runs; together they reach every option.
    """

    name: str
    step: Callable[..., Any]
    torch: str
    options: Mapping[str, OptimOption]
    variants: tuple[Options, ...]
    state_map: Mapping[str, str]
    tolerances: Mapping[str, Tolerance] = field(
        default_factory=lambda: MappingProxyType({"float64": _FLOAT64}))

    def defaults(self) -> dict[str, Any]:
        return {name: option.default for name, option in self.options.items()}

    def tolerance(self, dtype: str) -> Tolerance:
        return self.tolerances.get(dtype, DEFAULT_TOLERANCES[dtype])

    def check_options(self, given: Options, where: str = "") -> dict[str, Any]:
        """``given`` validated against :attr:`options` (one-line ``ValueError`` otherwise)."""
        where = where or f"optimizer {self.name}"
        return _check(where, self.options, given)


def _check(where: str, declared: Mapping[str, Any], given: Options) -> dict[str, Any]:
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ValueError(f"{where}: unknown option {unknown[0]!r} (known options: "
                         f"{', '.join(sorted(declared))})")
    for name, value in given.items():
        problem = declared[name].check(value)
        if problem:
            raise ValueError(f"{where}: {name} {problem}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}


def _lr(default: float) -> Real:
    return Real(default, low=0.0)


_NONNEG = Real(0.0, low=0.0)
_MAXIMIZE = Flag(False)
_ADAM_OPTIONS: dict[str, OptimOption] = {
    "betas": Betas((0.9, 0.999)), "eps": Real(1e-8, low=0.0), "weight_decay": _NONNEG,
    "amsgrad": Flag(False), "maximize": _MAXIMIZE,
}
_ADAM_STATE = MappingProxyType({"step": "step", "exp_avg": "exp_avg",
                                "exp_avg_sq": "exp_avg_sq", "max_exp_avg_sq": "max_exp_avg_sq"})

_ENTRIES = (
    OptimInfo(
        "sgd", steps.sgd, "torch.optim.SGD",
        {"lr": _lr(1e-3), "momentum": _NONNEG, "dampening": Real(0.0),
         "weight_decay": _NONNEG, "nesterov": Flag(False), "maximize": _MAXIMIZE},
        ({"lr": 0.1}, {"lr": 0.1, "momentum": 0.9}, {"lr": 0.1, "momentum": 0.9,
                                                     "dampening": 0.5},
         {"lr": 0.1, "momentum": 0.9, "nesterov": True},
         {"lr": 0.1, "momentum": 0.5, "nesterov": True, "weight_decay": 0.1},
         {"lr": 0.1, "weight_decay": 0.1, "maximize": True}),
        MappingProxyType({"momentum_buffer": "momentum_buffer"}),
    ),
    OptimInfo(
        "adam", steps.adam, "torch.optim.Adam", {"lr": _lr(1e-3), **_ADAM_OPTIONS},
        ({"lr": 0.01}, {"lr": 0.01, "weight_decay": 0.1}, {"lr": 0.01, "amsgrad": True},
         {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-4, "maximize": True}),
        _ADAM_STATE,
    ),
    OptimInfo(
        "adamw", steps.adamw, "torch.optim.AdamW",
        {"lr": _lr(1e-3), **_ADAM_OPTIONS, "weight_decay": Real(1e-2, low=0.0)},
        ({"lr": 0.01}, {"lr": 0.01, "weight_decay": 0.1},
         {"lr": 0.01, "amsgrad": True, "maximize": True},
         {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-4}),
        _ADAM_STATE,
    ),
    OptimInfo(
        "rmsprop", steps.rmsprop, "torch.optim.RMSprop",
        {"lr": _lr(1e-2), "alpha": Real(0.99, low=0.0), "eps": Real(1e-8, low=0.0),
         "weight_decay": _NONNEG, "momentum": _NONNEG, "centered": Flag(False),
         "maximize": _MAXIMIZE},
        ({}, {"centered": True}, {"momentum": 0.9}, {"lr": 0.05, "eps": 1e-3, "alpha": 0.9},
         {"centered": True, "momentum": 0.5, "weight_decay": 0.1, "maximize": True}),
        MappingProxyType({"step": "step", "square_avg": "square_avg",
                          "momentum_buffer": "momentum_buffer", "grad_avg": "grad_avg"}),
    ),
    OptimInfo(
        "adagrad", steps.adagrad, "torch.optim.Adagrad",
        {"lr": _lr(1e-2), "lr_decay": _NONNEG, "weight_decay": _NONNEG,
         "initial_accumulator_value": _NONNEG, "eps": Real(1e-10, low=0.0),
         "maximize": _MAXIMIZE},
        ({"lr": 0.1}, {"lr": 0.1, "lr_decay": 0.1},
         {"lr": 0.1, "initial_accumulator_value": 0.5, "weight_decay": 0.1},
         {"lr": 0.1, "eps": 1e-3, "maximize": True}),
        MappingProxyType({"step": "step", "sum": "sum"}),
    ),
)
OPTIMIZERS: Mapping[str, OptimInfo] = MappingProxyType({o.name: o for o in _ENTRIES})


@dataclass(frozen=True)
class ScheduleInfo:
    """One learning-rate schedule: its recursion, its torch class, options and variants.

    ``required`` names the options that torch's constructor has no default for (the
    declared default there only documents a typical value).
    """

    name: str
    next_lr: schedules.NextLr
    torch: str
    options: Mapping[str, OptimOption]
    variants: tuple[Options, ...]
    required: tuple[str, ...] = ()

    def check_options(self, given: Options) -> dict[str, Any]:
        missing = [k for k in self.required if k not in given]
        if missing:
            raise ValueError(f"schedule {self.name}: missing option {missing[0]!r}")
        return _check(f"schedule {self.name}", self.options, given)

    def rates(self, base_lr: float, count: int, options: Options) -> list[float]:
        return schedules.rates(self.next_lr, base_lr, count, **options)


_SCHEDULE_ENTRIES = (
    ScheduleInfo("step", schedules.step, "torch.optim.lr_scheduler.StepLR",
                 {"step_size": Count(10), "gamma": Real(0.1)},
                 ({"step_size": 3}, {"step_size": 2, "gamma": 0.5}), ("step_size",)),
    ScheduleInfo("exponential", schedules.exponential, "torch.optim.lr_scheduler.ExponentialLR",
                 {"gamma": Real(0.95, low=0.0, open_low=True)},
                 ({"gamma": 0.9},), ("gamma",)),
    ScheduleInfo("cosine", schedules.cosine, "torch.optim.lr_scheduler.CosineAnnealingLR",
                 {"T_max": Count(100), "eta_min": Real(0.0)},
                 ({"T_max": 4}, {"T_max": 3, "eta_min": 1e-3}), ("T_max",)),
    ScheduleInfo("linear", schedules.linear, "torch.optim.lr_scheduler.LinearLR",
                 {"start_factor": Real(1.0 / 3, low=0.0, high=1.0, open_low=True),
                  "end_factor": Real(1.0, low=0.0, high=1.0),
                  "total_iters": Count(5)},
                 ({}, {"start_factor": 0.1, "total_iters": 3})),
)
SCHEDULES: Mapping[str, ScheduleInfo] = MappingProxyType({s.name: s for s in _SCHEDULE_ENTRIES})

