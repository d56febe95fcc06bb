r"""Deep MLPs run in both engines, layer by layer, beside mean-field theory.

A setting is a deep MLP, ``depth`` times ``linear(width) -> activation``, whose weights and
biases come from the spec's ``init`` (so both engines start from the same arrays), fed
Gaussian inputs and trained on a **random-projection loss**
:math:`L = \sum_{n,i} P_{ni}\, a^{(L)}_{ni}` with :math:`P_{ni} \sim \mathcal{N}(0, 1)`: its
gradient at the top is isotropic and independent of the network, as mean-field theory
assumes. Each run records, per layer :math:`l` (pre-activation :math:`h_l`, activation
:math:`a_l = \phi(h_l)`, :math:`\delta_l = \partial L / \partial h_l`):
:math:`\lVert \partial L/\partial W_l \rVert_F`, :math:`\overline{\delta_l^2}`,
:math:`\overline{h_l^2}`, the mean and std of :math:`a_l` and the saturated fraction,
from the manual engine and from PyTorch on the same weights and data, with the relative
difference :math:`\lVert m - r\rVert / \lVert r\rVert` of the tensors.

The **slope** is how much :math:`\ln \mathbb{E}[\delta_l^2]` grows per layer travelled
backward (toward the input), in nats: the least-squares slope of
:math:`\ln \mathbb{E}[\delta_l^2]` against :math:`L - l`. Theory predicts
:math:`\ln \chi(q_l)` per layer along the length-map trajectory (:math:`\ln \chi_1` when
the inputs sit at :math:`q^*`), fitted the same way. Negative is vanishing."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import manual
from manual.data import Data
from manual.random import stream
from manual.registry import ACTIVATIONS
from reports.experiments import meanfield

Progress = Callable[[int], None]
BLOCKS = ("plain", "batch_norm", "residual")
RESOLVED = 2e-3  # nats/layer: how well two quadrature rules must agree on the theory slope


def _no_progress(n: int = 1) -> None:
    return None


@dataclass(frozen=True)
class Size:
    """How big each network is and how many seeds average it."""

    width: int = 256
    depth: int = 50
    batch: int = 32
    seeds: int = 1


@dataclass(frozen=True)
class Setting:
    """One network family: an activation and how its weights and biases are drawn.

    ``weight``/``bias`` are ``init`` entries of a spec (``{"type": ..., **options}``);
    ``None`` keeps ``nn.Linear``'s default. ``sigma_w``/``sigma_b`` are the *nominal*
    values that theory uses (:math:`\\sigma_w^2 = n \\operatorname{Var}[W]`), stated
    independently of the initializer so that a mis-scaled initializer is caught.
    ``input_var`` is the inputs' variance, or ``"q_star"`` to put
    :math:`q_1 = \\sigma_w^2 \\operatorname{Var}[x] + \\sigma_b^2` at the fixed point.
    ``block`` is what each of the ``depth`` blocks is (:data:`BLOCKS`): ``plain``
    (``linear -> activation``, the chain mean-field theory describes), ``batch_norm``
    (``linear -> batch_norm -> activation``, train mode) or ``residual``
    (``add(activation(linear(x)), x)``, a graph spec).
    """

    name: str
    activation: str
    weight: Mapping[str, Any] | None
    sigma_w: float
    bias: Mapping[str, Any] | None = field(default_factory=lambda: {"type": "zeros"})
    sigma_b: float = 0.0
    input_var: float | str = 1.0
    options: Mapping[str, Any] = field(default_factory=dict)
    size: Size = Size()
    block: str = "plain"

    def __post_init__(self) -> None:
        if self.block not in BLOCKS:
            raise ValueError(f"{self.name}: block must be one of {', '.join(BLOCKS)}, "
                             f"got {self.block!r}")


@dataclass
class LayerStats:
    """One layer, one engine, averaged over seeds."""

    grad_weight_norm: float
    delta_ms: float
    preact_ms: float
    act_mean: float
    act_std: float
    saturated: float | None


@dataclass
class Trace:
    """What one engine produced on one seed, per block: h, a, delta, dL/dW and dL/d(out).

    ``delta`` is :math:`\\partial L/\\partial h` at the activation's input, ``grad_out``
    :math:`\\partial L/\\partial` the block's output (what the next block reads; ``a``
    itself unless the block adds a skip).
    """

    h: list[np.ndarray]
    a: list[np.ndarray]
    delta: list[np.ndarray]
    grad_weight: list[np.ndarray]
    grad_out: list[np.ndarray] = field(default_factory=list)


@dataclass(frozen=True)
class BlockNodes:
    """Which nodes of the spec one block's trace reads, named by the builder.

    ``linear`` is the affine node whose weight gradient is :math:`\\partial L/\\partial
    W_l`; ``h`` the activation's input (the pre-activation: the linear's output, or the
    batch norm's); ``a`` the activation; ``out`` the block's output.
    """

    linear: str
    h: str
    a: str
    out: str


@dataclass(frozen=True)
class Built:
    """A setting's spec and, per block, the nodes its trace reads."""

    spec: manual.Spec
    blocks: tuple[BlockNodes, ...]


