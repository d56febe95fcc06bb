r"""The vanishing/exploding-gradient experiment: its settings, targets, remedies and record.

Built on :mod:`reports.experiments.deepnet` (the runs) and
:mod:`reports.experiments.meanfield` (the theory):

- **targets** (Poole et al. 2016; Schoenholz et al. 2017): tanh with :math:`\sigma_b = 0.05`,
  :math:`\sigma_w \in \{0.8, 1, 1.2, 1.5\}`, inputs at :math:`q^*`; ReLU with
  :math:`\sigma_w^2 \in \{1.5, 2, 2.5\}`. The measured backward slope of
  :math:`\ln \mathbb{E}[\delta_l^2]` must match theory within the profile's tolerance
  (0.01 nats/layer in ``full``);
- **He et al. (2015)**: a 30-layer ReLU net with std :math:`\sqrt{1/n}` against
  :math:`\sqrt{2/n}`: :math:`\ln` of the last-to-first second moment (forward, of
  :math:`h`) and first-to-last (backward, of :math:`\delta`) within 1 nat of
  :math:`(L-1)\ln(n \operatorname{Var}[w] / 2)`;
- **Glorot & Bengio (2010)**: a linear net with ``nn.Linear``'s default init shrinks
  :math:`\mathbb{E}[\delta^2]` by :math:`n \operatorname{Var}[W] = 1/3` per layer (within 1%);
- a **grid** of activations x initializations, and the seed's **remedies** as a table of
  the first-to-last layer gradient-norm ratio :math:`\lVert\partial L/\partial W_1\rVert /
  \lVert\partial L/\partial W_L\rVert`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import manual
from manual import init as initializers
from manual.jsonable import decode
from reports.experiments import meanfield
from reports.experiments.deepnet import (
    ENGINES,
    Progress,
    Setting,
    SettingRecord,
    Size,
    _no_progress,
    build,
    draw_data,
    input_variance,
    run_setting,
)
from reports.experiments.vanishing_checks import Check, glorot_checks, he_checks, slope_checks


def target_settings(size: Size) -> list[Setting]:
    """The issue's quantitative targets: tanh at :math:`q^*` and ReLU along its trajectory."""
    n = size.width
    tanh = [Setting(f"tanh σw={sw}", "tanh", {"type": "xavier_normal", "gain": sw}, sw,
                    {"type": "normal", "std": 0.05}, 0.05, "q_star", size=size)
            for sw in (0.8, 1.0, 1.2, 1.5)]
    relu = [
        Setting("relu σw²=1.5", "relu",
                {"type": "kaiming_normal", "a": math.sqrt(1 / 3), "nonlinearity": "leaky_relu"},
                math.sqrt(1.5), size=size),
        Setting("relu σw²=2", "relu", {"type": "kaiming_normal", "nonlinearity": "relu"},
                math.sqrt(2.0), size=size),
        Setting("relu σw²=2.5", "relu", {"type": "normal", "std": math.sqrt(2.5 / n)},
                math.sqrt(2.5), size=size),
    ]
    return tanh + relu


def he_settings(size: Size) -> list[Setting]:
    """He et al. (2015): ReLU, zero biases, std :math:`\\sqrt{1/n}` against :math:`\\sqrt{2/n}`."""
    return [Setting("he std=√(1/n)", "relu", {"type": "kaiming_normal", "nonlinearity": "linear"},
                    1.0, size=size),
            Setting("he std=√(2/n)", "relu", {"type": "kaiming_normal", "nonlinearity": "relu"},
                    math.sqrt(2.0), size=size)]


def glorot_setting(size: Size) -> Setting:
    """Glorot & Bengio (2010): a linear network with ``nn.Linear``'s default init.

    :math:`W \\sim U(-1/\\sqrt n, 1/\\sqrt n)`, so :math:`n \\operatorname{Var}[W] = 1/3`.
    """
    return Setting("glorot linear, default init", "identity", None, math.sqrt(1 / 3), None,
                   math.sqrt(1 / (3 * size.width)), size=size)


GRID_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu", "silu")


