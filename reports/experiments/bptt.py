r"""Vanishing and exploding gradients through time, measured in both engines.

For an ``rnn`` (tanh) with input weights :math:`W_{ih} = I` and zero input bias, the
pre-activation is :math:`a_t = x_t + W_{hh} h_{t-1} + b_{hh}`, so the input gradient is
:math:`\bar x_t = \bar a_t` and, with :math:`L = \langle u, h_T \rangle`,

.. math::
    \bar x_{t} = D_t W_{hh}^\top \bar x_{t+1}, \quad D_t = \operatorname{diag}\phi'(a_t),
    \qquad \|\bar x_t\| \le (\gamma\, \sigma_{\max}(W_{hh}))^{T-t} \|\bar x_T\|

with :math:`\gamma = \sup|\phi'| = 1` for tanh: Pascanu, Mikolov and Bengio (2013), eq. 7.
:math:`W_{hh} = \rho Q` with :math:`Q` orthogonal has every singular value :math:`\rho`, so
:math:`\rho < 1` is sufficient for the gradient to vanish at least as fast as
:math:`\rho^{T-t}`, and :math:`\rho > 1` necessary for it to explode. ``lstm`` and ``gru``
(PyTorch's default initialisation) are measured on the same task for comparison: at that
init the forget gate sits near :math:`\sigma(0) = 1/2`, so the cell state, and with it the
gradient, still shrinks by about half a step; a forget-gate bias (Jozefowicz et al. 2015)
is what lets the gate keep the gradient (``forget_bias``).

:func:`gradient_through_time` gives :math:`\|\bar x_t\|` (mean over the batch) for
:math:`t = 0 \dots T-1`; :func:`decay_rate` the fitted per-step factor.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np

from manual import clip
from manual import init as initializers
from manual.layers import LAYERS
from manual.ops.recurrent import recurrent_forward
from manual.random import stream

Engine = Literal["manual", "torch"]


@dataclass(frozen=True)
class ThroughTime:
    """One measured curve: ``norms[t]`` = mean over the batch of :math:`\\|\\bar x_t\\|`."""

    layer: str
    engine: str
    spectral_norm: float | None
    norms: tuple[float, ...]
    rate: float
    bound: float | None


def rnn_parameters(hidden: int, spectral_norm: float, rng: np.random.Generator
                   ) -> dict[str, np.ndarray]:
    """``W_ih = I``, ``W_hh = rho Q`` (``Q`` orthogonal), zero biases."""
    return {"weight_ih_l0": np.eye(hidden),
            "weight_hh_l0": initializers.orthogonal((hidden, hidden), rng, gain=spectral_norm),
            "bias_ih_l0": np.zeros(hidden), "bias_hh_l0": np.zeros(hidden)}


def _default_parameters(layer: str, hidden: int, rng: np.random.Generator
                        ) -> dict[str, np.ndarray]:
    signature = LAYERS[layer].signature({"hidden_size": hidden}, ((1, hidden),))
    return {name: slot.init(rng, slot.shape) for name, slot in signature.params.items()}


class Backprop(NamedTuple):
    """One backward pass: the input gradient and the parameter gradients' total norm before
    and after ``clip_grad_norm`` (equal when no ``max_norm`` is given)."""

    dx: np.ndarray
    norm_before: float
    norm_after: float
    dparams: dict[str, np.ndarray]


def _backprop(layer: str, params: dict[str, np.ndarray], x: np.ndarray, upstream: np.ndarray,
              engine: Engine, max_norm: float | None = None) -> Backprop:
    """:math:`\\bar x` (batch first) and the parameter gradients for
    :math:`L = \\langle u, h_T\\rangle` in one engine, clipped by that engine's own
    ``clip_grad_norm`` when ``max_norm`` is given. The layer is the registry's ``layer`` (its
    defaults: tanh, batch first) as a one-node spec, run by the layer driver's pair with the
    upstream given at ``output`` (:mod:`reference.core.driver`)."""
    import torch

    from reference.core.driver import LayerPair, LayerSample, layer_case, output_refs
    from reference.core.run import run_manual

    d_output = np.zeros((*x.shape[:2], upstream.shape[-1]), x.dtype)
    d_output[:, -1] = upstream
    sample = LayerSample([x], {"hidden_size": params["weight_hh_l0"].shape[1]}, params=params,
                         upstream={"output": d_output})
    case = layer_case(layer, sample, str(x.dtype))
    pair, node = LayerPair(case), case.node.name
    if engine == "manual":
        run = run_manual(case.spec, case.data, net=pair.mine,
                         grad_at_output={output_refs(case.node)["output"]: d_output})
        dparams = pair.mine.modules[node].grads
        before = clip.total_norm(dparams)
        if max_norm is not None:
            clip.clip_grad_norm(dparams, max_norm)
        return Backprop(run.grad_at["x"], before, clip.total_norm(dparams), dict(dparams))
    run = pair.reference()
    module = pair.torch.graph_nodes[0]

    def total() -> float:
        return float(torch.linalg.vector_norm(torch.stack([
            torch.linalg.vector_norm(p.grad) for p in module.parameters() if p.grad is not None])))

    before = total()
    if max_norm is not None:
        torch.nn.utils.clip_grad_norm_(module.parameters(), max_norm)
    dparams = {name: p.grad.numpy().copy() for name, p in module.named_parameters()
               if p.grad is not None}
    return Backprop(run.grad_at["x"], before, total(), dparams)


def decay_rate(norms: np.ndarray) -> float:
    r"""The per-step factor :math:`r` of :math:`\|\bar x_t\| \approx c\, r^{T-t}`: a
    least-squares line through :math:`\log\|\bar x_t\|` against :math:`T - t`."""
    steps = np.arange(len(norms))[::-1]
    slope = np.polyfit(steps, np.log(norms), 1)[0]
    return float(math.exp(slope))


def setup(layer: str, *, spectral_norm: float | None = None, length: int = 40,
          hidden: int = 32, batch: int = 8, input_scale: float = 0.1,
          forget_bias: float = 0.0, seed: int = 0
          ) -> tuple[str, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """``(mode, params, x, u)`` for one measurement (see :func:`gradient_through_time`)."""
    rng = stream(seed, "experiment", f"bptt {layer}")
    if layer == "rnn":
        if spectral_norm is None:
            raise ValueError("gradient_through_time: rnn needs a spectral_norm")
        params, mode = rnn_parameters(hidden, spectral_norm, rng), "rnn_tanh"
    elif layer in ("lstm", "gru"):
        params, mode = _default_parameters(layer, hidden, rng), layer
        # Rows H:2H are the LSTM's forget gate (i, f, g, o) and the GRU's update gate
        # (r, z, n): both say how much of the previous state a step keeps.
        params["bias_ih_l0"][hidden:2 * hidden] += forget_bias
    else:
        raise ValueError(f"gradient_through_time: layer must be rnn, lstm or gru, got {layer!r}")
    x = input_scale * rng.normal(size=(batch, length, hidden))
    upstream = rng.normal(size=(batch, hidden))
    return mode, params, x, upstream


def gradient_through_time(layer: str, *, engine: Engine, spectral_norm: float | None = None,
                          length: int = 40, hidden: int = 32, batch: int = 8,
                          input_scale: float = 0.1, forget_bias: float = 0.0, seed: int = 0
                          ) -> ThroughTime:
    """Measure :math:`\\|\\bar x_t\\|` for ``rnn`` (tanh, ``spectral_norm`` required) or
    ``lstm``/``gru`` (default init; ``forget_bias`` added to the ``bias_ih_l0`` block of the
    LSTM's forget gate or the GRU's update gate) on small random inputs, in float64."""
    _, params, x, upstream = setup(layer, spectral_norm=spectral_norm, length=length,
                                   hidden=hidden, batch=batch, input_scale=input_scale,
                                   forget_bias=forget_bias, seed=seed)
    dx = _backprop(layer, params, x, upstream, engine).dx
    norms = np.linalg.norm(dx, axis=-1).mean(axis=0)
    bound = spectral_norm if layer == "rnn" else None
    return ThroughTime(layer, engine, spectral_norm, tuple(float(n) for n in norms),
                       decay_rate(norms), bound)


# ---- the report's record -----------------------------------------------------------------------

@dataclass(frozen=True)
class Size:
    """One profile's sequence length, hidden size and batch."""

    length: int
    hidden: int
    batch: int


