"""The one registry of ops, modelled on PyTorch's OpInfo.

Each activation and loss is one frozen :class:`OpInfo`: how the manual engine
computes it, which PyTorch callable mirrors it (a dotted name, so that this
module never imports torch; a user's own op may give the callable itself), its
options, and its facts in small groups: :class:`Domain` (inputs, outputs, kinks,
shift invariance), :class:`Oracle` (how PyTorch is called and trusted, tolerance
overrides with their reasons), :class:`LossInfo` and :class:`Calculus`. Conformance
tests, strategies, gradient checks, target validation and reports iterate
:data:`ACTIVATIONS` and :data:`LOSSES` and read these fields, never a table keyed on
an op's name; adding an op is one entry here plus its forward/backward pair.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from manual.ops import analytic as cx
from manual.ops import classification_losses as cls
from manual.ops import piecewise as pw
from manual.ops import regression_losses as reg
from manual.ops import smooth as sm
from manual.ops import softmax as sx
from manual.options import REDUCTION, Choice, Flag, Int, Option, Real, Values

Options = Mapping[str, Any]
F = "torch.nn.functional."


@dataclass(frozen=True)
class Tolerance:
    """An override of ``torch.testing.assert_close``'s default tolerance, with its reason."""

    rtol: float
    atol: float
    reason: str


# torch.testing.assert_close's defaults, by dtype.
DEFAULT_TOLERANCES = MappingProxyType(
    {"float32": Tolerance(1.3e-6, 1e-5, "default"), "float64": Tolerance(1e-7, 1e-7, "default")}
)


def no_kinks(options: Options) -> tuple[float, ...]:
    return ()


def no_relations(options: Options) -> str | None:
    return None


# What a loss's ``needs`` names, as the interval the producing layer's output_range must lie in.
INPUT_KINDS: Mapping[str, tuple[float, float]] = MappingProxyType({
    "logits": (-math.inf, math.inf),
    "probabilities": (0.0, 1.0),
    "log-probabilities": (-math.inf, 0.0),
})


def _ordered(low: str, high: str, low_default: float, high_default: float
             ) -> Callable[[Options], str | None]:
    """A relation ``options[low] < options[high]`` (each at its default when not given)."""
    def check(options: Options) -> str | None:
        a, b = options.get(low, low_default), options.get(high, high_default)
        return None if a < b else f"{low} must be less than {high}, got {a!r} >= {b!r}"
    return check


@dataclass(frozen=True)
class Domain:
    r"""Where an op is defined, what it maps to, and where its derivative jumps.

    ``inputs`` is the interval conformance draws inputs from (a loss's: its input);
    ``outputs`` the interval an activation maps into (so that ``bce`` can demand
    probabilities); ``kinks(options)`` the points where the derivative jumps, for the options
    in force. ``shift_invariant``: adding one constant along the op's ``dim`` changes nothing,
    :math:`f(x + c\mathbf{1}) = f(x)` (softmax's rows): such ops are also drawn with rows
    offset past ``exp``'s overflow.
    """

    inputs: tuple[float, float] = (-4.0, 4.0)
    outputs: tuple[float, float] = (-math.inf, math.inf)
    kinks: Callable[[Options], tuple[float, ...]] = no_kinks
    shift_invariant: bool = False


@dataclass(frozen=True)
class Oracle:
    """How PyTorch's mirror is called, and how far it can be trusted.

    ``kwargs`` are arguments the manual engine fixes and PyTorch needs spelled out (a spec's
    option overrides them); ``tolerances`` overrides keyed by dtype (both passes) or
    ``"<dtype>:forward"`` / ``"<dtype>:backward"`` (one pass), each with its reason; ``exact``
    names, per option, the only values PyTorch computes exactly (the fuzzer draws those);
    ``quiet`` is the start of a warning PyTorch gives on every call, which comparisons ignore.
    """

    kwargs: Mapping[str, Any] = field(default_factory=dict)
    tolerances: Mapping[str, Tolerance] = field(default_factory=dict)
    exact: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    quiet: str = ""


@dataclass(frozen=True)
class LossInfo:
    """What a loss takes.

    ``targets`` names the target kinds it accepts (:data:`TARGET_KINDS`); ``needs`` the input
    it is defined on (a key of :data:`INPUT_KINDS`), which the node before it must produce,
    made from logits by the activation ``adapter``. ``inner`` is the activation the loss applies
    to its input first (``bce_with_logits`` = ``bce`` of a sigmoid, ``cross_entropy`` = ``nll``
    of a log-softmax). ``kinked_by`` gives the options under which the loss has a kink where the
    output equals the target (``l1``: always; ``smooth_l1``: ``beta`` 0); ``None``: never.
    """

    targets: tuple[str, ...]
    needs: str = "logits"
    adapter: str = ""
    inner: str = ""
    kinked_by: Options | None = None