@dataclass
class SettingRecord:
    """A setting run over seeds in both engines, beside its mean-field prediction."""

    name: str
    activation: str
    options: dict[str, Any]
    weight: dict[str, Any] | None
    bias: dict[str, Any] | None
    sigma_w: float
    sigma_b: float
    input_var: float
    width: int
    depth: int
    batch: int
    seeds: int
    engines: list[str]
    q_star: float
    chi_1: float
    log_chi_1: float
    q_theory: list[float]
    theory_curve: list[float]
    theory_slope: float
    theory_resolved: bool
    measured_slope: dict[str, float]
    seed_slopes: list[float]
    slope_stderr: float
    slope_error: float
    layers: dict[str, list[LayerStats]]
    engine_diff: list[float]
    max_engine_diff: float


def backward_slope(values: list[float]) -> float:
    """Least-squares slope of ``values[l]`` (l = 1..L) against L - l: growth per layer back."""
    y = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(y)):
        return math.nan
    back = np.arange(len(y))[::-1].astype(np.float64)
    return float(np.polyfit(back, y, 1)[0])


def input_variance(setting: Setting) -> float:
    if setting.input_var != "q_star":
        return float(setting.input_var)
    act = meanfield.Activation(setting.activation, dict(setting.options))
    q_star = meanfield.fixed_point(act, setting.sigma_w, setting.sigma_b)
    return (q_star - setting.sigma_b**2) / setting.sigma_w**2


def build(setting: Setting, seed: int) -> Built:
    """The spec both engines build, ``depth`` blocks of :attr:`Setting.block`, and each
    block's nodes.

    ``plain`` and ``batch_norm`` are chains (nodes ``layers.0 ...``, as round 1);
    ``residual`` is a graph: block ``i`` is ``fc{i}`` (linear), ``act{i}`` and
    ``skip{i} = add(act{i}, <block i-1's output>)``, the first reading ``input``.
    """
    s = setting.size
    init = {k: dict(v) for k, v in (("weight", setting.weight), ("bias", setting.bias))
            if v is not None}
    linear = {"type": "linear", "out_features": s.width, **({"init": init} if init else {})}
    act = {"type": setting.activation, **setting.options}
    common = {"name": setting.name, "loss": {"type": "mse"}, "dtype": "float64", "seed": seed}
    if setting.block == "residual":
        nodes: list[dict[str, Any]] = []
        blocks = []
        previous = "input"
        for i in range(s.depth):
            nodes += [{"name": f"fc{i}", "inputs": [previous], **linear},
                      {"name": f"act{i}", "inputs": [f"fc{i}"], **act},
                      {"name": f"skip{i}", "type": "add", "inputs": [f"act{i}", previous]}]
            blocks.append(BlockNodes(linear=f"fc{i}", h=f"fc{i}", a=f"act{i}", out=f"skip{i}"))
            previous = f"skip{i}"
        spec = manual.parse_spec({"inputs": {"input": {"shape": [s.width]}}, "nodes": nodes,
                                  "output": previous, **common})
        return Built(spec, tuple(blocks))
    layers = [linear, {"type": "batch_norm"}, act] \
        if setting.block == "batch_norm" else [linear, act]
    k = len(layers)
    spec = manual.parse_spec({"input_shape": [s.width], "layers": layers * s.depth, **common})
    names = [node.name for node in spec.nodes]
    return Built(spec, tuple(BlockNodes(linear=names[k * i], h=names[k * i + k - 2],
                                        a=names[k * i + k - 1], out=names[k * i + k - 1])
                             for i in range(s.depth)))


