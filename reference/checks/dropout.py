r"""A randomised layer without a twin: dropout checked by its statistics.

PyTorch's dropout draws its own mask, so no twin can reproduce the user's. What inverted
dropout promises can be checked on the user's layer alone, on a positive input
:math:`x = 0.5 + |z|` (so that an output is zero exactly where the mask dropped it), with
:math:`q` the keep probability and :math:`n` elements:

- the fraction of zeros is :math:`1 - q` within :math:`Z\sqrt{q(1-q)/n}`;
- the mean is kept: :math:`r = \sum out / \sum x` is 1 within
  :math:`Z\sqrt{(1-q)/q \cdot \sum x^2} / \sum x` (the kept values are divided by :math:`q`);
  ``mean scaled by 0.67: not inverted dropout?`` otherwise;
- the mask differs between rows (one mask per example, not one per feature for the batch);
- the backward uses the forward's mask and scale: ``dx = dout * out / x`` exactly;
- the eval mode (``then``, by default ``{"mode": "test"}`` in the dict option holding
  ``"mode": "train"``, the course's ``dropout_param``) is the identity;
- dtypes are kept and the upstream gradient and the input come back unchanged.

:math:`Z = 5` makes a false alarm about one in two million checks. ``keep`` is the keep
probability (the course's ``p``); ``drop`` is PyTorch's meaning of ``p``; give one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from manual.random import stream
from manual.registry import DEFAULT_TOLERANCES
from manual.spec import DTYPES
from reference.checks.cases import Case
from reference.checks.diagnose import _failed, compare_named, unchanged
from reference.checks.result import LayerResult
from reference.checks.userpass import error_text
from reference.core.compare import compare_arrays
from reference.core.names import TensorName
from reference.core.records import ComparisonRecord, TensorComparison

Z = 5.0
MIN_ELEMENTS = 1000  # fewer: the bounds are too wide to see a wrong keep probability


def statistic(name: TensorName, value: float, expected: float, bound: float, problem: str
              ) -> TensorComparison:
    """A statistic as a compared tensor: passes when ``|value - expected| <= bound``."""
    error = abs(value - expected)
    passed = bool(error <= bound)
    record = compare_arrays(name, np.asarray(value), np.asarray(expected),
                            DEFAULT_TOLERANCES["float64"], keep_values=False)
    record.max_abs_error, record.tolerance_ratio = error, error / bound if bound else 0.0
    record.passed, record.problem = passed, "" if passed else problem
    return record


def _eval_options(options: Mapping[str, Any], then: Mapping[str, Any] | None
                  ) -> dict[str, Any] | None:
    merged = copy.deepcopy(dict(options))
    if then is None:
        owners = [k for k, v in merged.items() if isinstance(v, dict) and v.get("mode") == "train"]
        if not owners:
            return None
        then = {owners[0]: {"mode": "test"}}
    for key, value in then.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return merged


def _forward_checks(out: np.ndarray, x: np.ndarray, keep: float) -> list[TensorComparison]:
    """The mask's rows first (a shared mask makes the other statistics noisy), then the
    fraction of zeros and the mean."""
    n = x.size
    kept = out != 0
    tensors = []
    if x.ndim >= 2 and len(x) >= 2:
        rows = kept.reshape(len(x), -1)
        same = bool(np.all(rows == rows[0]))
        tensors.append(statistic(TensorName("forward", "rows"), float(same), 0.0, 0.5,
                                 "mask does not differ between rows: one mask for the whole "
                                 "batch (drawn per feature, not per element?)"))
    zeros = float(1.0 - kept.mean())
    zero_bound = Z * np.sqrt(keep * (1 - keep) / n)
    tensors.append(statistic(TensorName("forward", "zeros"), zeros, 1 - keep, zero_bound,
                             f"a fraction {zeros:.3g} of the output is zero where the drop "
                             f"probability is {1 - keep:.3g} (bound ±{zero_bound:.2g}): keep "
                             "and drop probabilities swapped?"))
    ratio = float(out.sum(dtype=np.float64) / x.sum(dtype=np.float64))
    mean_bound = Z * np.sqrt((1 - keep) / keep * np.sum(x.astype(np.float64) ** 2)) / float(
        x.sum(dtype=np.float64))
    tensors.append(statistic(TensorName("forward", "mean"), ratio, 1.0, mean_bound,
                             f"mean scaled by {ratio:.2g}: not inverted dropout? (the kept "
                             f"values must be divided by the keep probability {keep:.3g})"))
    return tensors


def dropout_case(forward: Callable[..., Any], backward: Callable[..., Any], x: np.ndarray,
                 options: Mapping[str, Any], keep: float, then: Mapping[str, Any] | None,
                 dtype: str, seed: int, name: str) -> ComparisonRecord:
    """Every statistical check of one dtype (see the module docstring)."""
    tolerance = DEFAULT_TOLERANCES[dtype]
    given, train = x.copy(), copy.deepcopy(dict(options))
    try:
        out, cache = forward(given, **train)
    except Exception as error:
        return _record(name, dtype, seed, keep, tolerance.reason, [_failed(
            TensorName("forward", "out"), x, tolerance, f"forward raised {error_text(error)}",
            False)])
    out = np.asarray(out)
    if out.shape != x.shape:
        return _record(name, dtype, seed, keep, tolerance.reason, [compare_named(
            TensorName("forward", "out"), out, x, tolerance, False)])
    tensors = _forward_checks(out.astype(np.float64), x.astype(np.float64), keep)
    scale = np.where(out != 0, out.astype(np.float64) / x, 0.0)
    tensors.append(compare_named(TensorName("forward", "out"), out,
                                 (x * scale).astype(dtype), tolerance, False))
    dout = stream(seed, "upstream", name).standard_normal(x.shape).astype(dtype)
    passed_in = dout.copy()
    want = (dout * scale).astype(dtype)
    try:
        dx = backward(passed_in, cache)
    except Exception as error:
        tensors.append(_failed(TensorName("backward", "x"), want, tolerance,
                               f"backward raised {error_text(error)}", False))
        return _record(name, dtype, seed, keep, tolerance.reason, tensors)
    back = compare_named(TensorName("backward", "x"), dx, want, tolerance, False)
    if not back.passed and np.shape(dx) == x.shape:
        differ = int(np.sum((np.asarray(dx) == 0) != (scale == 0)))
        if differ:
            back.problem = (f"the backward does not use the forward's mask ({differ} of "
                            f"{x.size} elements are zero in one and not the other)")
    tensors += [back, unchanged(TensorName("hygiene", "dout"), passed_in, dout),
                unchanged(TensorName("hygiene", "x"), given, x)]
    evaluation = _eval_options(options, then)
    if evaluation is not None:
        try:
            seen = np.asarray(forward(x.copy(), **evaluation)[0])
        except Exception as error:
            tensors.append(_failed(TensorName("eval", "out"), x, tolerance,
                                   f"forward raised {error_text(error)}", False))
        else:
            tensors.append(compare_named(TensorName("eval", "out"), seen, x, tolerance, False))
    return _record(name, dtype, seed, keep, tolerance.reason, tensors)


def _record(name: str, dtype: str, seed: int, keep: float, reason: str,
            tensors: list[TensorComparison]) -> ComparisonRecord:
    passed = all(t.passed for t in tensors)
    return ComparisonRecord(
        subject=name, kind="layer", dtype=dtype, seed=seed, passed=passed,
        first_divergence=None if passed else next(t.name for t in tensors if not t.passed),
        tolerance_reason=f"{reason}; statistics within {Z:g} standard deviations",
        tensors=tensors, options={"keep": keep})


def check_dropout(forward: Callable[..., Any], backward: Callable[..., Any], *,
                  inputs: Mapping[str, tuple[int, ...]], options: Mapping[str, Any] | None = None,
                  keep: float | None = None, drop: float | None = None,
                  then: Mapping[str, Any] | None = None, dtypes: Sequence[str] = DTYPES,
                  seed: int = 0, name: str | None = None) -> LayerResult:
    """Check a dropout-like ``forward``/``backward`` pair by its statistics, in each dtype.

    ``inputs`` is one input's shape (at least 1000 elements, rows for the examples);
    ``keep`` or ``drop`` the probability the layer was given in ``options``."""
    if (keep is None) == (drop is None):
        raise ValueError("check_dropout: give keep (the keep probability) or drop, not both")
    q = float(keep if keep is not None else 1 - float(drop))  # type: ignore[arg-type]
    if not 0 < q < 1:
        raise ValueError(f"keep: the keep probability must be in (0, 1), got {q:g}")
    if len(inputs) != 1:
        raise ValueError("inputs: a dropout layer takes one input, its shape by name")
    (label, shape), = inputs.items()
    if int(np.prod(shape)) < MIN_ELEMENTS:
        raise ValueError(f"inputs[{label!r}]: {int(np.prod(shape))} elements; give at least "
                         f"{MIN_ELEMENTS} so that the statistics can tell")
    subject = name or str(getattr(forward, "__name__", "dropout"))
    magnitude = np.abs(stream(seed, "data", label).standard_normal(shape))
    result = LayerResult(subject, [], [], [], against="the statistics of inverted dropout")
    for dtype in dtypes:
        x = (0.5 + magnitude).astype(dtype)
        result.cases.append(Case(dtype))
        result.records.append(dropout_case(forward, backward, x, dict(options or {}), q,
                                           then, dtype, seed, subject))
        result.sizes.append(x.size)
    return result


class DropoutCase:
    """A dropout-like layer for ``backprop-harness check``: ``DropoutCase(name, forward,
    backward, **check_dropout's keyword arguments)``."""

    def __init__(self, name: str, forward: Callable[..., Any], backward: Callable[..., Any],
                 **kwargs: Any) -> None:
        if not name:
            raise ValueError("DropoutCase: give the case a name")
        self.name, self.forward, self.backward, self.kwargs = name, forward, backward, kwargs

    def __repr__(self) -> str:
        return f"DropoutCase({self.name!r})"

    def run(self) -> LayerResult:
        return check_dropout(self.forward, self.backward, name=self.name, **self.kwargs)
