"""One layer alone in both engines, over one or several steps: output, gradients and state.

A stopgap until the shared runner (``reference.run``) and ``compare.compare_layer`` land:
:func:`_run_both` is the ONE place that drives a layer in both engines, so it can be rewired
in one edit. The comparisons are named as the records name them: ``forward: output``,
``backward: input``, ``backward: weight``, ``state: running_var`` (with ``step k:`` in front
for a sequence). Besides PyTorch agreement, each step checks two protocols of the pure pair:
nothing given is written, and a second backward from the same cache returns the same.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from manual.layers import LAYERS
from manual.layers.info import LayerInfo, Signature
from reference import engine  # noqa: F401  (configures torch for reproducible comparisons)
from reference.compare import compare_arrays
from reference.records import TensorComparison

Arrays = dict[str, np.ndarray]


@functools.cache
def _builder(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _slot_dtype(slot_dtype: str, dtype: str) -> str:
    return slot_dtype or dtype


def _draw_slots(signature: Signature, dtype: str, rng: np.random.Generator,
                batch: int) -> tuple[Arrays, Arrays, Arrays]:
    """Params at their defaults, state moved off its defaults (so that eval mode is tested on
    running statistics that are not 0 and 1), and noise for a batch of ``batch``."""
    params = {k: s.init(rng, s.shape).astype(_slot_dtype(s.dtype, dtype))
              for k, s in signature.params.items()}
    params = {k: (v + rng.uniform(-0.5, 0.5, v.shape).astype(v.dtype)) for k, v in
              params.items()}
    state = {}
    for key, slot in signature.state.items():
        start = slot.init(rng, slot.shape)
        if slot.dtype == "int64":
            state[key] = np.asarray(start + rng.integers(1, 5), dtype=np.int64)
        else:
            state[key] = (start + rng.uniform(0.2, 1.0, slot.shape)).astype(dtype)
    noise = {k: s.init(rng, (batch, *s.shape)) for k, s in signature.noise.items()}
    return params, state, noise


@dataclass
class _Torch:
    module: nn.Module
    info: LayerInfo
    signature: Signature


def _torch_module(info: LayerInfo, options: Mapping[str, Any], signature: Signature,
                  shapes: tuple[tuple[int, ...], ...], dtype: str, params: Arrays,
                  state: Arrays) -> _Torch:
    module = _builder(info.torch)(info, options, signature, shapes, getattr(torch, dtype))
    with torch.no_grad():
        for key, value in {**params, **state}.items():
            slot = signature.params.get(key) or signature.state[key]
            _attr(module, slot.torch).copy_(torch.from_numpy(np.array(value)))
    return _Torch(module, info, signature)


def _attr(module: nn.Module, dotted: str) -> torch.Tensor:
    value: Any = module
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _run_both(info: LayerInfo, options: Mapping[str, Any], inputs: tuple[np.ndarray, ...],
              params: Arrays, state: Arrays, noise: Arrays, dy: np.ndarray, training: bool,
              mirror: _Torch) -> tuple[list[tuple[str, Any, Any]], Arrays, list[str]]:
    """One forward and backward in each engine: (named pairs, manual new state, protocol
    failures)."""
    given_inputs = [a.copy() for a in inputs]
    given = {"params": (params, {k: v.copy() for k, v in params.items()}),
             "state": (state, {k: v.copy() for k, v in state.items()}),
             "noise": (noise, {k: v.copy() for k, v in noise.items()})}
    y, cache, new_state = info.forward(inputs, params, state, noise, training=training,
                                       **options)
    dy_given = dy.copy()
    dinputs, dparams = info.backward(dy, cache)
    again_inputs, again_params = info.backward(dy_given.copy(), cache)
    problems = []
    if any(not np.array_equal(a, b, equal_nan=True) for a, b in
           zip(given_inputs, inputs, strict=True)):
        problems.append("protocol: forward or backward wrote into its inputs")
    for what, (after, before) in given.items():
        if any(not np.array_equal(before[k], after[k], equal_nan=True) for k in before):
            problems.append(f"protocol: forward or backward wrote into its {what}")
    if not np.array_equal(dy, dy_given, equal_nan=True):
        problems.append("protocol: backward wrote into the upstream gradient")
    same = all(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True) for a, b in
               zip(dinputs, again_inputs, strict=True) if a is not None) and \
        all(np.array_equal(dparams[k], again_params[k], equal_nan=True) for k in dparams)
    if not same:
        problems.append("protocol: a second backward from the same cache differs")

    module = mirror.module
    module.train(training)
    if mirror.signature.noise:
        masks = {k: torch.from_numpy(v.copy()) for k, v in noise.items()}
        module.noise = masks  # type: ignore[assignment]  # a plain dict attribute
    for p in module.parameters():
        p.grad = None
    tensors = []
    for a in inputs:
        t = torch.from_numpy(a.copy())
        tensors.append(t.requires_grad_(True) if t.is_floating_point() else t)
    out = module(*tensors)
    out.backward(torch.from_numpy(dy.copy()))

    pairs_out: list[tuple[str, Any, Any]] = [("forward: output", y, out.detach().numpy())]
    for i, (got, t, a) in enumerate(zip(dinputs, tensors, inputs, strict=True)):
        name = "backward: input" if len(tensors) == 1 else f"backward: input{i}"
        if t.is_floating_point():
            pairs_out.append((name, got, np.zeros(t.shape, a.dtype) if t.grad is None
                              else t.grad.numpy()))
        elif got is not None:
            problems.append(f"{name}: an index input must get None, got an array")
    for key, slot in mirror.signature.params.items():
        grad = _attr(module, slot.torch).grad
        want = np.zeros(slot.shape, dtype=params[key].dtype) if grad is None else grad.numpy()
        pairs_out.append((f"backward: {key}", dparams.get(key), want))
    if sorted(dparams) != sorted(params):
        problems.append(f"backward: parameter gradients for {sorted(dparams)}, parameters "
                        f"are {sorted(params)}")
    for key, slot in mirror.signature.state.items():
        pairs_out.append((f"state: {key}", new_state.get(key),
                          _attr(module, slot.torch).detach().numpy().copy()))
    return pairs_out, {k: np.asarray(v) for k, v in new_state.items()}, problems


@dataclass
class LayerCheck:
    """The comparisons of one run and the protocol failures (empty when all held)."""

    tensors: list[TensorComparison]
    problems: list[str]

    @property
    def failures(self) -> list[str]:
        bad = [f"{t.name}: {t.problem or f'err/tol {t.tolerance_ratio:.3g}'}"
               for t in self.tensors if not t.passed]
        return bad + self.problems

    @property
    def passed(self) -> bool:
        return not self.failures


def check_layer(name: str, options: Mapping[str, Any], inputs: Sequence[np.ndarray],
                dtype: str, modes: Sequence[bool] = (True,), seed: int = 0,
                fresh_inputs: bool = True) -> LayerCheck:
    """Run layer ``name`` for one step per entry of ``modes`` (True = train) and compare.

    State carries over from step to step in both engines (the manual engine's new state is
    fed back; the torch module keeps its buffers). With ``fresh_inputs`` each later step
    draws new real inputs of the same shapes (index inputs are reused).
    """
    info = LAYERS[name]
    rng = np.random.default_rng(seed)
    options = dict(options)
    inputs = tuple(np.asarray(a) for a in inputs)
    shapes = tuple(a.shape[1:] for a in inputs)
    signature = info.signature(options, shapes)
    params, state, noise = _draw_slots(signature, dtype, rng, inputs[0].shape[0])
    mirror = _torch_module(info, options, signature, shapes, dtype, params, state)
    tensors, problems = [], []
    for step, training in enumerate(modes):
        if step and fresh_inputs:
            inputs = tuple(rng.standard_normal(a.shape).astype(a.dtype) * 2 + 0.5
                           if a.dtype.kind == "f" else a for a in inputs)
            noise = _draw_slots(signature, dtype, rng, inputs[0].shape[0])[2]
        dy = rng.standard_normal((inputs[0].shape[0], *signature.shape)).astype(dtype)
        pairs, state, found = _run_both(info, options, inputs, params, state, noise, dy,
                                        training, mirror)
        prefix = f"step {step} ({'train' if training else 'eval'}): " if len(modes) > 1 else ""
        for label, got, want in pairs:
            stage = "forward" if label.startswith(("forward", "state")) else "backward"
            tolerance = info.tolerance(dtype, stage)
            tensors.append(compare_arrays(prefix + label, got, want, tolerance,
                                          keep_values=False))
        problems += [prefix + p for p in found]
    return LayerCheck(tensors, problems)
