"""``check_layer``: a user's forward/backward pair with parameters against any PyTorch twin.

The convention is the well-known course's and the seed's::

    out, cache = forward(*arrays, **options)        # arrays in the order of ``inputs``
    grads = backward(dout, cache)                    # one gradient per float input, same order

``torch`` is a callable on tensors (``lambda x, w, b, conv_param: F.conv2d(...)``: the
inputs positionally, the options by name, arrays in options as tensors) or an
``nn.Module`` (called on the inputs alone; ``params`` maps the user's parameter names to
the module's, and its buffers are the reference state, see :mod:`reference.checks.state`).
A twin returning a tuple has several outputs (``next_h, next_c, cache = forward(...)``,
``backward(dnext_h, dnext_c, cache)``; ``outputs`` names them, ``out0``, ``out1``, ...
by default). Every case compares each output, every gradient by the user's names
(``backward: w``), and the hygiene of the call: the upstream gradients and every input must
come back unchanged. A float32 failure is judged again against PyTorch's float64 result
(:mod:`reference.checks.arbitrate`); a case where PyTorch is not finite at finite inputs is
outside the reference's domain unless the user declared ``domain``
(:mod:`reference.checks.domain`). ``noise(cache)`` reads the mask a randomised forward drew
from its cache; the twin then gets it as the keyword ``noise``.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
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
from reference.checks.arbitrate import arbitrate_all
from reference.checks.batch import NotRun, batch_group
from reference.checks.diagnose import unchanged
from reference.checks.domain import domains_of
from reference.checks.twin import Outside, Skip, node_name, user_subject
from reference.checks.userpass import call_forward, user_pass
from reference.core.compare import cast_options, torch_options
from reference.core.driver import LayerPair, LayerSample, layer_case
from reference.core.names import TensorName
from reference.core.records import ComparisonRecord, TensorComparison

__all__ = ["LayerCheck", "NotRun", "Outside", "Skip"]

Forward = Callable[..., Any]
Backward = Callable[..., Any]
ARBITRATED = "float32 failures judged again against PyTorch's float64"


class LayerCheck:
    """Everything ``check_layer`` was given; :meth:`run` checks one :class:`Case`."""

    def __init__(
        self, forward: Forward, backward: Backward, *, torch: Callable[..., Any] | nn.Module,
        inputs: Mapping[str, cs.InputSpec], options: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None, state: Mapping[str, str] | None = None,
        steps: int = 1, then: Mapping[str, Any] | None = None, name: str | None = None,
        seed: int = 0, tolerance: Tolerance | None = None, kinks: Sequence[float] = (0.0,),
        domain: Mapping[str, Any] | None = None, outputs: Sequence[str] | None = None,
        noise: Callable[[Any], Any] | None = None,
    ) -> None:
        if not callable(forward) or not callable(backward):
            raise TypeError("check_layer: forward and backward must be callables")
        if not callable(torch):
            raise TypeError(f"torch: must be a callable or an nn.Module, got {type(torch)!r}")
        if not inputs:
            raise ValueError("inputs: give at least one input (a shape or an array) by name")
        for key, spec in inputs.items():
            if not isinstance(spec, tuple | np.ndarray | cs.Labels | cs.Target):
                raise TypeError(f"inputs[{key!r}]: must be a shape tuple, an array, Labels or "
                                f"Target, got {type(spec).__name__}")
        self.params = dict(params or {})
        if self.params and not isinstance(torch, nn.Module):
            raise ValueError("params: needs torch to be an nn.Module (its parameters' names)")
        if state and not isinstance(torch, nn.Module):
            raise ValueError("state: needs torch to be an nn.Module (its buffers are the state)")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps: must be a positive integer, got {steps!r}")
        if noise is not None and (not callable(noise) or isinstance(torch, nn.Module)):
            raise ValueError("noise: must be a callable cache -> mask, with a function twin "
                             "(it gets the mask as the keyword noise)")
        self.forward, self.backward, self.reference = forward, backward, torch
        self.inputs, self.options = dict(inputs), dict(options or {})
        self.state, self.steps, self.then = dict(state or {}), steps, then
        self.name: str = name or str(getattr(forward, "__name__", "layer"))
        self.seed, self.tolerance, self.kinks = seed, tolerance, tuple(kinks)
        self.symbols = cs.symbols_of(self.inputs)
        self.domains = domains_of(domain, list(self.inputs))
        self.noise = noise
        self.declared_outputs = tuple(outputs) if outputs is not None else None
        self._outputs: tuple[str, ...] | None = None
        self._groups: dict[str, list[str] | NotRun] = {}
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
        spec = self.inputs[self.first]
        lead = spec.shape[:1] if isinstance(spec, cs.Labels | cs.Target | np.ndarray) else \
            spec[:1]
        self.batch_symbol = lead[0] if lead and isinstance(lead[0], str) else None

    # -- drawing ---------------------------------------------------------------------
    def differentiable(self, arrays: Mapping[str, np.ndarray]) -> list[str]:
        """The arrays that get a gradient: floats, not a :class:`~.cases.Target`."""
        return [n for n in self.names if arrays[n].dtype.kind == "f"
                and not isinstance(self.inputs.get(n), cs.Target)]

    def draw(self, case: cs.Case, step: str = "",
             only: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """The arrays of ``case`` (redrawn for a later ``step``, ``only`` some of them); at
        ``batch1`` every input of the batch group cut to its first row."""
        wanted = list(self.names if only is None else only)
        arrays: dict[str, np.ndarray] = {}
        for name in wanted:
            if name in self.params and isinstance(self.reference, nn.Module):  # checked in init
                module = self.reference
                shape = tuple(dict(module.named_parameters())[self.params[name]].shape)
                spec: cs.InputSpec = shape
            else:
                spec = self.inputs[name]
            arrays[name] = cs.draw(name, spec, case, seed=self.seed, step=step,
                                   first=name == self.first, kinks=self.kinks,
                                   domain=self.domains.get(name))
        if case.special == "batch1" and self.batch_symbol is None:
            group = self.batch_group(case)
            arrays = {n: a[:1] if n in group and a.ndim else a for n, a in arrays.items()}
        return arrays

    def batch_group(self, case: cs.Case) -> list[str]:
        """The inputs that carry the batch (:mod:`reference.checks.batch`), once per
        configuration; raises :class:`NotRun` if batch size 1 cannot be run."""
        plain = dataclasses.replace(case, dtype="float64", special="")
        key = plain.label()
        if key not in self._groups:
            full = self.draw(plain)
            data = {n: full[n] for n in self.inputs}
            lead = data[self.first].shape[0] if data[self.first].ndim else None
            candidates = [n for n, a in data.items() if n != self.first and a.ndim
                          and a.shape[0] == lead]
            options = self.case_options(plain)
            try:
                self._groups[key] = batch_group(self.first, data, candidates,
                                                lambda arrays: self.probe(arrays, options))
            except NotRun as why:
                self._groups[key] = why
        found = self._groups[key]
        if isinstance(found, NotRun):
            raise found
        return found

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

    def probe(self, arrays: Mapping[str, np.ndarray], options: Mapping[str, Any]
              ) -> list[np.ndarray] | None:
        """The twin's outputs on ``arrays`` (float64, no gradient), or ``None`` when it
        raises."""
        reference = self.reference_for(cs.Case("float64"))
        tensors = [torch.from_numpy(np.array(arrays[n], copy=True)) for n in self.inputs]
        extra: dict[str, Any] = {}
        if self.noise is not None:
            result = call_forward(self.forward, {n: np.array(a, copy=True) for n, a in
                                                 arrays.items()}, copy.deepcopy(options),
                                  len(self.declared_outputs or ("out",)))
            if isinstance(result, BaseException):
                return None
            extra = self.noise_extra(result[1])
        try:  # a probe may broadcast on purpose: what PyTorch warns about is not the user's
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = reference(*tensors) if isinstance(reference, nn.Module) else \
                    reference(*tensors, **torch_options(options), **extra)
        except Exception:
            return None
        outs = out if isinstance(out, tuple | list) else (out,)
        return [np.asarray(o.detach().numpy() if isinstance(o, torch.Tensor) else o)
                for o in outs]

    def outputs_for(self, arrays: Mapping[str, np.ndarray], options: Mapping[str, Any]
                    ) -> tuple[str, ...]:
        """The outputs' names: as declared, else ``out`` or ``out0``, ``out1``, ... for as
        many as the twin returns (found on the first case it runs)."""
        if self._outputs is not None:
            return self._outputs
        wide = {n: a.astype(np.float64) if a.dtype.kind == "f" else a for n, a in arrays.items()}
        shapes = self.probe(wide, cast_options(options, "float64"))
        if shapes is None:
            raise Skip("PyTorch rejects this case (the twin raised)")
        names = ("out",) if len(shapes) == 1 else tuple(f"out{i}" for i in range(len(shapes)))
        if self.declared_outputs is not None:
            if len(self.declared_outputs) != len(shapes):
                raise ValueError(f"outputs: names {len(self.declared_outputs)} outputs, the "
                                 f"twin returns {len(shapes)}")
            names = self.declared_outputs
        self._outputs = names
        return names

    def noise_extra(self, cache: Any) -> dict[str, Any]:
        if self.noise is None:
            return {}
        return {"noise": torch.from_numpy(np.array(self.noise(cache), copy=True))}

    def twin_pair(self, case: cs.Case, arrays: Mapping[str, np.ndarray],
                  options: dict[str, Any], reference: Callable[..., Any],
                  outputs: Sequence[str] = ("out",), extra: Mapping[str, Any] | None = None,
                  upstream: Mapping[str, np.ndarray] | None = None) -> LayerPair:
        """The layer driver's pair for ``case``: the user's twin as the node's module (its
        upstream the seeded random one of PyTorch's output shape, or ``upstream``)."""
        dtype = case.dtype

        def draw(purpose: str) -> Callable[[tuple[int, ...]], np.ndarray]:
            return lambda shape: stream(self.seed, "upstream", purpose).standard_normal(
                shape).astype(dtype)

        several = len(outputs) > 1
        keys = list(outputs) if several else ["output"]
        given: dict[str, Any] = dict(upstream) if upstream is not None else {
            key: draw(f"{self.name}.{key}" if several else self.name) for key in keys}
        subject = user_subject(self.forward, self.backward, reference, options=options,
                               params=self.params, name=self.name, outputs=outputs,
                               extra=extra)
        sample = LayerSample([arrays[n] for n in self.inputs], options,
                             params={p: arrays[p] for p in self.params}, upstream=given)
        return LayerPair(layer_case(subject, sample, dtype, seed=self.seed,
                                    node=node_name(list(self.inputs)), refs=list(self.inputs)))

    # -- one case ----------------------------------------------------------------------
    def run(self, case: cs.Case, keep_values: bool = True) -> ComparisonRecord:
        """Check ``case``; raises :class:`Skip` when PyTorch itself rejects it,
        :class:`Outside` when PyTorch is not finite there."""
        tolerance = self.tolerance_for(case)
        arrays = self.draw(case)
        options = self.case_options(case)
        outputs = self.outputs_for(arrays, options)
        reference = self.reference_for(case)
        homes = st.seed_state(self, reference, options)
        diff = self.differentiable(arrays)
        given = {n: a.copy() for n, a in arrays.items()}
        first_call = None
        extra: dict[str, Any] = {}
        if self.noise is not None:  # the user's mask first: the twin is handed it
            first_call = call_forward(self.forward, given, options, len(outputs))
            if isinstance(first_call, BaseException):
                return self.record(case, self._raised_alone(first_call, arrays, outputs, diff,
                                                            tolerance), tolerance, [])
            extra = self.noise_extra(first_call[1])
        pair = self.twin_pair(case, arrays, options, reference, outputs, extra)
        ref = pair.reference()
        wants, douts, want_grads = self._reference_values(pair, ref, outputs, diff)
        if not self.domains:
            _check_finite(arrays, wants, want_grads, outputs)
        if first_call is None:
            first_call = call_forward(self.forward, given, options, len(outputs))
        context = {n: arrays[n] for n in self.inputs}
        real = [n in diff for n in self.names]
        tensors, user_douts, got = user_pass(self.backward, first_call, douts, wants, outputs,
                                             want_grads, diff, real, tolerance, keep_values,
                                             context)
        arbitrated = False
        if case.dtype == "float32" and not all(t.passed for t in tensors):
            r32 = {**{str(TensorName("forward", o)): w for o, w in zip(outputs, wants,
                                                                        strict=True)},
                   **{str(TensorName("backward", n)): want_grads[n] for n in diff}}
            r64 = self._float64_values(case, arrays, douts, outputs, diff, extra)
            arbitrated = arbitrate_all(tensors, got, r32, r64)
        if user_douts is not None:
            dnames = ["dout"] if len(outputs) == 1 else [f"d{o}" for o in outputs]
            tensors += [unchanged(TensorName("hygiene", d), after, before)
                        for d, after, before in zip(dnames, user_douts, douts, strict=True)]
        tensors += [unchanged(TensorName("hygiene", n), given[n], arrays[n]) for n in self.names]
        notes: list[str] = []
        if self.state or self.then is not None:
            more, notes = st.run_steps(self, case, pair, reference, options, homes, tolerance,
                                       keep_values)
            tensors += more
        return self.record(case, tensors, tolerance, notes, arbitrated)

    def _reference_values(self, pair: LayerPair, ref: Any, outputs: Sequence[str],
                          diff: Sequence[str]
                          ) -> tuple[list[np.ndarray], list[np.ndarray], dict[str, np.ndarray]]:
        """PyTorch's outputs, the upstream gradients it was given, and its gradients."""
        node = pair.case.node.name
        values = [node] if len(outputs) == 1 else [f"{node}.{o}" for o in outputs]
        wants = [np.asarray(ref.values[v]).copy() for v in values]
        douts = [np.asarray(ref.grad_at_output[v]) for v in values]
        want_grads = {n: (ref.param_grads[f"{node}.{n}"] if n in self.params else
                          ref.grad_at[n]) for n in diff}
        return wants, douts, want_grads

    def _float64_values(self, case: cs.Case, arrays: Mapping[str, np.ndarray],
                        douts: Sequence[np.ndarray], outputs: Sequence[str],
                        diff: Sequence[str], extra: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """PyTorch's float64 results on the float32 case's exactly widened arrays, upstream
        gradients, options and mask, by tensor name."""
        wide_case = dataclasses.replace(case, dtype="float64")
        wide = {n: a.astype(np.float64) if a.dtype.kind == "f" else a for n, a in arrays.items()}
        options = cast_options(self.case_options(case), "float64")
        st.seed_state(self, self.reference_for(wide_case), options)
        keys = ["output"] if len(outputs) == 1 else list(outputs)
        upstream = {k: d.astype(np.float64) for k, d in zip(keys, douts, strict=True)}
        wide_extra = {k: v.double() if v.is_floating_point() else v for k, v in extra.items()}
        pair = self.twin_pair(wide_case, wide, options, self.reference_for(wide_case), outputs,
                              wide_extra, upstream)
        try:
            ref = pair.reference()
        except Skip:
            return {}
        wants, _, grads = self._reference_values(pair, ref, outputs, diff)
        return {**{str(TensorName("forward", o)): w for o, w in zip(outputs, wants, strict=True)},
                **{str(TensorName("backward", n)): g for n, g in grads.items()}}

    def _raised_alone(self, error: BaseException, arrays: Mapping[str, np.ndarray],
                      outputs: Sequence[str], diff: Sequence[str], tolerance: Tolerance
                      ) -> list[TensorComparison]:
        """A forward that raised before the twin could run (it needed the user's mask)."""
        context = {n: arrays[n] for n in self.inputs}
        empty = np.zeros(0)
        tensors, _, _ = user_pass(self.backward, error, [], [empty] * len(outputs), outputs,
                                  {n: empty for n in diff}, diff, [], tolerance, False, context)
        return tensors

    def record(self, case: cs.Case, tensors: list[TensorComparison], tolerance: Tolerance,
               notes: list[str], arbitrated: bool = False) -> ComparisonRecord:
        passed = all(t.passed for t in tensors)
        reason = f"{tolerance.reason}; {ARBITRATED}" if arbitrated else tolerance.reason
        return ComparisonRecord(
            subject=self.name, kind="layer", dtype=case.dtype, seed=self.seed, passed=passed,
            first_divergence=None if passed else next(t.name for t in tensors if not t.passed),
            tolerance_reason=reason, tensors=tensors,
            options={**dict(encode(self.options)), **case.config()}, notes=notes,
        )


def _check_finite(arrays: Mapping[str, np.ndarray], wants: Sequence[np.ndarray],
                  want_grads: Mapping[str, np.ndarray], outputs: Sequence[str]) -> None:
    """Raise :class:`Outside` when PyTorch is not finite at finite inputs."""
    if not all(np.all(np.isfinite(a)) for a in arrays.values() if a.dtype.kind == "f"):
        return
    named = [*((TensorName("forward", o), w) for o, w in zip(outputs, wants, strict=True)),
             *((TensorName("backward", n), g) for n, g in want_grads.items())]
    for name, value in named:
        bad = ~np.isfinite(np.asarray(value, dtype=np.float64))
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            kind = "nan" if np.isnan(np.asarray(value, dtype=np.float64)[index]) else "inf"
            at = [f"{n} = {a[index]:.4g}" for n, a in arrays.items() if a.shape == bad.shape]
            where = f" ({', '.join(at)})" if at else ""
            raise Outside(f"PyTorch's {name} is {kind} at {list(index)}{where}")
