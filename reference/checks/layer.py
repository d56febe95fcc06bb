"""``check_layer``: a user's forward/backward pair with parameters against any PyTorch twin.

The convention is the well-known course's and the seed's::

    out, cache = forward(*arrays, **options)        # arrays in the order of ``inputs``
    grads = backward(dout, cache)                    # one gradient per float input, same order

``torch`` is a callable on tensors (``lambda x, w, b, conv_param: F.conv2d(...)``: the
inputs positionally, the options by name, arrays in options as tensors) or an
``nn.Module`` (called on the inputs alone; ``params`` maps the user's parameter names to
the module's, and its buffers are the reference state, see :mod:`reference.checks.state`).
Every case compares the output, every gradient by the user's names (``backward: w``), and
the hygiene of the call: the upstream gradient and every input must come back unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from manual.jsonable import encode
from manual.random import stream
from manual.registry import DEFAULT_TOLERANCES, Tolerance
from reference.checks import cases as cs
from reference.checks import state as st
from reference.checks.diagnose import _failed, compare_named, unchanged
from reference.checks.twin import Skip, node_name, user_subject
from reference.core.compare import cast_options
from reference.core.driver import LayerPair, LayerSample, layer_case
from reference.core.names import TensorName
from reference.core.records import ComparisonRecord, TensorComparison

__all__ = ["LayerCheck", "Skip"]

Forward = Callable[..., tuple[Any, Any]]
Backward = Callable[[Any, Any], Any]


class LayerCheck:
    """Everything ``check_layer`` was given; :meth:`run` checks one :class:`Case`."""

    def __init__(
        self, forward: Forward, backward: Backward, *, torch: Callable[..., Any] | nn.Module,
        inputs: Mapping[str, cs.InputSpec], options: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None, state: Mapping[str, str] | None = None,
        steps: int = 1, then: Mapping[str, Any] | None = None, name: str | None = None,
        seed: int = 0, tolerance: Tolerance | None = None, kinks: Sequence[float] = (0.0,),
    ) -> None:
        if not callable(forward) or not callable(backward):
            raise TypeError("check_layer: forward and backward must be callables")
        if not callable(torch):
            raise TypeError(f"torch: must be a callable or an nn.Module, got {type(torch)!r}")
        if not inputs:
            raise ValueError("inputs: give at least one input (a shape or an array) by name")
        for key, spec in inputs.items():
            if not isinstance(spec, tuple | np.ndarray | cs.Labels):
                raise TypeError(f"inputs[{key!r}]: must be a shape tuple, an array or Labels, "
                                f"got {type(spec).__name__}")
        self.params = dict(params or {})
        if self.params and not isinstance(torch, nn.Module):
            raise ValueError("params: needs torch to be an nn.Module (its parameters' names)")
        if state and not isinstance(torch, nn.Module):
            raise ValueError("state: needs torch to be an nn.Module (its buffers are the state)")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps: must be a positive integer, got {steps!r}")
        self.forward, self.backward, self.reference = forward, backward, torch
        self.inputs, self.options = dict(inputs), dict(options or {})
        self.state, self.steps, self.then = dict(state or {}), steps, then
        self.name: str = name or str(getattr(forward, "__name__", "layer"))
        self.seed, self.tolerance, self.kinks = seed, tolerance, tuple(kinks)
        self.symbols = cs.symbols_of(self.inputs)
        if isinstance(torch, nn.Module):
            known = dict(torch.named_parameters())
            for user, theirs in self.params.items():
                if theirs not in known:
                    raise ValueError(f"params[{user!r}]: the module has no parameter "
                                     f"{theirs!r} (it has {', '.join(known) or 'none'})")
                if user in self.inputs:
                    raise ValueError(f"params[{user!r}]: also given in inputs")
        self.names = [*self.inputs, *self.params]
        self.first = next(iter(self.inputs))

    # -- drawing ---------------------------------------------------------------------
    def differentiable(self, arrays: Mapping[str, np.ndarray]) -> list[str]:
        return [n for n in self.names if arrays[n].dtype.kind == "f"]

    def draw(self, case: cs.Case, step: str = "",
             only: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """The arrays of ``case`` (redrawn for a later ``step``, ``only`` some of them)."""
        wanted = list(self.names if only is None else only)
        batch = None
        if case.special == "batch1" and cs.BATCH not in case.sizes:
            batch = 1
        lead = self._lead(case)
        arrays: dict[str, np.ndarray] = {}
        for name in wanted:
            if name in self.params and isinstance(self.reference, nn.Module):  # checked in init
                module = self.reference
                shape = tuple(dict(module.named_parameters())[self.params[name]].shape)
                spec: cs.InputSpec = shape
            else:
                spec = self.inputs[name]
            same_batch = (name == self.first or (isinstance(spec, cs.Labels) and lead is not None
                          and cs.resolve(spec.shape, case.sizes)[:1] == (lead,)))
            arrays[name] = cs.draw(name, spec, case, seed=self.seed, step=step,
                                   first=name == self.first, kinks=self.kinks,
                                   batch=batch if same_batch else None)
        return arrays

    def _lead(self, case: cs.Case) -> int | None:
        spec = self.inputs[self.first]
        shape = spec.shape if isinstance(spec, cs.Labels | np.ndarray) else \
            cs.resolve(spec, case.sizes)
        return int(shape[0]) if len(shape) else None

    def case_options(self, case: cs.Case) -> dict[str, Any]:
        options = copy.deepcopy(self.options)
        options.update(copy.deepcopy(case.overrides))
        return cast_options(options, case.dtype)

    def tolerance_for(self, case: cs.Case) -> Tolerance:
        base = self.tolerance or DEFAULT_TOLERANCES[case.dtype]
        if case.special != "extreme":
            return base
        # The rounding of a sum grows with its terms: scale atol with the input's magnitude.
        scale = cs.EXTREME[case.dtype]
        return Tolerance(base.rtol, base.atol * scale,
                         f"{base.reason}; extreme inputs: atol x {scale:g}")

    # -- the reference -----------------------------------------------------------------
    def reference_for(self, case: cs.Case) -> Callable[..., Any]:
        if not isinstance(self.reference, nn.Module):
            return self.reference
        module = copy.deepcopy(self.reference).to(getattr(torch, case.dtype))
        module.train()
        return module

    def twin_pair(self, case: cs.Case, arrays: Mapping[str, np.ndarray],
                  options: dict[str, Any], reference: Callable[..., Any]) -> LayerPair:
        """The layer driver's pair for ``case``: the user's twin as the node's module (its
        upstream the seeded random one of PyTorch's output shape)."""
        dtype = case.dtype

        def upstream(shape: tuple[int, ...]) -> np.ndarray:
            return stream(self.seed, "upstream", self.name).standard_normal(shape).astype(dtype)

        subject = user_subject(self.forward, self.backward, reference, options=options,
                               params=self.params, name=self.name)
        sample = LayerSample([arrays[n] for n in self.inputs], options,
                             params={p: arrays[p] for p in self.params},
                             upstream={"output": upstream})
        return LayerPair(layer_case(subject, sample, dtype, seed=self.seed,
                                    node=node_name(list(self.inputs)), refs=list(self.inputs)))

    # -- one case ----------------------------------------------------------------------
    def run(self, case: cs.Case, keep_values: bool = True) -> ComparisonRecord:
        """Check ``case``; raises :class:`Skip` when PyTorch itself rejects it."""
        tolerance = self.tolerance_for(case)
        arrays = self.draw(case)
        options = self.case_options(case)
        reference = self.reference_for(case)
        homes = st.seed_state(self, reference, options)
        diff = self.differentiable(arrays)
        pair = self.twin_pair(case, arrays, options, reference)
        ref = pair.reference()
        node = pair.case.node.name
        want = ref.values[node].copy()
        dout = ref.grad_at_output[node]  # type: ignore[index]
        want_grads = {n: (ref.param_grads[f"{node}.{n}"] if n in self.params else ref.grad_at[n])
                      for n in diff}
        given = {n: a.copy() for n, a in arrays.items()}
        context = {n: arrays[n] for n in self.inputs}
        results = self._user_pass(given, options, dout.copy(), want, want_grads, diff,
                                  tolerance, keep_values, context)
        tensors, user_dout = results
        if user_dout is not None:
            tensors.append(unchanged(TensorName("hygiene", "dout"), user_dout, dout))
        tensors += [unchanged(TensorName("hygiene", n), given[n], arrays[n]) for n in self.names]
        notes: list[str] = []
        if self.state or self.then is not None:
            more, notes = st.run_steps(self, case, pair, reference, options, homes, tolerance,
                                       keep_values)
            tensors += more
        return self.record(case, tensors, tolerance, notes)

    def _user_pass(
        self, given: Mapping[str, np.ndarray], options: Mapping[str, Any], dout: np.ndarray,
        want: np.ndarray, want_grads: Mapping[str, np.ndarray], diff: Sequence[str],
        tolerance: Tolerance, keep_values: bool, context: Mapping[str, np.ndarray],
    ) -> tuple[list[TensorComparison], np.ndarray | None]:
        names = [TensorName("forward", "out"), *(TensorName("backward", n) for n in diff)]
        wants = [want, *(want_grads[n] for n in diff)]
        try:
            out, cache = _unpack(self.forward(*given.values(), **options))
        except Exception as error:
            return [_failed(n, w, tolerance, f"not run: forward raised {_error(error)}"
                            if i else f"forward raised {_error(error)}", keep_values)
                    for i, (n, w) in enumerate(zip(names, wants, strict=True))], None
        tensors = [compare_named(names[0], out, want, tolerance, keep_values, context)]
        try:
            grads = _as_list(self.backward(dout, cache), len(diff))
        except Exception as error:
            tensors += [_failed(n, w, tolerance, f"backward raised {_error(error)}", keep_values)
                        for n, w in zip(names[1:], wants[1:], strict=True)]
            return tensors, dout
        for name, w, got in zip(names[1:], wants[1:], grads, strict=True):
            if isinstance(got, _Missing):
                tensors.append(_failed(name, w, tolerance, got.problem, keep_values))
            else:
                tensors.append(compare_named(name, got, w, tolerance, keep_values, context))
        return tensors, dout

    def record(self, case: cs.Case, tensors: list[TensorComparison], tolerance: Tolerance,
               notes: list[str]) -> ComparisonRecord:
        passed = all(t.passed for t in tensors)
        return ComparisonRecord(
            subject=self.name, kind="layer", dtype=case.dtype, seed=self.seed, passed=passed,
            first_divergence=None if passed else next(t.name for t in tensors if not t.passed),
            tolerance_reason=tolerance.reason, tensors=tensors,
            options={**dict(encode(self.options)), **case.config()}, notes=notes,
        )


class _Missing:
    def __init__(self, problem: str) -> None:
        self.problem = problem


def _error(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _unpack(result: Any) -> tuple[Any, Any]:
    if not isinstance(result, tuple) or len(result) != 2:
        raise TypeError(f"forward must return (out, cache), got {type(result).__name__}")
    return result[0], result[1]


def _as_list(grads: Any, count: int) -> list[Any]:
    """The user's gradients as a list of ``count`` (missing ones as :class:`_Missing`)."""
    if count == 1 and not isinstance(grads, tuple | list):
        return [grads]
    if grads is None:
        return [_Missing("returned None: backward returned nothing")] * count
    if not isinstance(grads, tuple | list):
        return [grads] + [_Missing(f"missing: backward returned 1 gradient, not {count}")] * (
            count - 1)
    got = list(grads)[:count]
    missing = _Missing(f"missing: backward returned {len(grads)} gradients, not {count}")
    return got + [missing] * (count - len(got))
