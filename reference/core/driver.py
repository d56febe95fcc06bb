r"""One differential driver for one layer: :func:`compare_layer`, over the runners.

A :class:`Subject` is a layer entry and the way its torch twin is built: a registry
:class:`~manual.layers.LayerInfo` (its builder, ``LayerInfo.torch``), an
:class:`~manual.registry.OpInfo` as a one-node layer (:func:`op_subject`: the op's own pair and
its torch callable), or a user's pair with their twin (:func:`reference.checks.twin.user_subject`).
A :class:`LayerSample` gives what one step runs on: any number of inputs (batch first), the
options, the parameters, state and noise by slot (the signature's starting values where left
out), and the upstream gradient at each output by output name (``{"output": g}``, or
``{"output": g, "h_n": h, "c_n": c}`` for an LSTM); by default it is a seeded random one at
*every* output, drawn in PyTorch's shape, never ones.

:func:`layer_case` makes the pair a one-node graph spec (inputs ``x`` or ``x0``, ``x1``, ...;
the node named after the layer); :class:`LayerPair` keeps one manual network and one torch
mirror of it across steps, both driven by :func:`reference.core.run.run_manual` and
:func:`~reference.core.run.run_torch` with ``grad_at_output``; :func:`compare_layer` is one
step, every tensor compared under the usual names (``forward: lstm``, ``forward: lstm.h_n``,
``state: batch_norm.running_var``, ``backward: x``, ``backward: lstm.weight_hh_l0``), the
dtype of every output included. Before the first run the builder's module is checked against
the signature: the same parameters by torch name and shape, a buffer of each state slot's
shape (``copy_`` would broadcast a ``(4,)`` slot into a ``(1, 4)`` parameter silently).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

import manual
from manual.data import Data
from manual.layers import LAYERS
from manual.layers.info import LayerInfo, Signature
from manual.random import stream
from manual.registry import OpInfo, Tolerance
from manual.spec import Input, LayerSpec, Node, Spec
from reference.core import mirror
from reference.core.compare import compare_runs, first_divergence, judged, torch_options
from reference.core.engine import TorchActivation
from reference.core.records import ComparisonRecord, TensorComparison
from reference.core.rounding import EXCUSED, excuse, measured_bounds
from reference.core.run import Draw, Run, Upstream, run_manual, run_torch

Arrays = dict[str, np.ndarray]
Twin = Callable[[Spec, Node], nn.Module]
STAGES = ("forward", "backward")
# The loss a one-node spec carries: never evaluated here (the upstream is given at the
# output), present so that the spec is one the runners, mirror and records all take.
PLACEHOLDER_LOSS = LayerSpec("l1", {"reduction": "none"})


@dataclass(frozen=True)
class Subject:
    """A layer to check: its entry (the manual side) and how its torch twin is built
    (``twin(spec, node)``; by default the builder ``info.torch`` names)."""

    info: LayerInfo
    twin: Twin | None = None

    def module(self, spec: Spec, node: Node) -> nn.Module:
        if self.twin is not None:
            return self.twin(spec, node)
        module = mirror.build_module(self.info, node, spec)
        twin_problem = _twin_problem(node.signature, module)
        if twin_problem:
            raise ValueError(f"layer {self.info.name!r}: {twin_problem}")
        return module


def _twin_problem(signature: Signature, module: nn.Module) -> str:
    have = {name: tuple(p.shape) for name, p in module.named_parameters()}
    want = {slot.torch or name: slot.shape for name, slot in signature.params.items()}
    if have != want:
        return f"the torch twin's parameters {have} are not the signature's {want}"
    buffers = {name: tuple(b.shape) for name, b in module.named_buffers()}
    for name, slot in signature.state.items():
        if buffers.get(slot.torch or name) != slot.shape:
            return (f"state {name!r}: the torch twin's buffer {slot.torch or name!r} has shape "
                    f"{buffers.get(slot.torch or name)}, the signature's {slot.shape}")
    return ""


class _OpCache:
    __slots__ = ("inputs", "pair")

    def __init__(self, pair: Any, inputs: int) -> None:
        self.pair, self.inputs = pair, inputs


def op_subject(op: OpInfo) -> Subject:
    """``op`` alone as a one-node layer: its pair on the input (and a loss's target, input 1,
    which carries no gradient), PyTorch's callable as the twin. The op itself runs, never the
    registry's entry of its name (a user's op may share a name with one)."""
    def forward(inputs: tuple[np.ndarray, ...], params: Any, state: Any, noise: Any, *,
                training: bool, **options: Any) -> tuple[Any, _OpCache, Arrays]:
        y, cache = op.forward(*inputs, **options)
        return y, _OpCache(cache, len(inputs)), {}

    def backward(dy: Any, cache: _OpCache) -> tuple[tuple[Any, ...], Arrays]:
        return (op.backward(dy, cache.pair), *[None] * (cache.inputs - 1)), {}

    def signature(options: Mapping[str, Any], shapes: tuple[tuple[int, ...], ...]) -> Signature:
        return Signature(shapes[0], no_grad=tuple(range(1, len(shapes))))

    def twin(spec: Spec, node: Node) -> nn.Module:
        return TorchActivation(op, torch_options(node.options))

    info = LayerInfo(name=op.name, forward=forward, backward=backward, torch="",
                     options=op.options, signature=signature, op=op)
    return Subject(info, twin)


def subject_of(subject: Subject | LayerInfo | OpInfo | str) -> Subject:
    """A registry layer by name, an entry, an op, or a subject as it is."""
    if isinstance(subject, Subject):
        return subject
    if isinstance(subject, str):
        if subject not in LAYERS:
            raise ValueError(f"layer: unknown layer type {subject!r} (known: "
                             f"{', '.join(LAYERS)})")
        return Subject(LAYERS[subject])
    return op_subject(subject) if isinstance(subject, OpInfo) else Subject(subject)


@dataclass(frozen=True)
class LayerSample:
    """What one step of a layer runs on. ``params``, ``state`` and ``noise`` are by slot name
    (``{"weight": ...}``), the signature's seeded starting values where ``None``;
    ``upstream`` is by output name (``"output"`` for a layer with one), each an array or a
    draw from PyTorch's shape (an output left out gets none), a seeded random one at every
    output where ``None``."""

    inputs: Sequence[np.ndarray]
    options: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, np.ndarray] | None = None
    state: Mapping[str, np.ndarray] | None = None
    noise: Mapping[str, np.ndarray] | None = None
    upstream: Mapping[str, np.ndarray | Draw] | None = None
    training: bool = True


def input_names(count: int) -> list[str]:
    """``x`` for one input, ``x0``, ``x1``, ... for several."""
    return ["x"] if count == 1 else [f"x{i}" for i in range(count)]


def _kind(info: LayerInfo, array: np.ndarray) -> str:
    return "index" if info.behaviour.input_kind == "index" or array.dtype.kind in "iub" else "real"


def one_node_spec(info: LayerInfo, options: Mapping[str, Any], inputs: Sequence[np.ndarray],
                  dtype: str, *, node: str | None = None, refs: Sequence[str] | None = None,
                  mode: str = "train", seed: int = 0) -> Spec:
    """Layer ``info`` reading ``inputs`` (batch first) as a one-node graph spec. A registry
    entry's options and inputs are validated as a spec file's are; another entry's (an op, a
    user's layer) are handed to its own signature."""
    name = node or info.name
    refs = list(refs or input_names(len(inputs)))[:len(inputs)]
    if name in refs:
        raise ValueError(f"layer {name!r}: the node and an input share a name")
    kinds = [_kind(info, np.asarray(a)) for a in inputs]
    shapes = [tuple(np.shape(a)[1:]) for a in inputs]
    if LAYERS.get(info.name) is info:
        return manual.parse_spec({
            "name": name, "nodes": [{"name": name, "type": info.name, "inputs": refs, **options}],
            "inputs": {ref: {"shape": list(shape), **({"kind": kind} if kind != "real" else {})}
                       for ref, shape, kind in zip(refs, shapes, kinds, strict=True)},
            "loss": PLACEHOLDER_LOSS.to_dict(), "dtype": dtype, "seed": seed, "mode": mode})
    graph_inputs = tuple(Input(ref, shape, kind)  # type: ignore[arg-type]
                         for ref, shape, kind in zip(refs, shapes, kinds, strict=True))
    try:
        signature = info.signature(options, tuple(shapes))
    except ValueError as error:
        raise ValueError(f"layer {name!r} ({info.name}): {error}") from None
    one = Node(name, info.name, tuple(refs), dict(options), signature)
    return Spec(graph_inputs, (one,), name, PLACEHOLDER_LOSS, dtype, seed, name,
                mode, chain=False)  # type: ignore[arg-type]


