r"""A fast numerical check of a built :class:`manual.network.Network`.

Perturbing one weight :math:`W_{rc}` of a linear layer by :math:`\pm h` changes one column of
that layer's output, :math:`Y_{:,r} \pm h X_{:,c}`; an elementwise activation keeps the change
in that column, and the next linear layer turns it into a rank-one update
:math:`Y' = Y + \Delta_{:,r} W'^\top_{r,:}`. Perturbing an input element changes one row, and
every layer here acts on rows independently. So a chunk of :math:`K` perturbed copies is
carried as changed columns, changed rows, or dense ``(K, N, C)`` stacks (after the first
rank-one update, through batched matrix products), never one Python forward per element: the
cost of ``full`` is that of the :math:`2P` forwards themselves, minus the work the structure
saves. The losses are reduced per copy, with the reduction's weights :math:`w`
(:math:`L = \sum w \odot \ell`), and the two copies of each element are subtracted term by term,
:math:`\sum w \odot (\ell^+ - \ell^-)`.

The check runs in float64: a float32 network is checked on a float64 copy of its parameters.

:attr:`NetworkEvaluator.multiply_adds` counts, as they run, the scalar multiply-adds of the
linear layers in the perturbed evaluations (matrix products, rank-one updates; a complex
product counts as two real ones): a machine-independent measure of the checker's work.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from manual.data import Data, make_data
from manual.gradcheck.core import Analytic, Array, straddles
from manual.gradcheck.graph import GraphEvaluator
from manual.gradcheck.modes import default_eps, run_check
from manual.gradcheck.opcheck import complex_form
from manual.gradcheck.records import GradcheckRecord
from manual.layers import LAYERS
from manual.network import build, initial_parameters
from manual.parse import parse_spec
from manual.random import stream
from manual.registry import LOSSES
from manual.spec import Spec

# Elements per stacked array: bounds the memory of one chunk (32 MB of float64).
CHUNK_ELEMENTS = 1 << 22
INPUT = "input"


class Columns(NamedTuple):
    """Copy ``k`` is the base array with column ``cols[k]`` replaced by ``vals[k]`` (``(K, N)``)."""

    cols: NDArray[np.int64]
    vals: NDArray[Any]


class Rows(NamedTuple):
    """Copy ``k`` is the base array with row ``rows[k]`` replaced by ``vals[k]`` (``(K, C)``)."""

    rows: NDArray[np.int64]
    vals: NDArray[Any]


class Dense(NamedTuple):
    vals: NDArray[Any]  # (K, N, C)


Stack = Columns | Rows | Dense


Fn = Callable[[NDArray[Any]], NDArray[Any]]


@dataclass(frozen=True)
class _Affine:
    r"""An ``affine`` node: :math:`Y = X W^\top + b` over the last axis."""

    weight: Array
    bias: Array | None


@dataclass(frozen=True)
class _Pointwise:
    """An ``elementwise`` or ``rowwise`` node: ``fn`` on a stack of rows (the entry's own
    forward, or the complex step's analytic form), with its kinks."""

    fn: Fn
    rowwise: bool
    kinks: tuple[float, ...] = ()


def _on_rows(fn: Fn) -> Fn:
    """``fn`` (written for a batch of rows ``(B, C)``) on a stack of any rank: the leading axes
    become the batch, as the layer sees it in the chain."""
    def on_rows(z: NDArray[Any]) -> NDArray[Any]:
        return np.reshape(fn(z.reshape(-1, z.shape[-1])), z.shape)
    return on_rows


def _float64_copy(spec: Spec, data: Data, params: Mapping[str, Array] | None
                  ) -> tuple[Spec, Data, dict[str, Array]]:
    """The spec, data and parameters in float64: a float32 network is checked on a copy."""
    given = initial_parameters(spec) if params is None else dict(params)

    def wide(v: Array) -> Array:
        return np.asarray(v, dtype=np.float64) if np.asarray(v).dtype.kind == "f" else v

    data64 = Data(wide(data.x), wide(data.y), {k: wide(v) for k, v in data.others.items()})
    return (dataclasses.replace(spec, dtype="float64"), data64,
            {k: np.asarray(v, dtype=np.float64) for k, v in given.items()})


def complex_refusal(spec: Spec) -> str:
    """Why ``spec`` cannot be checked with the complex step ('' if it can).

    Every node must be ``affine`` (a matrix product is analytic) or have an op whose registry
    entry gives a complex forward; so must the loss; and the network must be a chain that the
    rank-one evaluator runs (:func:`fast_path`).
    """
    for index, node in enumerate(spec.nodes):
        info = LAYERS[node.type]
        if info.structure == "affine":
            continue
        if info.op is None:
            return (f"{spec.label(index)} has no complex forward (the complex step runs on "
                    f"chains of affine layers and analytic activations); use full mode")
        if info.op.calculus.complex_forward is None:
            return (f"{spec.label(index)} is not analytic (its registry entry has no complex "
                    f"forward), so the complex step does not apply; use full mode")
    if LOSSES[spec.loss.type].calculus.complex_forward is None:
        return (f"loss ({spec.loss.type}) is not analytic (its registry entry has no complex "
                f"forward), so the complex step does not apply; use full mode")
    if not fast_path(spec):
        return ("the complex step runs on chains of affine, elementwise and row-wise layers "
                "on rows of features, without a class weight or ignore_index; use full mode")
    return ""


class BackpropError(RuntimeError):
    """The engine under test raised while computing the analytic gradient."""


class NetworkEvaluator(Analytic):
    """Batched perturbed evaluations of a network's loss (see the module docstring)."""

    def __init__(self, spec: Spec, data: Data, params: Mapping[str, Array] | None = None,
                 seed: int = 0, complex_step: bool = False) -> None:
        spec, data, params64 = _float64_copy(spec, data, params)
        self.x, self.y = data.x, data.y
        options = dict(spec.loss.options)
        reduction = options.get("reduction", "mean")
        rng = stream(seed, "gradcheck", "dloss")  # as the general evaluator draws it
        try:  # the subject under test: whatever it raises is its failure, not bad input
            net = build(spec, params64)
            out = net.forward(self.x)
            loss = net.loss(out, self.y)
            dloss: Any = rng.standard_normal(loss.shape) if reduction == "none" else 1.0
            net.backward(dloss)
        except Exception as error:
            raise BackpropError(f"the network's forward or backward raised "
                                f"{type(error).__name__}: {error}") from error
        self.grads: dict[str, Array] = {k: np.array(v, dtype=np.float64)
                                        for k, v in net.named_grads().items()}
        self.grads[INPUT] = np.array(net.input_grad, dtype=np.float64)
        self.params = params64
        self.names = [*self.grads]
        self.base: list[Array] = [self.x, *net.outputs]
        self.layers = [self._layer(i, net, spec, complex_step) for i in range(len(spec.nodes))]
        loss_op = LOSSES[spec.loss.type]
        if complex_step:
            self.loss_fn = complex_form(loss_op, options)
        else:
            rest = {**options, "reduction": "none"}
            self.loss_fn = lambda z, t: loss_op.forward(z, t, **rest)[0]
        self.loss_kinks = () if complex_step else tuple(loss_op.domain.kinks(options))
        self.loss_on_difference = "real" in loss_op.targets
        elementwise = loss_op.forward(out, self.y, **{**options, "reduction": "none"})[0]
        if reduction == "none":
            weights = np.asarray(dloss, dtype=np.float64)
        elif reduction == "sum":
            weights = np.ones_like(elementwise)
        else:
            count = self.x.shape[0] if reduction == "batchmean" else elementwise.size
            weights = np.full_like(elementwise, 1 / count)
        self.weights = weights
        # First-order rounding: each intermediate value v is off by about eps |v|, which moves
        # the loss by eps |v| |dL/dv|; the loss's own terms add eps |w l|.
        self.scale = float(np.sum(np.abs(weights * elementwise)) + sum(
            np.sum(np.abs(v * g)) for v, g in zip(net.outputs, net.upstream, strict=False)
            if np.shape(v) == np.shape(g)))  # a broken backward may leave odd upstream records
        self.value_check = float(np.sum(weights * elementwise)), float(np.sum(dloss * loss))
        self.max_width = max(a.shape[1] for a in self.base)
        # Multiply-adds of the linear layers in the perturbed evaluations (not the base pass).
        self.multiply_adds = 0

    @staticmethod
    def _layer(i: int, net: Any, spec: Spec, complex_step: bool) -> _Affine | _Pointwise:
        """Node ``i`` by its entry's structure (never by its name): an affine node's weight
        and bias, or an elementwise / row-wise node's own forward (its analytic form for the
        complex step) and kinks."""
        node = spec.nodes[i]
        info = LAYERS[node.type]
        if info.structure == "affine":
            params = net.modules[node.name].params
            return _Affine(params["weight"], params.get("bias"))
        options, rowwise = dict(node.options), info.structure == "rowwise"
        if complex_step:
            if info.op is None:
                raise ValueError(f"mode complex: {spec.label(i)} has no complex forward")
            return _Pointwise(_on_rows(complex_form(info.op, options)), rowwise)
        training = net.training

        def forward(z: NDArray[Any]) -> NDArray[Any]:
            return info.forward((z,), {}, {}, {}, training=training, **options)[0]

        kinks = tuple(info.op.domain.kinks(options)) if info.op is not None else ()
        return _Pointwise(_on_rows(forward), rowwise, kinks)

    # -- the Evaluator protocol -------------------------------------------------------------

    def value(self, name: str) -> Array:
        return self.x if name == INPUT else self.params[name]

    def differences(
        self, name: str, h: float, flat: NDArray[np.int64] | None = None,
        direction: Array | None = None, complex_step: bool = False,
    ) -> tuple[Array, NDArray[np.bool_]]:
        if name not in self.grads:
            raise ValueError(f"tensor: no tensor {name!r} (known: {', '.join(self.names)})")
        steps = (1j * h,) if complex_step else (h, -h)
        if direction is not None:
            return self._run(name, steps, None, direction)
        if flat is None:
            raise ValueError("differences: give the elements (flat) or a direction")
        per_copy = len(steps) * self.x.shape[0] * self.max_width
        m = max(1, CHUNK_ELEMENTS // per_copy)
        deltas, crossings = [], []
        for start in range(0, len(flat), m):
            delta, crossed = self._run(name, steps, flat[start:start + m], None)
            deltas.append(delta)
            crossings.append(crossed)
        return np.concatenate(deltas), np.concatenate(crossings)

    # -- perturbed copies -------------------------------------------------------------------

    def _origin(self, name: str, steps: tuple[Any, ...], flat: NDArray[np.int64] | None,
                direction: Array | None) -> tuple[int, Stack]:
        """The stacked copies right after the perturbed tensor, and the layer they enter."""
        if direction is not None:
            return self._along(name, np.asarray(steps), direction)
        if flat is None:
            raise ValueError("differences: give the elements (flat) or a direction")
        s = np.repeat(np.asarray(steps), len(flat))
        if name == INPUT:
            n, c = np.divmod(flat, self.x.shape[1])
            rows = np.tile(n, len(steps))
            vals = self.x[rows].astype(s.dtype)
            vals[np.arange(len(rows)), np.tile(c, len(steps))] += s
            return 0, Rows(rows, vals)
        i = int(name.split(".")[1])
        x_in, y_out = self.base[i], self.base[i + 1]
        if name.endswith("weight"):
            r, c = np.divmod(flat, x_in.shape[1])
            change = np.tile(x_in[:, c].T, (len(steps), 1))
        else:
            r, change = flat, np.ones((len(flat), x_in.shape[0]))
            change = np.tile(change, (len(steps), 1))
        cols = np.tile(r, len(steps))
        return i + 1, Columns(cols, y_out[:, cols].T + s[:, None] * change)

    def _along(self, name: str, s: NDArray[Any], direction: Array) -> tuple[int, Stack]:
        """The copies perturbed along ``direction`` (one per step), dense."""
        if name == INPUT:
            return 0, Dense(self.x[None] + s[:, None, None] * direction[None])
        i = int(name.split(".")[1])
        x_in, y_out = self.base[i], self.base[i + 1]
        if name.endswith("weight"):
            self.multiply_adds += x_in.shape[0] * direction.size
        change = x_in @ direction.T if name.endswith("weight") else direction[None, :]
        return i + 1, Dense(y_out[None] + s[:, None, None] * change[None])

    def _dense(self, stack: Columns, base: Array) -> Dense:
        k = len(stack.cols)
        out = np.repeat(base[None], k, axis=0).astype(stack.vals.dtype)
        out[np.arange(k), :, stack.cols] = stack.vals
        return Dense(out)

    @staticmethod
    def _matmul(vals: NDArray[Any], weight: Array) -> NDArray[Any]:
        if np.iscomplexobj(vals):  # two real products are cheaper than one complex one
            return vals.real @ weight.T + 1j * (vals.imag @ weight.T)
        return vals @ weight.T

    def _affine(self, layer: _Affine, i: int, stack: Stack) -> Stack:
        weight, bias = layer.weight, layer.bias
        complex_factor = 2 if np.iscomplexobj(stack.vals) else 1
        if isinstance(stack, Rows):
            self.multiply_adds += complex_factor * stack.vals.size * weight.shape[0]
            out = self._matmul(stack.vals, weight)
            return Rows(stack.rows, out if bias is None else out + bias)
        if isinstance(stack, Columns):
            delta = stack.vals - self.base[i][:, stack.cols].T
            rank_one = delta[:, :, None] * weight[:, stack.cols].T[:, None, :]
            self.multiply_adds += complex_factor * rank_one.size
            return Dense(self.base[i + 1][None] + rank_one)
        k, n, d = stack.vals.shape
        self.multiply_adds += complex_factor * stack.vals.size * weight.shape[0]
        out = self._matmul(stack.vals.reshape(k * n, d), weight)
        if bias is not None:
            out = out + bias
        return Dense(out.reshape(k, n, -1))

    def _pointwise(self, layer: _Pointwise, i: int, stack: Stack, pairs: bool
                   ) -> tuple[Stack, NDArray[np.bool_]]:
        crossed = self._crossed(stack.vals, layer.kinks) if pairs and layer.kinks else None
        if isinstance(stack, Columns) and layer.rowwise:
            stack = self._dense(stack, self.base[i])
        out: Stack
        if isinstance(stack, Columns):
            out = Columns(stack.cols, layer.fn(stack.vals))
        elif isinstance(stack, Rows):
            out = Rows(stack.rows, layer.fn(stack.vals))
        else:
            out = Dense(layer.fn(stack.vals))
        return out, crossed if crossed is not None else np.zeros(0, dtype=bool)

    @staticmethod
    def _crossed(vals: NDArray[Any], points: tuple[float, ...]) -> NDArray[np.bool_]:
        m = len(vals) // 2
        return straddles(vals[:m], vals[m:], points, tuple(range(1, vals.ndim)))

    def _run(self, name: str, steps: tuple[Any, ...], flat: NDArray[np.int64] | None,
             direction: Array | None) -> tuple[Array, NDArray[np.bool_]]:
        pairs = len(steps) == 2
        start, stack = self._origin(name, steps, flat, direction)
        m = len(stack.vals) // len(steps)
        crossed = np.zeros(m, dtype=bool)
        for i in range(start, len(self.layers)):
            layer = self.layers[i]
            if isinstance(layer, _Affine):
                stack = self._affine(layer, i, stack)
            else:
                stack, hit = self._pointwise(layer, i, stack, pairs)
                if hit.size:
                    crossed |= hit
        if isinstance(stack, Columns):
            stack = self._dense(stack, self.base[-1])
        if isinstance(stack, Rows):
            target, weights = self.y[stack.rows], self.weights[stack.rows[:m]]
            ell = self.loss_fn(stack.vals, target)
        else:
            k, n, c = stack.vals.shape
            target = np.tile(self.y, (k,) + (1,) * (self.y.ndim - 1))
            ell = self.loss_fn(stack.vals.reshape(k * n, c), target)
            ell = ell.reshape(k, *self.weights.shape)
            weights = self.weights[None]
        if pairs and self.loss_kinks:
            z = stack.vals - target.reshape(stack.vals.shape) if self.loss_on_difference \
                else stack.vals
            crossed |= self._crossed(z, self.loss_kinks)
        axes = tuple(range(1, ell.ndim))
        if pairs:
            return np.sum(weights * (ell[:m] - ell[m:]), axis=axes), crossed
        return np.imag(np.sum(weights * ell, axis=axes)), crossed


def fast_path(spec: Spec) -> bool:
    """Whether the batched rank-one evaluator applies: a chain of affine, elementwise or
    row-wise layers on rows of features, under a loss whose mean divides by the element count
    (a class ``weight`` or an ``ignore_index`` divides by the kept targets' weights instead,
    which the general evaluator gets from the loss itself)."""
    return spec.chain and len(spec.input_shape) == 1 and not (
        {"weight", "ignore_index"} & set(spec.loss.options)) and all(
        _rank_one_node(spec, i) for i in range(len(spec.nodes)))


def _rank_one_node(spec: Spec, i: int) -> bool:
    """Node ``i`` of a chain on rows: affine, or elementwise / row-wise without parameters,
    state or noise, keeping its input's shape."""
    node = spec.nodes[i]
    structure = LAYERS[node.type].structure
    if len(node.shape) != 1:
        return False
    if structure == "affine":
        return True
    signature = node.signature
    before = spec.nodes[i - 1].shape if i else spec.input_shape
    return structure in ("elementwise", "rowwise") and node.shape == before and not (
        signature.params or signature.state or signature.noise)


def _graph_evaluator(spec: Spec, data: Data, params: Mapping[str, Array] | None,
                     seed: int) -> GraphEvaluator:
    """The general evaluator, on a float64 copy (the subject's exceptions are its failure)."""
    try:
        return GraphEvaluator(*_float64_copy(spec, data, params), seed=seed)
    except Exception as error:  # the subject under test: whatever it raises is its failure
        raise BackpropError(f"the network's forward or backward raised "
                            f"{type(error).__name__}: {error}") from error


def _as_spec(spec: Spec | Mapping[str, Any]) -> Spec:
    return spec if isinstance(spec, Spec) else parse_spec(dict(spec))


def _as_data(spec: Spec, data: Data | Mapping[str, Any]) -> Data:
    return data if isinstance(data, Data) else make_data(spec, data["x"], data["y"])


def check_network(
    spec: Spec | Mapping[str, Any], data: Data | Mapping[str, Any], mode: str = "full", *,
    eps: float | None = None, seed: int = 0, k: int = 16,
    params: Mapping[str, Array] | None = None,
) -> GradcheckRecord:
    """Check every parameter gradient and the input gradient of the network ``spec`` on ``data``.

    ``mode`` is ``full``, ``sparse`` (``k`` elements per tensor), ``projection`` or
    ``complex``; ``complex`` is refused (``ValueError`` naming the layer) when the network holds
    an op that is not analytic. ``params`` defaults to the spec's own initial parameters.
    """
    spec = _as_spec(spec)
    data = _as_data(spec, data)
    if mode == "complex":
        problem = complex_refusal(spec)
        if problem:
            raise ValueError(f"mode complex: {problem}")
    try:
        evaluator: Any
        if fast_path(spec):
            evaluator = NetworkEvaluator(spec, data, params, seed=seed,
                                         complex_step=mode == "complex")
        else:
            evaluator = _graph_evaluator(spec, data, params, seed)
    except BackpropError as error:
        return GradcheckRecord(
            subject=spec.name or "network", mode=mode, eps=default_eps(mode) if eps is None
            else float(eps), seed=seed, source_dtype=spec.dtype, passed=False, tensors=[],
            problem=str(error), spec=spec.to_dict(),
        )
    return run_check(evaluator, mode=mode, eps=eps, seed=seed, k=k,
                     subject=spec.name or "network", source_dtype=spec.dtype,
                     spec=spec.to_dict())