def build_spec(setting: Setting, seed: int) -> manual.Spec:
    """The spec of :func:`build`."""
    return build(setting, seed).spec


def draw_data(setting: Setting, seed: int, var: float) -> tuple[np.ndarray, np.ndarray]:
    """Inputs :math:`x \\sim \\mathcal{N}(0, \\text{var})` and the projection :math:`P`."""
    s = setting.size
    x = stream(seed, "experiment", "deepnet x").normal(0.0, math.sqrt(var), (s.batch, s.width))
    projection = stream(seed, "experiment", "deepnet projection").standard_normal(
        (s.batch, s.width))
    return x, projection


def _trace(blocks: tuple[BlockNodes, ...], values: Mapping[str, np.ndarray],
           grads: Mapping[str, np.ndarray], param_grads: Mapping[str, np.ndarray]) -> Trace:
    """Each block's arrays, by the node names its builder recorded."""
    return Trace(h=[values[b.h] for b in blocks], a=[values[b.a] for b in blocks],
                 delta=[grads[b.h] for b in blocks],
                 grad_weight=[param_grads[f"{b.linear}.weight"] for b in blocks],
                 grad_out=[grads[b.out] for b in blocks])


def run_engine(engine: str, built: Built, params: Mapping[str, np.ndarray], x: np.ndarray,
               projection: np.ndarray, clip: float | None = None) -> Trace:
    r"""One engine (``manual`` or ``torch``) through the runner
    (:mod:`reference.core.run`): forward, then backward from
    :math:`\partial L/\partial a_L = P` given at the output, the parameter gradients clipped
    to ``clip`` by that engine's own ``clip_grad_norm``."""
    from reference.core.run import run_manual, run_torch

    spec = built.spec
    data = Data(x, np.zeros(0, dtype=x.dtype))
    upstream = {spec.output: projection}
    if engine == "manual":
        net = manual.build(spec, {k: v.copy() for k, v in params.items()})
        run = run_manual(spec, data, net=net, grad_at_output=upstream)
        if clip is not None:
            from manual.clip import clip_grad_norm

            clip_grad_norm(net.named_grads(), clip)
        return _trace(built.blocks, run.values, run.grad_at, net.named_grads())
    import torch

    from reference.core import mirror

    mirrored = mirror.build(spec, params)
    run = run_torch(spec, data, net=mirrored, grad_at_output=upstream)
    grads = run.param_grads
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(mirrored.parameters(), clip)
        grads = {k: p.grad.numpy().copy() for k, p in mirrored.named_slots("params").items()
                 if p.grad is not None}
    return _trace(built.blocks, run.values, run.grad_at, grads)


ENGINES: Mapping[str, Callable[..., Trace]] = {
    engine: functools.partial(run_engine, engine) for engine in ("manual", "torch")}


def saturated_fraction(activation: str, a: np.ndarray) -> float | None:
    """Share of units within 1% of the output range's ends (bounded activations only)."""
    low, high = ACTIVATIONS[activation].domain.outputs
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    margin = 0.01 * (high - low)
    return float(np.mean((a < low + margin) | (a > high - margin)))


def _stats(trace: Trace, activation: str) -> list[list[float | None]]:
    return [[float(np.linalg.norm(gw)), float(np.mean(d * d)), float(np.mean(h * h)),
             float(np.mean(a)), float(np.std(a)), saturated_fraction(activation, a)]
            for h, a, d, gw in zip(trace.h, trace.a, trace.delta, trace.grad_weight,
                                   strict=True)]


def _mean_stats(per_seed: list[list[list[float | None]]]) -> list[LayerStats]:
    out = []
    for layer in zip(*per_seed, strict=True):
        columns = list(zip(*layer, strict=True))
        values = [None if col[0] is None else float(np.mean(np.asarray(col, dtype=float)))
                  for col in columns]
        out.append(LayerStats(*values))  # type: ignore[arg-type]
    return out


