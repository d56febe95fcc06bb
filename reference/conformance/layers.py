r"""One registry layer as a one-node graph spec, and what a single comparison cannot see.

:func:`sample_case` wraps a layer sample in a graph spec (input ``x``, or ``x0``, ``x1``, ...;
one node named after the layer; an ``l1`` loss with ``reduction: none`` against a random
target, for the fuzzer and the network protocols, which run the loss) with its data and slots
moved off their defaults (eval mode on running statistics of 0 and 1 would hide a mistake).
A check of the sample is the layer driver (:mod:`reference.core.driver`) on that case: a
seeded random upstream gradient at *every* output (an LSTM's ``h_n`` and ``c_n`` too), handed
to both engines, never ones; a float32 failure is judged again against the bound measured
on PyTorch's float64 replay of the steps, as the network protocol's single pass is. Here:

- :func:`compare_steps`: several forward/backward steps in train or eval mode with the state
  carried over in both engines (one :class:`~reference.core.driver.LayerPair` kept across the
  steps), every step's tensors compared and named ``step k: state: batch_norm.running_var``;
- :func:`pair_problems`: the contract of the pure pair itself (``manual/layers/info.py``):
  nothing given is written, a second backward from the same cache returns the same, the
  parameter gradients have exactly the parameters' keys, shapes and dtypes (a ``(1, C)``
  gradient only crashes the network's ``+=``), and an index input or one the signature marks
  ``no_grad`` (a mask) gets ``None``.

:func:`check_sample` runs a sample for one mode or a sequence of modes. (The registry's own
layers; a user's pair with its own conventions is :func:`reference.checks.check_layer`.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import manual
from manual.data import Data
from manual.layers import LAYERS
from manual.layers.info import LayerInfo
from manual.random import stream
from manual.spec import Spec
from reference.core.compare import spec_tolerance
from reference.core.driver import (
    LayerCase,
    LayerPair,
    Subject,
    judge,
    one_node_spec,
    random_upstream,
)
from reference.core.records import ComparisonRecord, at_step
from reference.core.rounding import EXCUSED

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class SampleCase:
    """A layer sample as a spec, its data, and the slots both engines start from."""

    spec: Spec
    data: Data
    params: Arrays
    state: Arrays

    @property
    def node(self) -> str:
        return self.spec.nodes[0].name

    @property
    def info(self) -> LayerInfo:
        return LAYERS[self.spec.nodes[0].type]


def layer_spec(name: str, options: Mapping[str, Any], inputs: Sequence[np.ndarray], dtype: str,
               *, mode: str = "train", seed: int = 0) -> Spec:
    """The one-node graph spec of layer ``name`` reading ``inputs`` (batch first)."""
    return one_node_spec(LAYERS[name], options, inputs, dtype, mode=mode, seed=seed)


def layer_data(spec: Spec, inputs: Sequence[np.ndarray], rng: np.random.Generator) -> Data:
    """``inputs`` as the spec's data, with a random target for the l1 loss."""
    target = rng.standard_normal((len(inputs[0]), *spec.output_shape))
    refs = [i.name for i in spec.inputs]
    return manual.make_data(spec, inputs[0], target, dict(zip(refs[1:], inputs[1:],
                                                              strict=True)))


def shifted_slots(spec: Spec) -> tuple[Arrays, Arrays]:
    """The default parameters and state, moved off their defaults (weights ones, running
    variance one, ``num_batches_tracked`` zero would each hide a mistake)."""
    rng = stream(spec.seed, "sample", "shift")
    params = {k: (v + rng.uniform(-0.5, 0.5, v.shape)).astype(v.dtype)
              for k, v in manual.initial_parameters(spec).items()}
    state = {}
    for key, value in manual.initial_state(spec).items():
        if value.dtype.kind in "iu":
            state[key] = np.asarray(value + rng.integers(1, 5), dtype=value.dtype)
        else:
            state[key] = (value + rng.uniform(0.2, 1.0, value.shape)).astype(value.dtype)
    return params, state