def grid_init(activation: str, name: str) -> dict[str, Any]:
    """The named initialization for ``activation``, as an ``init`` entry."""
    known = activation if activation in initializers.NONLINEARITIES else "relu"
    gain = initializers.calculate_gain(known)
    entries: dict[str, dict[str, Any]] = {
        "normal 0.01": {"type": "normal", "std": 0.01},
        "normal 1": {"type": "normal", "std": 1.0},
        "xavier": {"type": "xavier_normal", "gain": 1.0},  # Glorot's own: gain 1
        "kaiming": {"type": "kaiming_normal", "nonlinearity": known},
        "orthogonal": {"type": "orthogonal", "gain": gain},
        "lecun": {"type": "kaiming_normal", "nonlinearity": "linear"},
    }
    return entries[name]


def grid_setting(activation: str, init_name: str, size: Size) -> Setting:
    weight = grid_init(activation, init_name)
    options = {k: v for k, v in weight.items() if k != "type"}
    shape = (size.width, size.width)
    sigma_w = math.sqrt(size.width * initializers.variance(weight["type"], shape, **options))
    return Setting(f"{activation} / {init_name}", activation, weight, sigma_w, size=size)


def grid_settings(size: Size) -> list[Setting]:
    """Activations x initializations (LeCun for SELU only)."""
    names = ("normal 0.01", "normal 1", "xavier", "kaiming", "orthogonal")
    out = [grid_setting(a, i, size) for a in GRID_ACTIVATIONS for i in names]
    return [*out, grid_setting("selu", "lecun", size)]


@dataclass(frozen=True)
class Remedy:
    """One of the seed's cures: a baseline network against a treated one.

    ``clip`` (a ``max_norm``) clips the treated network's gradients after backward, in
    each engine with its own ``clip_grad_norm``. A structural remedy changes the treated
    setting's :attr:`~reports.experiments.deepnet.Setting.block` (``batch_norm``,
    ``residual``) and keeps its activation, init, width and depth.
    """

    name: str
    cure: str
    baseline: Setting
    treated: Setting
    clip: float | None = None


def remedies(size: Size) -> list[Remedy]:
    g = partial_grid(size)
    return [
        Remedy("relu instead of sigmoid", "use ReLU instead of sigmoid/tanh",
               g("sigmoid", "xavier"), g("relu", "kaiming")),
        Remedy("xavier instead of naive (tanh)", "better initialization",
               g("tanh", "normal 0.01"), g("tanh", "xavier")),
        Remedy("he instead of naive (relu)", "better initialization",
               g("relu", "normal 0.01"), g("relu", "kaiming")),
        Remedy("gradient clipping (max_norm=1)", "gradient clipping",
               g("relu", "normal 1"), g("relu", "normal 1"), clip=1.0),
        Remedy("batch norm after each linear", "batch normalization (train mode)",
               g("sigmoid", "xavier"), with_block(g("sigmoid", "xavier"), "batch_norm")),
        Remedy("residual connections", "skip connections: add(φ(linear(h)), h)",
               g("sigmoid", "xavier"), with_block(g("sigmoid", "xavier"), "residual")),
    ]


def with_block(setting: Setting, block: str) -> Setting:
    """``setting`` with every block made ``block`` (same activation, init and size)."""
    label = {"batch_norm": "+ batch norm", "residual": "+ residual"}[block]
    return dataclasses.replace(setting, name=f"{setting.name} {label}", block=block)


def partial_grid(size: Size) -> Callable[[str, str], Setting]:
    return lambda activation, init_name: grid_setting(activation, init_name, size)


@dataclass
class RemedyRecord:
    r"""A remedy's first-to-last gradient-norm ratio, before and after, in both engines.

    ``ratio[which][engine]`` is the geometric mean over seeds of
    :math:`\lVert\partial L/\partial W_1\rVert / \lVert\partial L/\partial W_L\rVert`
    (1 is perfect flow; far below 1 is vanishing, far above is exploding). For clipping,
    ``layer_scale`` is the smallest and largest per-layer factor treated/baseline over
    layers and seeds: equal when every layer is scaled alike.

    The weight-gradient ratio alone can mislead: in a bias-free ReLU net, scaling every
    weight by :math:`c` scales every :math:`\partial L/\partial W_l` by :math:`c^{L-1}`,
    so the ratio does not see a naive init. ``delta_ratio`` (RMS of
    :math:`\partial L/\partial h_1` over that of :math:`\partial L/\partial h_L`) and
    ``grad_scale`` (geometric mean of :math:`\lVert\partial L/\partial W_l\rVert`) are
    recorded beside it, and ``out_grad_ratio``, the RMS of :math:`\partial L/\partial` the
    first block's output over that of the last's (the gradient in a residual stream).
    """

    name: str
    cure: str
    baseline: str
    treated: str
    clip: float | None
    ratio: dict[str, dict[str, float]]
    log10_ratio: dict[str, dict[str, float]]
    layer_scale: dict[str, list[float]] | None
    delta_ratio: dict[str, dict[str, float]]
    grad_scale: dict[str, dict[str, float]]
    max_engine_diff: float
    out_grad_ratio: dict[str, dict[str, float]] = field(default_factory=dict)