@dataclass(frozen=True)
class Calculus:
    """Analysis the gradient checks use.

    ``complex_forward(z, **options)`` is an analytic form of the forward for the complex step
    (:mod:`manual.ops.analytic`; a loss's gives the per-element loss and takes no
    ``reduction``); ``None`` when the op is not analytic. ``derivative`` writes :math:`f'` in
    the output :math:`a = f(x)`, with its formula (sigmoid: ``a(1 - a)``), so that a check can
    say which derivative a wrong gradient is off by.
    """

    complex_forward: Callable[..., Any] | None = None
    derivative: tuple[str, Callable[[Any], Any]] | None = None


# The target kinds of a loss; what each means is drawn in reference.core.sampling.
TARGET_KINDS = ("real", "probability", "class_index", "class_probability", "distribution")
SOFT_TARGETS = ("class_probability", "distribution")


@dataclass(frozen=True)
class OpInfo:
    """Everything the harness knows about one op.

    ``structure`` is ``elementwise`` or ``rowwise`` (mixes the feature axis, as softmax): what
    the gradient check may assume. ``relations`` checks the options together (``min_val <
    max_val``) and returns the problem or ``None``. ``variants`` are option sets conformance
    runs. The rest is grouped: :class:`Domain` (inputs, outputs, kinks), :class:`Oracle` (how
    PyTorch is called and trusted), :class:`LossInfo` (``None`` for an activation) and
    :class:`Calculus` (the complex step, the derivative).
    """

    name: str
    forward: Callable[..., Any]
    backward: Callable[..., Any]
    torch: str | Callable[..., Any]
    options: Mapping[str, Option] = field(default_factory=dict)
    variants: tuple[Options, ...] = ({},)
    relations: Callable[[Options], str | None] = no_relations
    structure: str = "elementwise"
    domain: Domain = Domain()
    oracle: Oracle = Oracle()
    loss: LossInfo | None = None
    calculus: Calculus = Calculus()

    @property
    def kind(self) -> str:
        return "loss" if self.loss is not None else "activation"

    @property
    def targets(self) -> tuple[str, ...]:
        """The target kinds a loss accepts (``()`` for an activation)."""
        return self.loss.targets if self.loss is not None else ()

    def defaults(self) -> dict[str, Any]:
        return {name: option.default for name, option in self.options.items()}

    def tolerance(self, dtype: str, stage: str = "forward") -> Tolerance:
        """The override for ``dtype`` and ``stage`` (``"float32:backward"`` beats ``"float32"``)."""
        for key in (f"{dtype}:{stage}", dtype):
            if key in self.oracle.tolerances:
                return self.oracle.tolerances[key]
        return DEFAULT_TOLERANCES[dtype]


def _pair(module: Any, name: str) -> dict[str, Any]:
    return {"forward": getattr(module, f"{name}_forward"),
            "backward": getattr(module, f"{name}_backward")}


def _activation(name: str, module: Any, torch: str, *, complex_forward: Any = None,
                derivative: tuple[str, Callable[[Any], Any]] | None = None, **kw: Any) -> OpInfo:
    return OpInfo(name=name, torch=torch, **_pair(module, name),
                  calculus=Calculus(complex_forward, derivative), **kw)


def _kink_at_zero(options: Options) -> tuple[float, ...]:
    return (0.0,)


_DIM = Int(-1, low=-(1 << 30))
# Class weights and positive weights: arrays checked against the input's shape at the first
# call (manual.targets); ignore_index as PyTorch's (-100: nothing ignored).
_WEIGHTED = {"weight": Values(), "ignore_index": Int(-100, low=-(1 << 62))}
_PROBABILITIES = (0.0, 1.0)
_LOG_PROBABILITIES = (-math.inf, 0.0)