def sample_case(name: str, options: Mapping[str, Any], inputs: Sequence[np.ndarray],
                dtype: str, *, mode: str = "train", seed: int = 0) -> SampleCase:
    """Layer ``name`` on ``inputs`` as a one-node spec with data and shifted slots."""
    inputs = [np.asarray(a) for a in inputs]
    spec = layer_spec(name, options, inputs, dtype, mode=mode, seed=seed)
    params, state = shifted_slots(spec)
    return SampleCase(spec, layer_data(spec, inputs, stream(seed, "data", name)), params, state)


def _own(values: Mapping[str, np.ndarray], node: str) -> Arrays:
    """``{"bn.weight": ...}`` -> ``{"weight": <a copy>}`` for node ``bn``."""
    return {k.removeprefix(f"{node}."): np.array(v, copy=True) for k, v in values.items()
            if k.startswith(f"{node}.")}


def pair_problems(case: SampleCase, data: Data, state: Mapping[str, np.ndarray],
                  noise: Mapping[str, np.ndarray], training: bool) -> list[str]:
    """The pure pair's contract on one step, checked on the pair alone."""
    info, node = case.info, case.spec.nodes[0]
    # Copies: a pair that writes into what it is given must not spoil the engines' runs.
    inputs = tuple(data.feed(case.spec)[ref].copy() for ref in node.inputs)
    params, own_state, own_noise = (_own(case.params, node.name), _own(state, node.name),
                                    _own(noise, node.name))
    given: dict[str, Mapping[Any, np.ndarray]] = {
        "inputs": dict(enumerate(inputs)), "params": params, "state": own_state,
        "noise": own_noise}
    before = {what: {k: v.copy() for k, v in arrays.items()} for what, arrays in given.items()}
    y, cache, _ = info.forward(inputs, params, own_state, own_noise, training=training,
                               **node.resolved)
    rng = stream(case.spec.seed, "upstream", node.name)
    outputs = y if isinstance(y, tuple) else (y,)  # several outputs: one upstream each
    dys = [rng.standard_normal(np.shape(out)).astype(case.spec.dtype) for out in outputs]
    dys_given = [dy.copy() for dy in dys]

    def upstream(arrays: list[np.ndarray]) -> Any:
        return tuple(arrays) if isinstance(y, tuple) else arrays[0]

    dinputs, dparams = info.backward(upstream(dys), cache)
    again_inputs, again_params = info.backward(upstream([d.copy() for d in dys_given]), cache)
    problems = [f"protocol: forward or backward wrote into its {what}"
                for what, arrays in given.items()
                if any(not np.array_equal(before[what][k], v, equal_nan=True)
                       for k, v in arrays.items())]
    if not all(np.array_equal(a, b, equal_nan=True) for a, b in zip(dys, dys_given,
                                                                     strict=True)):
        problems.append("protocol: backward wrote into the upstream gradient")
    same = all(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True) for a, b in
               zip(dinputs, again_inputs, strict=True) if a is not None) and \
        all(k in again_params and np.array_equal(dparams[k], again_params[k], equal_nan=True)
            for k in dparams)
    if not same:
        problems.append("protocol: a second backward from the same cache differs")
    got = {k: (np.shape(g), str(np.asarray(g).dtype)) for k, g in dparams.items()}
    want = {k: (p.shape, str(p.dtype)) for k, p in params.items()}
    if got != want:
        problems.append(f"protocol: parameter gradients {got}, parameters {want}")
    for j, (ref, dx) in enumerate(zip(node.inputs, dinputs, strict=True)):
        if dx is None:
            continue
        if case.spec.input_kind(ref) == "index":
            problems.append(f"protocol: index input {ref!r} must get None, got an array")
        elif j in node.signature.no_grad:
            problems.append(f"protocol: input {ref!r} carries no gradient (the signature's "
                            f"no_grad) and must get None, got an array")
    return problems


def _layer_case(case: SampleCase, step: int = 0) -> LayerCase:
    """The sample case as the driver runs it: a random upstream at every output."""
    spec = case.spec
    return LayerCase(Subject(case.info), spec, case.data, case.params, case.state,
                     manual.draw_noise(spec, len(case.data.x), step=step),
                     random_upstream(spec.seed, spec.nodes[0], spec.dtype, step))