def output_refs(node: Node) -> dict[str, str]:
    """Output name -> the value's name in the graph (``output`` -> ``lstm.output``; a layer
    with one output: ``output`` -> the node)."""
    if not node.signature.outputs:
        return {"output": node.name}
    return {o: f"{node.name}.{o}" for o in node.signature.outputs}


def random_upstream(seed: int, node: Node, dtype: str, step: int = 0) -> dict[str, Draw]:
    """A seeded standard normal upstream at every output of ``node``, in PyTorch's shape."""
    def draw(ref: str) -> Draw:
        purpose = ref if not step else f"{ref} step {step}"
        return lambda shape: stream(seed, "upstream", purpose).standard_normal(shape
                                                                            ).astype(dtype)

    return {ref: draw(ref) for ref in output_refs(node).values()}


def _by_node(node: Node, values: Mapping[str, np.ndarray] | None) -> Arrays | None:
    return None if values is None else {f"{node.name}.{k}": np.asarray(v)
                                        for k, v in values.items()}


@dataclass(frozen=True)
class LayerCase:
    """A subject and a sample as both engines run them: the one-node spec, its data, the
    starting slots and noise (by the spec's names) and the upstream by value name."""

    subject: Subject
    spec: Spec
    data: Data
    params: Arrays
    state: Arrays
    noise: Arrays
    upstream: Upstream

    @property
    def node(self) -> Node:
        return self.spec.nodes[0]

    def tolerances(self) -> dict[str, Tolerance]:
        return {stage: self.subject.info.tolerance(self.spec.dtype, stage) for stage in STAGES}

    def data_for(self, inputs: Sequence[np.ndarray]) -> Data:
        """Inputs of this case's shapes as its data (a later step's fresh batch)."""
        return _data(self.spec, inputs)


