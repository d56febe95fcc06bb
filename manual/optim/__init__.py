"""Optimizers and learning-rate schedules for the manual engine (numpy only).

Pure step functions (:mod:`manual.optim.steps`) with ``torch.optim``'s names and defaults,
schedules as ``torch.optim.lr_scheduler`` computes them (:mod:`manual.optim.schedules`),
and their registry (:mod:`manual.optim.registry`).
"""

from manual.optim.registry import OPTIMIZERS, SCHEDULES, OptimInfo, ScheduleInfo
from manual.optim.steps import adagrad, adam, adamw, rmsprop, sgd

__all__ = ["OPTIMIZERS", "SCHEDULES", "OptimInfo", "ScheduleInfo", "adagrad", "adam",
           "adamw", "rmsprop", "sgd"]
