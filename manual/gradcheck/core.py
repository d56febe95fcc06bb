r"""The numerical side of a gradient check, for any function of NumPy arrays.

A check compares the analytic gradient :math:`a = \nabla f` that backprop gives with a
numerical estimate :math:`n`:

.. math::
    n_i = \frac{f(\theta + h e_i) - f(\theta - h e_i)}{2h}
    \quad\text{(central)}, \qquad
    n_i = \frac{\operatorname{Im} f(\theta + \mathrm{i} h e_i)}{h}
    \quad\text{(complex step)}

Central differences carry a truncation error :math:`O(h^2 f''')` and a rounding error
:math:`O(\epsilon_{mach} |f| / h)`; :data:`DEFAULT_EPS` balances the two. The complex step has
no subtraction, so its error is :math:`O(h^2)` plus an ulp, for :math:`h` as small as wanted.

Anything that can evaluate perturbed copies of its inputs is an :class:`Evaluator`; this module
has the generic one, :class:`FunctionEvaluator`, and :mod:`manual.gradcheck.network` has the
fast one for a built network. :mod:`manual.gradcheck.modes` turns an evaluator into records.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from manual.gradcheck.records import ACCEPTABLE, GOOD, TensorCheck

EPS_MACH = float(np.finfo(np.float64).eps)
# The step that balances truncation (h^2) and rounding (eps/h) for central differences.
DEFAULT_EPS = EPS_MACH ** (1 / 3)  # about 6.06e-6
DEFAULT_COMPLEX_EPS = 1e-20
# Rounding noise of one derivative estimate: each intermediate value v is off by about
# eps |v|, which moves the loss by eps |v| |dL/dv|, so the evaluator's loss_scale() is
# S = sum |w l| + sum_v |v| |dL/dv|, and (f(x + h) - f(x - h)) / 2h may be off by
# NOISE_ULPS * eps * S / h. Measured on correct gradients (conformance matrix, benchmark MLPs,
# 600 fuzzed networks), the largest error of a tensor is 0.07 eps S / h at the median and 0.62
# at the 99th percentile; 3000 fuzzed networks (nightly profile) raise no false failure.
NOISE_ULPS = 4.0
MAX_KINK_INDICES = 20

Array = NDArray[np.floating]


class Evaluator(Protocol):
    """What a mode needs: the point, the analytic gradient and perturbed differences."""

    names: list[str]

    def value(self, name: str) -> Array: ...

    def problem(self, name: str) -> str:
        """Why tensor ``name`` cannot be compared at all ('' if it can): a gradient of the
        wrong shape is itself a wrong gradient."""
        ...

    def analytic(self, name: str) -> Array: ...

    def loss_scale(self) -> float:
        """:math:`S`, the sum of the absolute terms the loss adds up (for the rounding noise)."""
        ...

    def differences(
        self, name: str, h: float, flat: NDArray[np.int64] | None = None,
        direction: Array | None = None, complex_step: bool = False,
    ) -> tuple[Array, NDArray[np.bool_]]:
        """Perturb tensor ``name`` along each unit vector ``flat[k]`` (or along ``direction``).

        Returns ``(delta, crossed)``, one entry per perturbation: ``delta`` is
        :math:`f(\\theta + h e) - f(\\theta - h e)` (or :math:`\\operatorname{Im} f(\\theta +
        \\mathrm{i} h e)` with ``complex_step``); ``crossed`` says whether the perturbation moved
        the input of a kinked op across one of its kinks.
        """
        ...


class Analytic:
    """The half of the Evaluator protocol that every evaluator shares: the analytic
    gradients ``grads`` it computed once, and the loss scale ``scale``. A wrong-shaped gradient
    is a wrong answer, not bad input: its tensor is judged wrong."""

    grads: dict[str, Array]
    scale: float

    def value(self, name: str) -> Array:
        raise NotImplementedError

    def problem(self, name: str) -> str:
        got, want = np.shape(self.grads[name]), self.value(name).shape
        if got != want:
            return f"the analytic gradient has shape {got}, the tensor has shape {want}"
        return ""

    def analytic(self, name: str) -> Array:
        return self.grads[name]

    def loss_scale(self) -> float:
        return self.scale


def noise_level(evaluator: Evaluator, h: float, complex_step: bool, analytic: Array) -> float:
    """The absolute error of one numerical derivative that rounding alone can cause."""
    if complex_step:
        return NOISE_ULPS * EPS_MACH * float(np.max(np.abs(analytic), initial=0.0))
    return NOISE_ULPS * EPS_MACH * evaluator.loss_scale() / h


def relative_errors(a: Array, n: Array, noise: float | Array) -> Array:
    """:math:`|a - n| / \\max(|a| + |n|, \\text{noise} / \\text{GOOD})` (0 where both vanish)."""
    floor = np.maximum(np.asarray(noise) / GOOD, np.finfo(np.float64).tiny)
    return np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), floor)


def unmatched(name: str, shape: tuple[int, ...], mode: str, problem: str) -> TensorCheck:
    """The check of a tensor whose analytic gradient cannot even be compared: wrong."""
    return TensorCheck(
        name=name, shape=list(shape), mode=mode, checked=0, max_rel_error=math.inf,
        max_abs_error=math.inf, worst_index=[], noise=0.0, kinks_crossed=0,
        max_rel_error_kinked=0.0, kink_indices=[], verdict="wrong", passed=False,
        problem=problem,
    )


def judge(
    name: str, shape: tuple[int, ...], mode: str, a: Array, n: Array, noise: float | Array,
    crossed: NDArray[np.bool_], locate: Callable[[int], list[int]],
    refined: NDArray[np.bool_] | None = None,
) -> TensorCheck:
    """Band every element and summarise the tensor (``locate(k)`` is element ``k``'s index).

    ``refined`` marks elements whose estimate comes from a smaller step because their error
    shrank with the step (truncation, see :func:`manual.gradcheck.modes.check_elements`): like
    a crossed kink they may reach ``ACCEPTABLE``, but above it they are wrong.
    """
    refined = np.zeros(a.shape, dtype=bool) if refined is None else refined & ~crossed
    rel = relative_errors(a, n, noise)
    rel = np.where(np.isnan(rel), np.inf, rel)
    judged = ~crossed
    worst = int(np.argmax(np.where(judged, rel, -1.0))) if judged.any() else 0
    max_rel = float(rel[worst]) if judged.any() else 0.0
    kinked = rel[crossed]
    max_kinked = float(kinked.max()) if kinked.size else 0.0
    band = np.where(refined, ACCEPTABLE, GOOD)
    wrong = bool(np.any(judged & (rel > band)))
    problem = ""
    if judged.any() and not np.any(n[judged]) and np.any(a[judged]):
        # f(x + h) == f(x - h) everywhere: the step was lost in rounding, or the function
        # does not depend on this tensor. Either way the check saw nothing: never "good".
        problem = "the numerical gradient is zero everywhere but the analytic one is not"
        resolvable = float(np.max(np.abs(a[judged]))) > float(np.min(noise, initial=np.inf))
        wrong = wrong or resolvable
    if wrong:
        verdict = "wrong"
    elif problem:
        verdict = "acceptable"
    elif np.any(kinked > ACCEPTABLE):
        verdict = "kink"
    elif np.any(kinked > GOOD) or np.any(refined & (rel > GOOD)):
        verdict = "acceptable"
    else:
        verdict = "good"
    abs_err = np.abs(a - n)
    return TensorCheck(
        name=name, shape=list(shape), mode=mode, checked=int(a.size), max_rel_error=max_rel,
        max_abs_error=float(np.max(abs_err, initial=0.0)),
        worst_index=locate(worst) if a.size else [], noise=float(np.min(noise, initial=np.inf))
        if np.size(noise) else 0.0,
        kinks_crossed=int(crossed.sum()), max_rel_error_kinked=max_kinked,
        kink_indices=[locate(int(i)) for i in np.flatnonzero(crossed)[:MAX_KINK_INDICES]],
        verdict=verdict, passed=not wrong, refined=int(refined.sum()), problem=problem,
    )


KinkTest = Callable[[str, Array, Array], NDArray[np.bool_]]


class FunctionEvaluator(Analytic):
    """Perturbed evaluations of a scalar function ``f(inputs) -> float`` of named arrays.

    With ``batched=True``, ``f`` is called with the perturbed input stacked along a new leading
    axis (``(K, *shape)``, the other inputs unchanged) and returns ``(K,)`` values, so a whole
    chunk of perturbations costs one call; otherwise it is called once per perturbation.
    ``kinks(name, plus, minus)`` (optional) says, per copy, whether going from ``minus`` to
    ``plus`` (both stacked ``(K, *shape)``) crosses a kink of ``f``. ``scale`` is the absolute
    size of the terms ``f`` sums (default ``|f(inputs)|``), for the rounding noise.
    """

    def __init__(
        self, f: Callable[[dict[str, Any]], Any], inputs: Mapping[str, Array],
        grads: Mapping[str, Array], *, batched: bool = False, kinks: KinkTest | None = None,
        scale: float | None = None, chunk: int = 256,
    ) -> None:
        missing = sorted(set(inputs) - set(grads))
        if missing:
            raise ValueError(f"grads: no analytic gradient for input {missing[0]!r}")
        self.f, self.batched, self.kinks, self.chunk = f, batched, kinks, chunk
        self.inputs = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
        self.grads = {k: np.asarray(grads[k], dtype=np.float64) for k in inputs}
        self.names = list(self.inputs)
        self.scale = abs(complex(self._call(self.inputs))) if scale is None else scale

    def value(self, name: str) -> Array:
        return self.inputs[name]

    def _call(self, inputs: Mapping[str, Any]) -> Any:
        return self.f(dict(inputs))

    def _evaluate(self, name: str, stack: NDArray[Any]) -> NDArray[Any]:
        if self.batched:
            return np.asarray(self._call({**self.inputs, name: stack})).reshape(len(stack))
        return np.array([self._call({**self.inputs, name: copy}) for copy in stack])

    def differences(
        self, name: str, h: float, flat: NDArray[np.int64] | None = None,
        direction: Array | None = None, complex_step: bool = False,
    ) -> tuple[Array, NDArray[np.bool_]]:
        base = self.inputs[name]
        if direction is not None:
            steps = direction.reshape(1, *base.shape)
        elif flat is not None:
            steps = np.zeros((len(flat), base.size))
            steps[np.arange(len(flat)), flat] = 1.0
            steps = steps.reshape(len(flat), *base.shape)
        else:
            raise ValueError("differences: give the elements (flat) or a direction")
        deltas, crossings = [], []
        for start in range(0, len(steps), self.chunk):
            unit = steps[start:start + self.chunk]
            if complex_step:
                values = self._evaluate(name, base + (1j * h) * unit)
                deltas.append(np.imag(values))
                crossings.append(np.zeros(len(unit), dtype=bool))
                continue
            plus, minus = base + h * unit, base - h * unit
            deltas.append(np.real(self._evaluate(name, plus) - self._evaluate(name, minus)))
            crossed = (self.kinks(name, plus, minus) if self.kinks is not None
                       else np.zeros(len(unit), dtype=bool))
            crossings.append(np.asarray(crossed, dtype=bool))
        return np.concatenate(deltas), np.concatenate(crossings)


def straddles(plus: NDArray[Any], minus: NDArray[Any], points: tuple[float, ...],
              axes: tuple[int, ...]) -> NDArray[np.bool_]:
    """Whether, reduced over ``axes``, some element lies on different sides of a kink point in
    ``plus`` and ``minus`` (touching the point counts; an element resting on it does not)."""
    crossed: NDArray[np.bool_] | None = None
    for point in points:
        moved = np.sign(plus - point) != np.sign(minus - point)
        moved = np.any(moved, axis=axes) if axes else moved
        crossed = moved if crossed is None else crossed | moved
    if crossed is None:
        raise ValueError("straddles: no kink points given")
    return crossed