PROFILES = {"quick": Size(40, 32, 8), "full": Size(60, 64, 16)}
SPECTRAL_NORMS = (0.5, 0.9, 1.0, 1.2, 1.5, 2.0)
KEEP_BIASES = (0.0, 1.0, 3.0)
CLIP_NORMS = (0.5, 1.0, 1.5, 2.0)  # from vanishing to exploding
# Above the vanishing rnn's gradient (‖g‖ = 29 at ρ = 0.5, 65 in the full profile), far below
# the exploding ones (3e4 and 2e6 at ρ = 2): clipping leaves the first alone, caps the others.
MAX_NORM = 100.0
INPUT_SCALE = 0.1
# ln(measured / predicted rate) allowed, nats per step, for rho < CHAOTIC. The prediction
# treats the gradient as independent of D_t; measured at the quick and full sizes the gap is
# under 0.004 for rho <= 1 and 0.026 at 1.5. From rho = 2 the forward is chaotic and the
# gradient correlates with D_t at finite width (0.038 at H = 32, 0.022 at H = 64): shown,
# not counted.
RATE_TOLERANCE = 0.03
CHAOTIC = 2.0
ENGINE_RTOL = 1e-10
ENGINES: tuple[Engine, ...] = ("manual", "torch")


@dataclass(frozen=True)
class Check:
    """One counted comparison: ``error`` within ``tolerance`` passes."""

    family: str
    setting: str
    quantity: str
    engine: str
    measured: float
    predicted: float
    error: float
    tolerance: float
    passed: bool