_ACTIVATIONS = [
    _activation("identity", pw, "torch.clone", complex_forward=cx.identity),
    _activation("relu", pw, F + "relu", domain=Domain(outputs=(0, math.inf), kinks=_kink_at_zero)),
    _activation(
        "leaky_relu", pw, F + "leaky_relu",
        options={"negative_slope": Real(0.01)},
        variants=({}, {"negative_slope": 0.2}), domain=Domain(kinks=_kink_at_zero),
    ),
    _activation(
        "elu", pw, F + "elu", options={"alpha": Real(1.0)}, variants=({}, {"alpha": 0.5}),
        domain=Domain(kinks=lambda o: (0.0,) if o.get("alpha", 1.0) != 1.0 else ()),
    ),
    _activation("selu", pw, F + "selu", domain=Domain(kinks=_kink_at_zero)),
    # PyTorch 2.13's float64 celu backward rounds 1/alpha to float32: a relative
    # error up to ~4e-8 (1 + |x|/alpha) unless 1/alpha is exact in float32, which
    # grows past the float64 tolerance once summed into weight gradients. So the
    # variants, and the fuzzer (Oracle.exact: powers of two have exact reciprocals), use
    # alphas with exact reciprocals; tests/test_fuzz_strategies.py has a canary for when
    # torch fixes it.
    _activation(
        "celu", pw, F + "celu", options={"alpha": Real(1.0, nonzero=True)},
        variants=({}, {"alpha": 2.0}), oracle=Oracle(exact={"alpha": (0.25, 0.5, 1.0, 2.0, 4.0)}),
    ),
    _activation(
        "gelu", sm, F + "gelu", options={"approximate": Choice("none", ("none", "tanh"))},
        variants=({}, {"approximate": "tanh"}),
    ),
    _activation("sigmoid", sm, "torch.sigmoid", domain=Domain(outputs=(0, 1)),
                complex_forward=cx.sigmoid, derivative=("a(1 - a)", lambda a: a * (1 - a))),
    _activation("tanh", sm, "torch.tanh", domain=Domain(outputs=(-1, 1)),
                complex_forward=np.tanh, derivative=("1 - a^2", lambda a: 1 - a * a)),
    _activation(
        "softplus", sm, F + "softplus",
        options={"beta": Real(1.0, low=0, open_low=True), "threshold": Real(20.0)},
        variants=({}, {"beta": 2.0, "threshold": 3.0}),
        domain=Domain(outputs=(0, math.inf),
                      kinks=lambda o: (o.get("threshold", 20.0) / o.get("beta", 1.0),)),
    ),
    _activation("silu", sm, F + "silu", complex_forward=cx.silu),
    _activation("mish", sm, F + "mish", complex_forward=cx.mish),
    _activation(
        "hardtanh", pw, F + "hardtanh",
        options={"min_val": Real(-1.0), "max_val": Real(1.0)},
        variants=({}, {"min_val": -2.0, "max_val": 0.5}),
        domain=Domain(outputs=(-1, 1),
                      kinks=lambda o: (o.get("min_val", -1.0), o.get("max_val", 1.0))),
        relations=_ordered("min_val", "max_val", -1.0, 1.0),
    ),
    # PyTorch 2.13's float64 hardsigmoid backward multiplies by float32(1/6)
    # (0.16666667163...), a relative error of 3e-8 that the default float64
    # tolerance absorbs (err/tol ~0.07); the manual engine keeps the exact 1/6.
    _activation(
        "hardsigmoid", pw, F + "hardsigmoid",
        domain=Domain(inputs=(-5.0, 5.0), outputs=(0, 1), kinks=lambda o: (-3.0, 3.0)),
    ),
    _activation("hardswish", pw, F + "hardswish",
                domain=Domain(inputs=(-5.0, 5.0), kinks=lambda o: (-3.0, 3.0))),
    _activation("softsign", sm, F + "softsign", domain=Domain(outputs=(-1, 1))),
    _activation("logsigmoid", sm, F + "logsigmoid", domain=Domain(outputs=(-math.inf, 0)),
                complex_forward=cx.logsigmoid),
    # Both act on dim (the feature axis, -1, by default: rows are samples). PyTorch needs dim
    # spelled out: the oracle's kwargs are the default, a spec's dim overrides them.
    _activation("softmax", sx, F + "softmax", options={"dim": _DIM}, structure="rowwise",
                domain=Domain(outputs=(0, 1), shift_invariant=True),
                oracle=Oracle(kwargs={"dim": -1}), complex_forward=cx.softmax),
    _activation("log_softmax", sx, F + "log_softmax", options={"dim": _DIM}, structure="rowwise",
                domain=Domain(outputs=(-math.inf, 0), shift_invariant=True),
                oracle=Oracle(kwargs={"dim": -1}), complex_forward=cx.log_softmax),
]


def _loss(name: str, module: Any, torch: str, loss: LossInfo, *, complex_forward: Any = None,
          inputs: tuple[float, float] = (-4.0, 4.0), kinks: Callable[[Options], tuple[float, ...]]
          = no_kinks, shift_invariant: bool = False, **kw: Any) -> OpInfo:
    kw.setdefault("options", {"reduction": REDUCTION})
    kw.setdefault("variants", ({}, {"reduction": "sum"}, {"reduction": "none"}))
    return OpInfo(name=name, torch=torch, **_pair(module, name), loss=loss,
                  domain=Domain(inputs=inputs, kinks=kinks, shift_invariant=shift_invariant),
                  calculus=Calculus(complex_forward), **kw)