def _data(spec: Spec, inputs: Sequence[np.ndarray]) -> Data:
    """The graph inputs in order as data (no target: the upstream is given at the output)."""
    names = [i.name for i in spec.inputs]
    return Data(np.asarray(inputs[0]), np.zeros(0, dtype=spec.dtype),
                {ref: np.asarray(a) for ref, a in zip(names[1:], inputs[1:], strict=True)})


def _upstream_at(node: Node, outputs: Mapping[str, np.ndarray | Draw]) -> dict[str, Any]:
    """``{output name: entry}`` as ``{value name: entry}``; an unknown name is an error."""
    refs = output_refs(node)
    unknown = sorted(set(outputs) - set(refs))
    if unknown:
        raise ValueError(f"upstream: layer {node.name!r} has no output {unknown[0]!r} "
                         f"(outputs: {', '.join(refs)})")
    return {refs[name]: entry for name, entry in outputs.items()}


def layer_case(subject: Subject | LayerInfo | OpInfo | str, sample: LayerSample, dtype: str, *,
               seed: int = 0, node: str | None = None,
               refs: Sequence[str] | None = None) -> LayerCase:
    """``sample`` of ``subject`` as a :class:`LayerCase` (see :func:`one_node_spec`)."""
    subject = subject_of(subject)
    inputs = [np.asarray(a) for a in sample.inputs]
    if not inputs:
        raise ValueError(f"layer {subject.info.name!r}: a sample needs at least one input")
    spec = one_node_spec(subject.info, sample.options, inputs, dtype, node=node, refs=refs,
                         mode="train" if sample.training else "eval", seed=seed)
    one = spec.nodes[0]
    batch = len(inputs[0]) if inputs[0].ndim else 1
    params, state, noise = (_by_node(one, sample.params), _by_node(one, sample.state),
                            _by_node(one, sample.noise))
    return LayerCase(
        subject, spec, _data(spec, inputs),
        manual.initial_parameters(spec) if params is None else params,
        manual.initial_state(spec) if state is None else state,
        manual.draw_noise(spec, batch) if noise is None else noise,
        random_upstream(seed, one, dtype) if sample.upstream is None else
        _upstream_at(one, sample.upstream))


def _wide(arrays: Mapping[str, np.ndarray]) -> Arrays:
    return {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in arrays.items()}


def _wide_data(data: Data) -> Data:
    return Data(data.x.astype(np.float64) if data.x.dtype.kind == "f" else data.x, data.y,
                _wide(data.others))


Step = tuple[Data, "bool | None", Mapping[str, np.ndarray], Arrays]