def run_remedy(remedy: Remedy, seed: int = 0, engines: tuple[str, ...] = ("manual", "torch"),
               progress: Progress = _no_progress) -> RemedyRecord:
    """Run the baseline and the treated network on the same seeds in every engine."""
    from reports.experiments.deepnet import trace_diff

    def empty() -> dict[str, dict[str, list[float]]]:
        return {"baseline": {e: [] for e in engines}, "treated": {e: [] for e in engines}}

    logs, deltas, scale_logs, outs = empty(), empty(), empty(), empty()
    scales: dict[str, list[float]] = {e: [] for e in engines}
    worst = 0.0
    for k in range(remedy.baseline.size.seeds):
        norms: dict[str, dict[str, np.ndarray]] = {}
        for which, setting, clip in (("baseline", remedy.baseline, None),
                                     ("treated", remedy.treated, remedy.clip)):
            built = build(setting, seed + k)
            params = manual.initial_parameters(built.spec)
            x, projection = draw_data(setting, seed + k, input_variance(setting))
            traces = {e: ENGINES[e](built, params, x, projection, clip) for e in engines}
            if len(engines) > 1:
                worst = max(worst, *trace_diff(traces[engines[0]], traces[engines[1]]))
            norms[which] = {e: np.array([np.linalg.norm(g) for g in traces[e].grad_weight])
                            for e in engines}
            for e in engines:
                n = norms[which][e]
                logs[which][e].append(_log_ratio(n[0], n[-1]))
                delta = traces[e].delta
                deltas[which][e].append(0.5 * _log_ratio(np.mean(delta[0] ** 2),
                                                         np.mean(delta[-1] ** 2)))
                out = traces[e].grad_out
                outs[which][e].append(0.5 * _log_ratio(np.mean(out[0] ** 2),
                                                       np.mean(out[-1] ** 2)))
                with np.errstate(divide="ignore"):
                    scale_logs[which][e].append(float(np.mean(np.log(n))))
            progress(1)
        for e in engines:
            with np.errstate(divide="ignore", invalid="ignore"):
                scales[e].extend((norms["treated"][e] / norms["baseline"][e]).tolist())
    def geometric(logs: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
        return {w: {e: math.exp(float(np.mean(v))) for e, v in by.items()}
                for w, by in logs.items()}

    log10 = {which: {e: float(np.mean(v)) / math.log(10) for e, v in by.items()}
             for which, by in logs.items()}
    return RemedyRecord(
        name=remedy.name, cure=remedy.cure, baseline=remedy.baseline.name,
        treated=remedy.treated.name, clip=remedy.clip,
        ratio={w: {e: 10.0**v for e, v in by.items()} for w, by in log10.items()},
        log10_ratio=log10,
        layer_scale=({e: [float(np.min(v)), float(np.max(v))] for e, v in scales.items()}
                     if remedy.clip is not None else None),
        delta_ratio=geometric(deltas), grad_scale=geometric(scale_logs),
        max_engine_diff=worst, out_grad_ratio=geometric(outs),
    )


def _log_ratio(a: float, b: float) -> float:
    return math.log(a / b) if a > 0 and b > 0 and math.isfinite(a / b) else math.nan


# -- the experiment --------------------------------------------------------------------------

@dataclass(frozen=True)
class Profile:
    """Sizes per part and the slope tolerance they support.

    The ``quick`` slope tolerance is wider because its nets are smaller and it averages
    fewer seeds: the per-seed spread of the slope grows like :math:`1/\\sqrt{nL}` and its
    standard error like :math:`1/\\sqrt{\text{seeds}}`; 0.04 nats/layer is about four
    standard errors at width 256, depth 30, batch 16 and 2 seeds.
    """

    targets: Size
    he: Size
    glorot: Size
    grid: Size
    remedies: Size
    slope_tolerance: float


PROFILES = {
    "quick": Profile(targets=Size(256, 30, 16, 2), he=Size(256, 30, 16, 2),
                     glorot=Size(256, 30, 16, 2), grid=Size(128, 30, 16, 1),
                     remedies=Size(128, 30, 16, 1), slope_tolerance=0.04),
    "full": Profile(targets=Size(500, 50, 32, 10), he=Size(500, 30, 32, 10),
                    glorot=Size(500, 50, 32, 10), grid=Size(256, 50, 32, 3),
                    remedies=Size(256, 50, 32, 3), slope_tolerance=0.01),
}


@dataclass
class ExperimentRecord:
    """Everything the experiment measured; ``passed``/``failed`` count the checks."""

    profile: str
    seed: int
    slope_tolerance: float
    sizes: dict[str, Size]
    targets: list[SettingRecord]
    he: list[SettingRecord]
    glorot: SettingRecord
    grid: list[SettingRecord]
    remedies: list[RemedyRecord]
    meanfield: list[meanfield.MeanFieldRecord]
    checks: list[Check]
    passed: int = 0
    failed: int = 0
    notes: list[str] = field(default_factory=list)


def meanfield_table(sigma_b: float = 0.05) -> list[meanfield.MeanFieldRecord]:
    r"""Every elementwise registry activation at :math:`\sigma_w` = its recommended gain."""
    out = []
    for name in meanfield.elementwise_activations():
        known = name if name in initializers.NONLINEARITIES else "relu"
        out.append(meanfield.analyze(name, float(initializers.calculate_gain(known)), sigma_b))
    return out


def runs_in(profile: Profile) -> int:
    """How many single-seed network runs (each in both engines) the profile makes."""
    p = profile
    return (len(target_settings(p.targets)) * p.targets.seeds + 2 * p.he.seeds + p.glorot.seeds
            + len(grid_settings(p.grid)) * p.grid.seeds + 2 * len(remedies(p.remedies))
            * p.remedies.seeds)


def run_experiment(profile: str = "quick", seed: int = 0,
                   progress: Callable[[int], Any] = _no_progress) -> ExperimentRecord:
    """Run every part of the experiment in both engines and check the targets."""
    if profile not in PROFILES:
        raise ValueError(f"profile: must be one of {', '.join(PROFILES)}, got {profile!r}")
    p = PROFILES[profile]
    with single_thread():
        return _run(profile, p, seed, progress)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """One BLAS and one torch thread: at width <= 500 a split matmul is slower, and the
    two cores are shared (two threads each for numpy and torch oversubscribe them)."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def _run(profile: str, p: Profile, seed: int, progress: Callable[[int], Any]
         ) -> ExperimentRecord:
    targets = [run_setting(s, seed, progress=progress) for s in target_settings(p.targets)]
    he = [run_setting(s, seed, progress=progress) for s in he_settings(p.he)]
    glorot = run_setting(glorot_setting(p.glorot), seed, progress=progress)
    grid = [run_setting(s, seed, progress=progress) for s in grid_settings(p.grid)]
    cures = [run_remedy(r, seed, progress=progress) for r in remedies(p.remedies)]
    checks = [c for r in targets for c in slope_checks(r, p.slope_tolerance)]
    checks += [c for r in he for c in he_checks(r)] + glorot_checks(glorot)
    passed = sum(c.passed for c in checks)
    return ExperimentRecord(
        profile=profile, seed=seed, slope_tolerance=p.slope_tolerance,
        sizes={"targets": p.targets, "he": p.he, "glorot": p.glorot, "grid": p.grid,
               "remedies": p.remedies},
        targets=targets, he=he, glorot=glorot, grid=grid, remedies=cures,
        meanfield=meanfield_table(), checks=checks, passed=passed,
        failed=len(checks) - passed,
    )


def record_from_json(text: str) -> ExperimentRecord:
    """Read back what :func:`reference.core.records.dumps` wrote for an
    :class:`ExperimentRecord`."""
    record: ExperimentRecord = decode(ExperimentRecord, json.loads(text))
    return record