_REAL = LossInfo(("real",))
_LOSSES = [
    _loss("mse", reg, F + "mse_loss", _REAL, complex_forward=cx.mse),
    _loss("l1", reg, F + "l1_loss", LossInfo(("real",), kinked_by={}), kinks=_kink_at_zero),
    _loss(
        "smooth_l1", reg, F + "smooth_l1_loss", LossInfo(("real",), kinked_by={"beta": 0.0}),
        options={"reduction": REDUCTION, "beta": Real(1.0, low=0)},
        variants=({}, {"reduction": "sum", "beta": 0.5}, {"reduction": "none", "beta": 0.0}),
        kinks=lambda o: (0.0,) if o.get("beta", 1.0) == 0 else (),
    ),
    _loss(
        "huber", reg, F + "huber_loss", _REAL,
        options={"reduction": REDUCTION, "delta": Real(1.0, low=0, open_low=True)},
        variants=({}, {"reduction": "sum", "delta": 0.5}, {"reduction": "none", "delta": 2.0}),
    ),
    _loss(
        "bce", cls, F + "binary_cross_entropy",
        LossInfo(("probability",), needs="probabilities", adapter="sigmoid"),
        inputs=(0.02, 0.98), options={"reduction": REDUCTION, "weight": Values()},
        complex_forward=cx.bce,
    ),
    _loss(
        "bce_with_logits", cls, F + "binary_cross_entropy_with_logits",
        LossInfo(("probability",), inner="sigmoid"),
        options={"reduction": REDUCTION, "weight": Values(), "pos_weight": Values()},
        complex_forward=cx.bce_with_logits,
    ),
    _loss(
        "cross_entropy", cls, F + "cross_entropy",
        LossInfo(("class_index", "class_probability"), inner="log_softmax"),
        options={"reduction": REDUCTION, "label_smoothing": Real(0.0, low=0, high=1),
                 **_WEIGHTED},
        variants=(
            {}, {"reduction": "sum"}, {"reduction": "none"},
            {"label_smoothing": 0.1}, {"reduction": "sum", "label_smoothing": 0.3},
        ),
        shift_invariant=True, complex_forward=cx.cross_entropy,
    ),
    _loss("nll", cls, F + "nll_loss",
          LossInfo(("class_index",), needs="log-probabilities", adapter="log_softmax"),
          inputs=(-4.0, 0.0), options={"reduction": REDUCTION, **_WEIGHTED},
          complex_forward=cx.nll),
    # PyTorch warns on every call that reduction 'mean' will change meaning (to 'batchmean');
    # the comparison tests today's meaning.
    _loss(
        "kl_div", cls, F + "kl_div",
        LossInfo(("distribution",), needs="log-probabilities", adapter="log_softmax"),
        inputs=(-4.0, 0.0),
        options={
            "reduction": Choice("mean", ("mean", "batchmean", "sum", "none")),
            "log_target": Flag(False),
        },
        variants=(
            {"reduction": "batchmean"}, {}, {"reduction": "sum", "log_target": True},
            {"reduction": "none"},
        ),
        oracle=Oracle(quiet="reduction: 'mean' divides"), complex_forward=cx.kl_div,
    ),
]

ACTIVATIONS: Mapping[str, OpInfo] = {op.name: op for op in _ACTIVATIONS}
LOSSES: Mapping[str, OpInfo] = {op.name: op for op in _LOSSES}
OPS: Mapping[str, OpInfo] = {**ACTIVATIONS, **LOSSES}


def loss_info(op: OpInfo) -> LossInfo:
    """``op``'s :class:`LossInfo`; a ``ValueError`` naming it when ``op`` is no loss."""
    if op.loss is None:
        raise ValueError(f"loss: {op.name!r} is an activation, not a loss")
    return op.loss


def hint(loss: OpInfo, losses: Mapping[str, OpInfo] = LOSSES) -> str:
    """How to give ``loss`` the input it needs: end with its adapter, or use the loss that
    applies the adapter itself and takes the same targets (``bce`` -> ``bce_with_logits``)."""
    info = loss_info(loss)
    if not info.adapter:
        return ""
    others = [op.name for op in losses.values() if op.loss is not None
              and op.loss.inner == info.adapter and set(op.loss.targets) & set(info.targets)]
    return f"end with {info.adapter!r}" + (f" or use {others[0]!r}" if others else "")


def probability_losses(losses: Mapping[str, OpInfo] = LOSSES) -> tuple[str, ...]:
    """The binary losses: targets of probabilities (one column of 0/1 labels)."""
    return tuple(name for name, op in losses.items() if "probability" in op.targets)


def class_losses(losses: Mapping[str, OpInfo] = LOSSES) -> tuple[str, ...]:
    """The losses that take class indices (the classes on dim 1)."""
    return tuple(name for name, op in losses.items() if "class_index" in op.targets)
