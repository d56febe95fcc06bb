r"""The quantitative targets of the vanishing-gradient experiment, each a :class:`Check` of a
measured figure against its prediction: the mean-field slope of :math:`\ln \mathbb{E}[\delta^2]`,
He et al.'s second-moment ratios, Glorot and Bengio's per-layer variance ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from reports.experiments.deepnet import SettingRecord


@dataclass
class Check:
    """One quantitative target: measured against predicted, within ``tolerance``.

    ``error`` is measured - predicted in ``unit`` (relative for ``"relative"``).
    """

    family: str
    name: str
    quantity: str
    unit: str
    engine: str
    measured: float
    predicted: float
    error: float
    tolerance: float
    passed: bool


def _check(family: str, name: str, quantity: str, unit: str, engine: str, measured: float,
           predicted: float, tolerance: float, relative: bool = False) -> Check:
    error = (measured - predicted) / abs(predicted) if relative else measured - predicted
    return Check(family, name, quantity, unit, engine, measured, predicted, error, tolerance,
                 bool(abs(error) <= tolerance))


def slope_checks(record: SettingRecord, tolerance: float) -> list[Check]:
    r"""Measured backward slope of :math:`\ln \mathbb{E}[\delta^2]` against theory, per engine."""
    return [_check("mean-field", record.name, "slope of ln E[δ²] per layer back",
                   "nats/layer", e, record.measured_slope[e], record.theory_slope, tolerance)
            for e in record.engines]


def he_checks(record: SettingRecord, tolerance: float = 1.0) -> list[Check]:
    r"""He et al.: :math:`\ln` of the second-moment ratio over the net, forward and backward."""
    predicted = (record.depth - 1) * math.log(record.sigma_w**2 / 2)
    out = []
    for e in record.engines:
        layers = record.layers[e]
        forward = math.log(layers[-1].preact_ms / layers[0].preact_ms)
        backward = math.log(layers[0].delta_ms / layers[-1].delta_ms)
        out += [_check("he", record.name, "ln E[h_L²]/E[h_1²] (forward)", "nats", e,
                       forward, predicted, tolerance),
                _check("he", record.name, "ln E[δ_1²]/E[δ_L²] (backward)", "nats", e,
                       backward, predicted, tolerance)]
    return out


def glorot_checks(record: SettingRecord, tolerance: float = 0.01) -> list[Check]:
    r"""Glorot & Bengio: back-propagated variance ratio per layer, :math:`n\,\mathrm{Var}[W]`."""
    return [_check("glorot", record.name, "E[δ_l²]/E[δ_(l+1)²] per layer", "relative", e,
                   math.exp(record.measured_slope[e]), record.sigma_w**2, tolerance,
                   relative=True)
            for e in record.engines]