def _relative(m: np.ndarray, r: np.ndarray) -> float:
    scale = float(np.linalg.norm(r))
    diff = float(np.linalg.norm(m - r))
    return diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)


def trace_diff(m: Trace, r: Trace) -> list[float]:
    """Per block, the largest relative difference among h, a, delta, dL/dW and dL/d(out)."""
    return [max(_relative(*pair) for pair in zip(ms, rs, strict=True))
            for ms, rs in zip(zip(m.h, m.a, m.delta, m.grad_weight, m.grad_out, strict=True),
                              zip(r.h, r.a, r.delta, r.grad_weight, r.grad_out, strict=True),
                              strict=True)]


def _log(value: float) -> float:
    return math.log(value) if value > 0 else -math.inf


def run_setting(setting: Setting, seed: int = 0, engines: tuple[str, ...] = ("manual", "torch"),
                progress: Progress = _no_progress) -> SettingRecord:
    """Run ``setting`` for ``size.seeds`` seeds (``seed``, ``seed + 1``, ...) in ``engines``.

    Every engine sees the same parameters, inputs and projection on each seed.
    """
    s = setting.size
    var = input_variance(setting)
    stats: dict[str, list[list[list[float | None]]]] = {e: [] for e in engines}
    diffs: list[list[float]] = []
    seed_slopes = []
    for k in range(s.seeds):
        built = build(setting, seed + k)
        params = manual.initial_parameters(built.spec)
        x, projection = draw_data(setting, seed + k, var)
        traces = {e: ENGINES[e](built, params, x, projection) for e in engines}
        for e in engines:
            stats[e].append(_stats(traces[e], setting.activation))
        if len(engines) > 1:
            diffs.append(trace_diff(traces[engines[0]], traces[engines[1]]))
        seed_slopes.append(backward_slope([_log(float(row[1] or 0.0))
                                           for row in stats[engines[0]][-1]]))
        progress(1)
    layers = {e: _mean_stats(stats[e]) for e in engines}
    act = meanfield.Activation(setting.activation, dict(setting.options))
    q_star = meanfield.fixed_point(act, setting.sigma_w, setting.sigma_b)
    chi_1 = meanfield.chi(act, q_star, setting.sigma_w)
    qs = meanfield.trajectory(act, setting.sigma_w**2 * var + setting.sigma_b**2,
                              setting.sigma_w, setting.sigma_b, s.depth)
    curve = meanfield.theory_log_curve(act, qs, setting.sigma_w)
    measured = {e: backward_slope([_log(st.delta_ms) for st in layers[e]]) for e in engines}
    theory = backward_slope(curve)
    # A rule twice as fine must agree within a fifth of the 0.01 nats/layer target, or the
    # quadrature misses a feature narrower than its node spacing (tanh with sigma_w = 16:
    # phi'(sqrt(q) z)^2 is a spike of width 1/16) or converges slowly at a kink (ELU, SELU).
    finer = meanfield.theory_log_curve(act, qs, setting.sigma_w, 2 * meanfield.NODES)
    resolved = bool(abs(backward_slope(finer) - theory) <= RESOLVED)
    engine_diff = [max(col) for col in zip(*diffs, strict=True)] if diffs else []
    finite_slopes = [v for v in seed_slopes if math.isfinite(v)]
    stderr = (float(np.std(finite_slopes, ddof=1)) / math.sqrt(len(finite_slopes))
              if len(finite_slopes) > 1 else math.nan)
    return SettingRecord(
        name=setting.name, activation=setting.activation, options=dict(setting.options),
        weight=None if setting.weight is None else dict(setting.weight),
        bias=None if setting.bias is None else dict(setting.bias),
        sigma_w=setting.sigma_w, sigma_b=setting.sigma_b, input_var=var, width=s.width,
        depth=s.depth, batch=s.batch, seeds=s.seeds, engines=list(engines), q_star=q_star,
        chi_1=chi_1, log_chi_1=_log(chi_1), q_theory=qs, theory_curve=curve,
        theory_slope=theory, theory_resolved=resolved, measured_slope=measured,
        seed_slopes=seed_slopes,
        slope_stderr=stderr, slope_error=measured[engines[0]] - theory, layers=layers,
        engine_diff=engine_diff, max_engine_diff=max(engine_diff, default=0.0),
    )