@dataclass
class SampleCheck:
    """The record of a layer sample's steps and the pair's protocol failures (when the
    protocol failed, the record holds the steps before it)."""

    record: ComparisonRecord
    problems: list[str]

    @property
    def tensors(self) -> list[Any]:
        return self.record.tensors

    @property
    def failures(self) -> list[str]:
        bad = [f"{t.name}: {t.problem or f'err/tol {t.tolerance_ratio:.3g}'}"
               for t in self.tensors if not t.passed]
        return bad + self.problems

    @property
    def passed(self) -> bool:
        return not self.failures


def _record(spec: Spec, tensors: list[Any], divergence: str | None, modes: Sequence[bool],
            excused: bool = False) -> ComparisonRecord:
    reasons = {spec_tolerance(spec, stage).reason for stage in ("forward", "backward")}
    reasons |= {EXCUSED} if excused else set()
    return ComparisonRecord(
        subject=spec.name, kind="layer", dtype=spec.dtype, seed=spec.seed,
        passed=divergence is None and all(t.passed for t in tensors),
        first_divergence=divergence, tolerance_reason="; ".join(sorted(reasons)),
        tensors=tensors, spec=spec.to_dict(),
        options={"modes": ["train" if m else "eval" for m in modes]})


def compare_steps(case: SampleCase, modes: Sequence[bool], steps_data: Sequence[Data]
                  ) -> SampleCheck:
    """One step per mode (True = train) on ``steps_data``, state carried in both engines.

    One :class:`~reference.core.driver.LayerPair` lives across the steps; each step gets its
    own noise (``draw_noise(..., step=k)``), upstream and zeroed gradients. The pair's protocol
    is checked first, from the state the manual engine carries into the step; where it fails,
    the engines are not run (a ``(1, C)`` gradient would only crash the network's ``+=``).
    """
    spec = case.spec
    pair = LayerPair(_layer_case(case))
    tensors: list[Any] = []
    divergence, state, excused = None, dict(case.state), False
    for step, (training, data) in enumerate(zip(modes, steps_data, strict=True)):
        label = f"step {step} ({'train' if training else 'eval'})"
        this = _layer_case(case, step)
        problems = [f"{label}: {p}" for p in pair_problems(case, data, state, this.noise,
                                                            training)]
        if problems:
            return SampleCheck(_record(spec, tensors, divergence or problems[0], modes),
                               problems)
        mine, ref = pair.step(data, training=training, noise=this.noise, upstream=this.upstream)
        state = mine.state
        compared, where, rounded = judge(pair, mine, ref, rounding=True)
        excused |= rounded
        if divergence is None and where is not None:
            divergence = f"{label}: {where}"
        tensors += [at_step(t, step) for t in compared]
    return SampleCheck(_record(spec, tensors, divergence, modes, excused), [])


def check_sample(name: str, options: Mapping[str, Any], inputs: Sequence[np.ndarray],
                 dtype: str, modes: Sequence[bool] = (True,), seed: int = 0) -> SampleCheck:
    """Layer ``name`` on ``inputs`` for one step per entry of ``modes`` (True = train).

    One step is the pair's protocol, then :func:`~reference.core.driver.compare_layer`'s step
    on the :func:`sample_case`; several are :func:`compare_steps`, each later step on fresh
    real inputs of the same shapes (index inputs reused).
    """
    case = sample_case(name, options, inputs, dtype, mode="train" if modes[0] else "eval",
                       seed=seed)
    if len(modes) == 1:
        driven = _layer_case(case)
        problems = pair_problems(case, case.data, case.state, driven.noise, modes[0])
        if problems:
            return SampleCheck(_record(case.spec, [], problems[0], modes), problems)
        pair = LayerPair(driven)
        tensors, divergence, excused = judge(pair, *pair.step(), rounding=True)
        return SampleCheck(_record(case.spec, tensors, divergence, modes, excused), [])
    rng = stream(seed, "sample", "steps")
    steps_data = [case.data]
    for _ in modes[1:]:
        fresh = [(rng.standard_normal(np.shape(a)) * 2 + 0.5).astype(a.dtype)
                 if a.dtype.kind == "f" else a for a in map(np.asarray, inputs)]
        steps_data.append(layer_data(case.spec, fresh, rng))
    return compare_steps(case, modes, steps_data)