@dataclass(frozen=True)
class Series:
    """One setting's curves ``norms[engine][t]`` = mean over the batch of ‖x̄_t‖, the fitted
    rates, the prediction, ``log_error[engine]`` = ln(rate / predicted) and ``span[engine]`` =
    ‖x̄_0‖ / ‖x̄_{T-1}‖ (the whole sequence's shrinking or growth)."""

    layer: str
    setting: str
    parameter: float
    norms: dict[str, list[float]]
    rate: dict[str, float]
    predicted: float
    log_error: dict[str, float]
    span: dict[str, float]
    engine_diff: float


@dataclass(frozen=True)
class Clipping:
    """Total parameter-gradient norm before and after ``clip_grad_norm(max_norm)``."""

    spectral_norm: float
    max_norm: float
    before: dict[str, float]
    after: dict[str, float]
    factor: dict[str, float]
    engine_diff: float


@dataclass
class BpttRecord:
    profile: str
    seed: int
    size: Size
    input_scale: float
    rate_tolerance: float
    rnn: list[Series] = field(default_factory=list)
    gated: list[Series] = field(default_factory=list)
    clipping: list[Clipping] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    passed: int = 0
    failed: int = 0


def predicted_rate(mode: str, params: dict[str, np.ndarray], x: np.ndarray) -> float:
    r"""The per-step factor the forward pass predicts, from the recurrent Jacobian.

    For the tanh ``rnn``, :math:`\bar x_t = D_t W_{hh}^\top \bar x_{t+1}` with
    :math:`W_{hh} = \rho Q`: a vector independent of :math:`D_t` shrinks by
    :math:`\rho\, \operatorname{rms}(\phi'(a_t))` per step, so the prediction is
    :math:`\rho` times the geometric mean over :math:`t < T-1` of
    :math:`\operatorname{rms}(1 - h_t^2)`. For ``lstm``/``gru`` it is the geometric mean of the
    gate that keeps the state (the forget gate :math:`f_t`, the update gate :math:`z_t`): the
    cell path's factor :math:`\partial c_t/\partial c_{t-1} = \operatorname{diag}(f_t)`, a
    reference rather than a bound (the hidden path adds to it).
    """
    _, cache = recurrent_forward(x, params, mode=mode, batch_first=True)  # type: ignore[arg-type]
    layer = cache.layers[0]
    if mode == "rnn_tanh":
        rho = float(np.linalg.norm(params["weight_hh_l0"], 2))
        gain = np.sqrt(np.mean((1 - layer.h[:-1] ** 2) ** 2, axis=(1, 2)))
        return rho * float(np.exp(np.mean(np.log(gain))))
    return float(np.exp(np.mean(np.log(layer.gates[1]))))


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), np.finfo(np.float64).tiny)))