class LayerPair:
    """One manual network and one torch mirror of a case's spec, kept across steps (the
    state carries over in both, as a training loop's would). ``history`` keeps each step's
    data, mode, noise and upstream, for :meth:`replay_float64`."""

    def __init__(self, case: LayerCase) -> None:
        self.case = case
        self.history: list[Step] = []
        spec, node = case.spec, case.node
        self.mine = manual.Network(spec, {k: v.copy() for k, v in case.params.items()},
                                   {k: v.copy() for k, v in case.state.items()},
                                   entries={node.name: case.subject.info})
        self.torch = mirror.TorchGraph(spec, case.params, case.state,
                                       modules=[case.subject.module(spec, node)])

    def reference(self, data: Data | None = None, *, training: bool | None = None,
                  noise: Mapping[str, np.ndarray] | None = None,
                  upstream: Upstream | None = None) -> Run:
        """PyTorch's step (the forward alone for an empty ``upstream``)."""
        case = self.case
        if training is not None:
            self.torch.train(training)
        return run_torch(case.spec, case.data if data is None else data, net=self.torch,
                         noise=case.noise if noise is None else noise,
                         grad_at_output=case.upstream if upstream is None else upstream)

    def step(self, data: Data | None = None, *, training: bool | None = None,
             noise: Mapping[str, np.ndarray] | None = None,
             upstream: Upstream | None = None) -> tuple[Run, Run]:
        """Both engines' step, the manual one handed PyTorch's upstream: ``(mine, ref)``."""
        ref = self.reference(data, training=training, noise=noise, upstream=upstream)
        if training is not None:
            self.mine.train(training)
        self.mine.zero_grad()
        data = self.case.data if data is None else data
        noise = self.case.noise if noise is None else noise
        mine = run_manual(self.case.spec, data, net=self.mine, noise=noise,
                          grad_at_output=ref.grad_at_output)
        self.history.append((data, training, noise, dict(ref.grad_at_output or {})))
        return mine, ref

    def replay_float64(self) -> list[Run]:
        """PyTorch's steps so far again in float64, on the same (exactly widened) arrays."""
        case = self.case
        wide = LayerCase(case.subject, dataclasses.replace(case.spec, dtype="float64"),
                         _wide_data(case.data), _wide(case.params), _wide(case.state),
                         _wide(case.noise), {})
        pair = LayerPair(wide)
        return [pair.reference(_wide_data(data), training=training, noise=_wide(noise),
                               upstream=_wide(upstream))
                for data, training, noise, upstream in self.history]


def judge(pair: LayerPair, mine: Run, ref: Run, *, keep_values: bool = False,
          equal_nan: bool = False, rounding: bool = False
          ) -> tuple[list[TensorComparison], str | None, bool]:
    """Every tensor of the pair's last step compared, where the engines part (``None``:
    nowhere), and whether float32 rounding was excused: with ``rounding``, a float32 failure
    within the bound measured against PyTorch's float64 replay of the steps passes
    (:func:`reference.core.rounding.measured_bounds`, the fuzzer's and the protocols' rule)."""
    case = pair.case
    tensors = compare_runs(case.spec, mine, ref, keep_values=keep_values,
                           tolerances=case.tolerances(), equal_nan=equal_nan)
    if all(t.passed for t in tensors):
        return tensors, None, False
    if rounding and case.spec.dtype == "float32":
        bounds = measured_bounds(tensors, judged(case.spec, loss=False), ref,
                                 pair.replay_float64()[-1])
        if bounds:
            excuse(tensors, bounds)
            return tensors, None, True
    return tensors, first_divergence(case.spec, {t.name: t for t in tensors}), False


def layer_record(case: LayerCase, tensors: list[TensorComparison], divergence: str | None,
                 options: Mapping[str, Any] | None = None, excused: bool = False
                 ) -> ComparisonRecord:
    """The record of a layer's steps (``kind`` ``layer``, the one-node spec with it)."""
    reasons = {t.reason for t in case.tolerances().values()} | ({EXCUSED} if excused else set())
    return ComparisonRecord(
        subject=case.spec.name, kind="layer", dtype=case.spec.dtype, seed=case.spec.seed,
        passed=divergence is None and all(t.passed for t in tensors),
        first_divergence=divergence, tolerance_reason="; ".join(sorted(reasons)),
        tensors=tensors, spec=case.spec.to_dict(), options=dict(options or {}))


def compare_layer(subject: Subject | LayerInfo | OpInfo | str, sample: LayerSample, dtype: str,
                  *, seed: int = 0, node: str | None = None, refs: Sequence[str] | None = None,
                  keep_values: bool = False, equal_nan: bool = False,
                  rounding: bool = False) -> ComparisonRecord:
    """One step of ``subject`` on ``sample`` in both engines, every tensor compared.

    ``node`` and ``refs`` name the node and its inputs (the layer's name and ``x``/``x0``...
    by default); ``equal_nan`` is for a sample whose NaN PyTorch gives too (a fully masked
    attention row); ``rounding`` judges a float32 failure again against PyTorch's float64
    replay (:func:`judge`).
    """
    case = layer_case(subject, sample, dtype, seed=seed, node=node, refs=refs)
    pair = LayerPair(case)
    tensors, divergence, excused = judge(pair, *pair.step(), keep_values=keep_values,
                                         equal_nan=equal_nan, rounding=rounding)
    return layer_record(case, tensors, divergence,
                        {"mode": case.spec.mode, "upstream": "random" if sample.upstream is None
                         else "given"}, excused)
