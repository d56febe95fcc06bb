r"""The four ways to check an :class:`~manual.gradcheck.core.Evaluator`, and the record they make.

- ``full``: every element, central differences (two evaluations per element, batched by the
  evaluator);
- ``sparse``: ``k`` elements per tensor, drawn from ``stream(seed, "directions", tensor)``;
- ``projection``: one random direction per tensor. It compares :math:`v^\top J u` from
  backprop, :math:`\sum_i a_i u_i`, with :math:`(f(\theta + h u) - f(\theta - h u)) / 2h`:
  one backward for all tensors and two evaluations per tensor. :math:`u` has standard normal
  entries (a sign vector can fall into a structured null space, such as the constant rows
  that softmax's gradient is orthogonal to); :math:`v` is the upstream gradient, 1 for a
  reduced loss and a random vector for an unreduced one. The tolerance is scaled as in
  PyTorch's fast mode: an elementwise band :math:`\tau (|a_i| + |n_i|)` becomes
  :math:`\tau \sum_i |u_i| (|a_i| + |n_i|) \approx 2\tau \sum_i |u_i| |a_i|`. A direction
  that crosses a kink is retried with a smaller step; a direction that still does not pass
  falls back to ``full`` on that tensor, to say where;
- ``complex``: the complex step, one evaluation per element, exact to rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from manual.gradcheck.core import (
    DEFAULT_COMPLEX_EPS,
    DEFAULT_EPS,
    Array,
    Evaluator,
    FunctionEvaluator,
    KinkTest,
    judge,
    noise_level,
    relative_errors,
    unmatched,
)
from manual.gradcheck.records import ACCEPTABLE, GOOD, MODES, GradcheckRecord, TensorCheck
from manual.random import stream

PROJECTION_RETRIES = 2
PROJECTION_SHRINK = 30.0
REFINE_STEP = 10.0  # the second step is h / REFINE_STEP
REFINE_GAIN = 5.0  # truncation O(h) shrinks 10x, O(h^2) 100x; a wrong gradient does not


# Steps a check in float64 can use. Central differences: the rounding noise eps_mach |f| / h
# hides a wrong gradient as h shrinks (at 1e-300, x + h == x and the estimate is zero) and
# the truncation error h^2 f'(3) calls right gradients wrong as h grows. Measured on the bug
# zoo's 22 gradient mutants (tests/test_gradcheck_zoo.py's subjects): at 1e-8 one mutant
# passes (leaky_slope_dropped), at 1e-9 three; at 1e-2 seven correct networks fail. From
# 1e-7 to 3e-3 every mutant fails and every correct network passes. The complex step has no
# cancellation, but h f' must stay a normal float64 and h^2 below the good band.
STEP_RANGE = {"central": (1e-7, 1e-3), "complex": (1e-150, 1e-5)}
STEP_WARN_FACTOR = 10.0  # warn beyond DEFAULT_EPS times or over this


def default_eps(mode: str) -> float:
    return DEFAULT_COMPLEX_EPS if mode == "complex" else DEFAULT_EPS


def check_step(mode: str, eps: float | None) -> str:
    """Refuse (``ValueError``) a step outside :data:`STEP_RANGE`; return a warning ('' if none)
    when a central-difference step is far from the balanced eps_mach^(1/3)."""
    h = default_eps(mode) if eps is None else float(eps)
    if not (np.isfinite(h) and h > 0):
        raise ValueError(f"eps: must be a positive finite number, got {eps!r}")
    kind = "complex" if mode == "complex" else "central"
    low, high = STEP_RANGE[kind]
    if not low <= h <= high:
        what = "the complex step" if kind == "complex" else "central differences"
        raise ValueError(f"eps: {h:g} is outside [{low:g}, {high:g}], the steps {what} can "
                         f"use in float64 (default {default_eps(mode):.3g})")
    balanced = DEFAULT_EPS / STEP_WARN_FACTOR <= h <= DEFAULT_EPS * STEP_WARN_FACTOR
    if kind == "central" and not balanced:
        side = ("rounding noise grows as eps_mach/h" if h < DEFAULT_EPS
                else "truncation error grows as h^2")
        return (f"eps {h:g} is far from eps_mach^(1/3) = {DEFAULT_EPS:.3g}: {side}, so "
                f"verdicts are less reliable")
    return ""


def _locator(shape: tuple[int, ...], flat: np.ndarray) -> Any:
    return lambda k: [int(i) for i in np.unravel_index(int(flat[k]), shape)] if shape else []


def check_elements(evaluator: Evaluator, name: str, flat: np.ndarray, h: float,
                   mode: str) -> tuple[TensorCheck, int]:
    r"""Central differences (or the complex step) on the elements ``flat`` of tensor ``name``.

    The truncation error of a central difference is :math:`O(h^2)` only where the function
    has a third derivative; where a second derivative jumps within :math:`h` (softsign at 0,
    huber at ``delta``) it is :math:`O(h)`, about :math:`3 \cdot 10^{-6}` at the default step.
    So an element that fails the good band without crossing a kink is tried once more at
    :math:`h / 10`: if its error falls at least :data:`REFINE_GAIN` times, the error was
    truncation (a wrong gradient does not shrink with the step) and the element is judged
    there (up to ``ACCEPTABLE``). Returns the check and the number of evaluations.
    """
    complex_step = mode == "complex"
    shape = evaluator.value(name).shape
    a = evaluator.analytic(name).reshape(-1)[flat]
    delta, crossed = evaluator.differences(name, h, flat=flat, complex_step=complex_step)
    n = delta / h if complex_step else delta / (2 * h)
    noise = np.full(a.shape, noise_level(evaluator, h, complex_step, evaluator.analytic(name)))
    used = len(flat) * (1 if complex_step else 2)
    refined = np.zeros(a.shape, dtype=bool)
    rel = relative_errors(a, n, noise)
    retry = np.flatnonzero((rel > GOOD) & ~crossed)
    if retry.size and not complex_step:
        small = h / REFINE_STEP
        delta2, crossed2 = evaluator.differences(name, small, flat=flat[retry])
        used += 2 * retry.size
        n2 = delta2 / (2 * small)
        noise2 = noise[retry] * REFINE_STEP
        shrank = (relative_errors(a[retry], n2, noise2) * REFINE_GAIN <= rel[retry]) & ~crossed2
        keep = retry[shrank]
        n[keep], noise[keep], refined[keep] = n2[shrank], noise2[shrank], True
    check = judge(name, shape, mode, a, n, noise, crossed, _locator(shape, flat), refined)
    return check, used


def check_projection(evaluator: Evaluator, name: str, h: float,
                     rng: np.random.Generator) -> tuple[TensorCheck, int]:
    """One random-direction check of tensor ``name``; returns the check and the evaluations."""
    value, a = evaluator.value(name), evaluator.analytic(name)
    u = rng.standard_normal(value.shape)
    q_a = float(np.sum(a * u))
    scale = 2 * float(np.sum(np.abs(a * u)))
    forwards, step = 0, h
    for _ in range(PROJECTION_RETRIES + 1):
        delta, crossed = evaluator.differences(name, step, direction=u)
        forwards += 2
        q_n = float(delta[0]) / (2 * step)
        noise = noise_level(evaluator, step, False, a)
        rel = abs(q_a - q_n) / max(scale, noise / GOOD, np.finfo(np.float64).tiny)
        if not crossed[0]:
            break
        step /= PROJECTION_SHRINK
    kinked = bool(crossed[0])
    blind = q_n == 0 and q_a != 0  # the step was lost in rounding: the check saw nothing
    if not blind and (rel <= GOOD or (kinked and rel <= ACCEPTABLE)):
        return TensorCheck(
            name=name, shape=list(value.shape), mode="projection", checked=1,
            max_rel_error=0.0 if kinked else rel, max_abs_error=abs(q_a - q_n), worst_index=[],
            noise=noise, kinks_crossed=int(kinked), max_rel_error_kinked=rel if kinked else 0.0,
            kink_indices=[], verdict="acceptable" if kinked and rel > GOOD else "good",
            passed=True,
        ), forwards
    full, used = check_elements(evaluator, name, np.arange(value.size), h, "full")
    full.mode, full.located_by = "projection", "full"
    full.problem = (f"projection: relative error {rel:.3g}"
                    + (" (direction crossed a kink)" if kinked else "")
                    + "; located by a full check of this tensor")
    return full, forwards + used


def run_check(
    evaluator: Evaluator, *, mode: str = "full", eps: float | None = None, seed: int = 0,
    k: int = 16, subject: str = "", source_dtype: str = "float64",
    spec: dict[str, Any] | None = None, options: dict[str, Any] | None = None,
) -> GradcheckRecord:
    """Check every tensor of ``evaluator`` in ``mode`` and collect the record."""
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {', '.join(MODES)}, got {mode!r}")
    check_step(mode, eps)
    h = default_eps(mode) if eps is None else float(eps)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k: must be a positive integer, got {k!r}")
    tensors: list[TensorCheck] = []
    forwards = 0
    for name in evaluator.names:
        size = evaluator.value(name).size
        problem = evaluator.problem(name)
        if problem:
            tensors.append(unmatched(name, evaluator.value(name).shape, mode, problem))
            continue
        rng = stream(seed, "directions", name)  # one per tensor: none shifts another's draws
        if mode == "projection":
            check, used = check_projection(evaluator, name, h, rng)
            tensors.append(check)
            forwards += used
            continue
        if mode == "sparse":
            flat = np.sort(rng.choice(size, size=min(k, size), replace=False))
        else:
            flat = np.arange(size)
        check, used = check_elements(evaluator, name, flat, h, mode)
        tensors.append(check)
        forwards += used
    return GradcheckRecord(
        subject=subject, mode=mode, eps=h, seed=seed, source_dtype=source_dtype,
        passed=all(t.passed for t in tensors), tensors=tensors, forwards=forwards, spec=spec,
        options=dict(options or {}),
    )


def check_function(
    f: Callable[[dict[str, Any]], Any], inputs: Mapping[str, Array], grads: Mapping[str, Array],
    *, mode: str = "full", eps: float | None = None, seed: int = 0, k: int = 16,
    batched: bool = False, kinks: KinkTest | None = None, scale: float | None = None,
    subject: str = "function",
) -> GradcheckRecord:
    """Check ``grads`` (the analytic gradient of scalar ``f`` at ``inputs``) numerically.

    ``f`` takes a dict of arrays; for ``mode="complex"`` it must accept complex arrays and be
    analytic on the checked path. Returns a :class:`~manual.gradcheck.records.GradcheckRecord`.
    """
    evaluator = FunctionEvaluator(f, inputs, grads, batched=batched, kinks=kinks, scale=scale)
    return run_check(evaluator, mode=mode, eps=eps, seed=seed, k=k, subject=subject,
                     source_dtype=str(np.result_type(*inputs.values())))