def _series(layer: str, parameter: float, size: Size, seed: int) -> tuple[Series, list[Check]]:
    rnn = layer == "rnn"
    mode, params, x, u = setup(layer, spectral_norm=parameter if rnn else None,
                               forget_bias=0.0 if rnn else parameter, length=size.length,
                               hidden=size.hidden, batch=size.batch, input_scale=INPUT_SCALE,
                               seed=seed)
    per_sample = {e: np.linalg.norm(_backprop(layer, params, x, u, e).dx, axis=-1)
                  for e in ENGINES}
    norms = {e: v.mean(axis=0) for e, v in per_sample.items()}
    rates: dict[str, float] = {e: decay_rate(n) for e, n in norms.items()}
    predicted = predicted_rate(mode, params, x)
    diff = _relative(per_sample["manual"], per_sample["torch"])
    setting = f"ρ = {parameter:g}" if rnn else f"{layer}, keep bias {parameter:g}"
    checks = [Check(layer, setting, "engines agree on ‖x̄_t‖", "both", diff, 0.0, diff,
                    ENGINE_RTOL, diff <= ENGINE_RTOL)]
    if rnn:
        for e in ENGINES:
            error = math.log(rates[e] / predicted)
            if parameter < CHAOTIC:
                    checks.append(Check(layer, setting, "per-step rate vs ρ·rms φ′", e, rates[e],
                                    predicted, error, RATE_TOLERANCE,
                                    abs(error) <= RATE_TOLERANCE))
            # Pascanu et al.'s bound, per sample and step: ‖x̄_t‖ <= ρ ‖x̄_{t+1}‖.
            worst = float(np.max(per_sample[e][:, :-1] / (parameter * per_sample[e][:, 1:])))
            checks.append(Check(layer, setting, "max ‖x̄_t‖ / (ρ ‖x̄_{t+1}‖)", e, worst, 1.0,
                                worst - 1.0, 1e-12, worst <= 1.0 + 1e-12))
    series = Series(layer, setting, parameter, {e: [float(v) for v in n]
                                                for e, n in norms.items()},
                    rates, predicted, {e: math.log(r / predicted) for e, r in rates.items()},
                    {e: float(n[0] / n[-1]) for e, n in norms.items()}, diff)
    return series, checks


def _clipping(spectral_norm: float, size: Size, seed: int) -> tuple[Clipping, list[Check]]:
    _, params, x, u = setup("rnn", spectral_norm=spectral_norm, length=size.length,
                            hidden=size.hidden, batch=size.batch, input_scale=INPUT_SCALE,
                            seed=seed)
    runs = {e: _backprop("rnn", params, x, u, e, max_norm=MAX_NORM) for e in ENGINES}
    # Per tensor ‖manual − torch‖ / ‖torch‖: single elements near zero carry the rounding of
    # a sum of exploding terms, not a wrong gradient.
    diff = max(float(np.linalg.norm(runs["manual"].dparams[k] - g) / np.linalg.norm(g))
               for k, g in runs["torch"].dparams.items())
    row = Clipping(spectral_norm, MAX_NORM, {e: r.norm_before for e, r in runs.items()},
                   {e: r.norm_after for e, r in runs.items()},
                   {e: r.norm_before / r.norm_after for e, r in runs.items()}, diff)
    setting = f"ρ = {spectral_norm:g}, max_norm {MAX_NORM:g}"
    checks = []
    for e, r in runs.items():
        # torch.nn.utils' rule: g * min(1, max_norm / (‖g‖ + 1e-6)), never scaled up.
        wanted = r.norm_before * min(1.0, MAX_NORM / (r.norm_before + 1e-6))
        error = r.norm_after / wanted - 1
        checks.append(Check("clipping", setting, "‖g‖ after clipping", e, r.norm_after, wanted,
                            error, 1e-12, abs(error) <= 1e-12))
    checks.append(Check("clipping", setting, "engines agree on clipped gradients", "both", diff,
                        0.0, diff, ENGINE_RTOL, diff <= ENGINE_RTOL))
    return row, checks


def run_experiment(profile: str = "quick", seed: int = 0) -> BpttRecord:
    """Every curve, prediction and clipping measurement of the report's section."""
    size = PROFILES[profile]
    record = BpttRecord(profile, seed, size, INPUT_SCALE, RATE_TOLERANCE)
    for rho in SPECTRAL_NORMS:
        series, checks = _series("rnn", rho, size, seed)
        record.rnn.append(series)
        record.checks += checks
    for layer in ("lstm", "gru"):
        rows = []
        for bias in KEEP_BIASES:
            series, checks = _series(layer, bias, size, seed)
            rows.append(series)
            record.checks += checks
        rates = [min(r.rate.values()) for r in rows]
        steps = min(b - a for a, b in itertools.pairwise(rates))
        record.gated += rows
        record.checks.append(Check(layer, f"keep bias {', '.join(map(str, KEEP_BIASES))}",
                                   "smallest rise of the rate", "both", steps, 0.0, steps, 0.0,
                                   steps > 0))
    for rho in CLIP_NORMS:
        row, checks = _clipping(rho, size, seed)
        record.clipping.append(row)
        record.checks += checks
    record.passed = sum(c.passed for c in record.checks)
    record.failed = len(record.checks) - record.passed
    return record
