"""The user's side of one case: their forward and backward called, every result compared.

:func:`user_pass` calls ``forward(*arrays, **options)`` (or takes the result of a call already
made, when the twin needed the user's mask first), then ``backward(*douts, cache)``, and
compares each output and gradient by the user's names (``forward: out``, ``backward: w``).
What cannot be compared is said in plain words: a forward or backward that raised (with the
inputs whose shapes appear in the error: :func:`raised`), a gradient missing or ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from manual.registry import Tolerance
from reference.checks.diagnose import _failed, compare_named
from reference.checks.twin import split_outputs
from reference.core.names import TensorName
from reference.core.records import TensorComparison

_SHAPE = re.compile(r"\((\d+(?:\s*,\s*\d+)*)\s*,?\s*\)")


class Missing:
    """A gradient the backward did not return, with what it returned instead."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


def error_text(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def raised(where: str, error: BaseException, arrays: Mapping[str, np.ndarray]) -> str:
    """``forward raised ValueError: ... (2,3,4,5) (3,): the shapes of x (2, 3, 4, 5) and
    gamma (3,)``: which inputs' shapes the user's code could not take, when the error names
    shapes (NumPy's broadcast errors do); else every input's shape in this case."""
    text = f"{where} raised {error_text(error)}"
    shapes = {tuple(int(d) for d in m.split(",")) for m in _SHAPE.findall(str(error))}
    named = [f"{n} {a.shape}" for n, a in arrays.items() if np.shape(a) in shapes]
    if named:
        return f"{text}: your code could not take the shapes of {' and '.join(named)}"
    listed = ", ".join(f"{n} {np.shape(a)}" for n, a in arrays.items())
    return f"{text} (inputs: {listed})"


def as_list(grads: Any, real: Sequence[bool]) -> list[Any]:
    """The user's gradients of the float arrays (``real``), missing ones as :class:`Missing`.
    A backward may also return one entry per array, ``None`` at an integer input."""
    count = sum(real)
    if count == 1 and not isinstance(grads, tuple | list):
        return [grads]
    if grads is None:
        return [Missing("returned None: backward returned nothing")] * count
    if not isinstance(grads, tuple | list):
        return [grads] + [Missing(f"missing: backward returned 1 gradient, not {count}")] * (
            count - 1)
    if len(grads) == len(real) > count:
        return [g for g, r in zip(grads, real, strict=True) if r]
    got = list(grads)[:count]
    missing = Missing(f"missing: backward returned {len(grads)} gradients, not {count}")
    return got + [missing] * (count - len(got))


def call_forward(forward: Callable[..., Any], given: Mapping[str, np.ndarray],
                 options: Mapping[str, Any], count: int) -> tuple[list[Any], Any] | BaseException:
    """The user's outputs and cache, or what the forward raised."""
    try:
        with np.errstate(all="ignore"):  # a non-finite result is compared, not warned about
            return split_outputs(forward(*given.values(), **options), count)
    except Exception as error:
        return error


def user_pass(
    backward: Callable[..., Any], forward_result: tuple[list[Any], Any] | BaseException,
    douts: Sequence[np.ndarray], wants: Sequence[np.ndarray], outputs: Sequence[str],
    want_grads: Mapping[str, np.ndarray], diff: Sequence[str], real: Sequence[bool],
    tolerance: Tolerance, keep_values: bool, context: Mapping[str, np.ndarray],
) -> tuple[list[TensorComparison], list[np.ndarray] | None, dict[str, Any]]:
    """Every output and gradient of the user's pass compared; the upstream gradients as the
    backward left them (``None`` when it never ran); the user's values by tensor name."""
    names = [*(TensorName("forward", o) for o in outputs),
             *(TensorName("backward", n) for n in diff)]
    every = [*wants, *(want_grads[n] for n in diff)]
    if isinstance(forward_result, BaseException):
        problem = raised("forward", forward_result, context)
        return [_failed(n, w, tolerance, problem if i < len(outputs) else
                        f"not run: {problem}", keep_values)
                for i, (n, w) in enumerate(zip(names, every, strict=True))], None, {}
    outs, cache = forward_result
    values: dict[str, Any] = {str(n): o for n, o in zip(names, outs, strict=False)}
    tensors = [compare_named(n, o, w, tolerance, keep_values, context)
               for n, o, w in zip(names[:len(outputs)], outs, wants, strict=True)]
    given = [d.copy() for d in douts]
    try:
        with np.errstate(all="ignore"):
            grads = as_list(backward(*given, cache), real)
    except Exception as error:
        problem = raised("backward", error, context)
        tensors += [_failed(n, w, tolerance, problem, keep_values)
                    for n, w in zip(names[len(outputs):], every[len(outputs):], strict=True)]
        return tensors, given, values
    for name, w, got in zip(names[len(outputs):], every[len(outputs):], grads, strict=True):
        if isinstance(got, Missing):
            tensors.append(_failed(name, w, tolerance, got.problem, keep_values))
        else:
            values[str(name)] = got
            tensors.append(compare_named(name, got, w, tolerance, keep_values, context))
    return tensors, given, values
