"""The one registry of ops, modelled on PyTorch's OpInfo.

Each activation and loss is one frozen :class:`OpInfo`: how the manual engine
computes it, which PyTorch callable mirrors it (a dotted name, so that this
module never imports torch; a user's own op may give the callable itself), its
options, the inputs it is defined on, its kinks and any tolerance override with
the reason for it. Conformance tests, strategies, gradient checks and reports
iterate :data:`ACTIVATIONS` and :data:`LOSSES`; adding an op is one entry here
plus its forward/backward pair.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

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
class OpInfo:
    """Everything the harness knows about one op.

    ``domain`` is the interval that conformance inputs are drawn from (for a
    loss, its input); ``output_range`` is the interval an activation maps into
    (so that ``bce`` can demand probabilities); ``targets`` names the target
    kinds a loss accepts (``()`` for activations); ``kinks`` gives, for the
    options in force, the points where the derivative jumps. ``tolerances`` is
    keyed by dtype (both passes) or ``"<dtype>:forward"`` / ``"<dtype>:backward"``
    (one pass), each override with its reason. ``structure`` is ``elementwise`` or
    ``rowwise`` (mixes the feature axis, as softmax): what the gradient check may
    assume. ``torch_kwargs`` are arguments the manual engine fixes and PyTorch needs
    spelled out. ``relations`` checks the options together (``min_val < max_val``) and
    returns the problem or ``None``; ``needs`` names the input a loss is defined on (a key
    of :data:`INPUT_KINDS`), which the node before it must produce, and ``hint`` says how
    to give it.
    """

    name: str
    forward: Callable[..., Any]
    backward: Callable[..., Any]
    torch: str | Callable[..., Any]
    options: Mapping[str, Option] = field(default_factory=dict)
    variants: tuple[Options, ...] = ({},)
    domain: tuple[float, float] = (-4.0, 4.0)
    output_range: tuple[float, float] = (-math.inf, math.inf)
    targets: tuple[str, ...] = ()
    kinks: Callable[[Options], tuple[float, ...]] = no_kinks
    tolerances: Mapping[str, Tolerance] = field(default_factory=dict)
    complex_step: bool = False
    structure: str = "elementwise"
    torch_kwargs: Mapping[str, Any] = field(default_factory=dict)
    relations: Callable[[Options], str | None] = no_relations
    needs: str = "logits"
    hint: str = ""

    @property
    def kind(self) -> str:
        return "loss" if self.targets else "activation"

    def defaults(self) -> dict[str, Any]:
        return {name: option.default for name, option in self.options.items()}

    def tolerance(self, dtype: str, stage: str = "forward") -> Tolerance:
        """The override for ``dtype`` and ``stage`` (``"float32:backward"`` beats ``"float32"``)."""
        for key in (f"{dtype}:{stage}", dtype):
            if key in self.tolerances:
                return self.tolerances[key]
        return DEFAULT_TOLERANCES[dtype]


def _pair(module: Any, name: str) -> dict[str, Any]:
    return {"forward": getattr(module, f"{name}_forward"),
            "backward": getattr(module, f"{name}_backward")}


def _activation(name: str, module: Any, torch: str, **kw: Any) -> OpInfo:
    return OpInfo(name=name, torch=torch, **_pair(module, name), **kw)


_DIM = Int(-1, low=-(1 << 30))
# Class weights and positive weights: arrays checked against the input's shape at the first
# call (manual.targets); ignore_index as PyTorch's (-100: nothing ignored).
_WEIGHTED = {"weight": Values(), "ignore_index": Int(-100, low=-(1 << 62))}

_ACTIVATIONS = [
    _activation("identity", pw, "torch.clone", complex_step=True),
    _activation("relu", pw, F + "relu", output_range=(0, math.inf), kinks=lambda o: (0.0,)),
    _activation(
        "leaky_relu", pw, F + "leaky_relu",
        options={"negative_slope": Real(0.01)},
        variants=({}, {"negative_slope": 0.2}),
        kinks=lambda o: (0.0,),
    ),
    _activation(
        "elu", pw, F + "elu", options={"alpha": Real(1.0)},
        variants=({}, {"alpha": 0.5}), output_range=(-math.inf, math.inf),
        kinks=lambda o: (0.0,) if o.get("alpha", 1.0) != 1.0 else (),
    ),
    _activation("selu", pw, F + "selu", kinks=lambda o: (0.0,)),
    # PyTorch 2.13's float64 celu backward rounds 1/alpha to float32: a relative
    # error up to ~4e-8 (1 + |x|/alpha) unless 1/alpha is exact in float32, which
    # grows past the float64 tolerance once summed into weight gradients. So the
    # variants (and the fuzzer, reference.fuzz.strategies) use alphas with exact
    # reciprocals; tests/test_fuzz_strategies.py has a canary for when torch fixes it.
    _activation(
        "celu", pw, F + "celu", options={"alpha": Real(1.0, nonzero=True)},
        variants=({}, {"alpha": 2.0}),
    ),
    _activation(
        "gelu", sm, F + "gelu", options={"approximate": Choice("none", ("none", "tanh"))},
        variants=({}, {"approximate": "tanh"}),
    ),
    _activation("sigmoid", sm, "torch.sigmoid", output_range=(0, 1), complex_step=True),
    _activation("tanh", sm, "torch.tanh", output_range=(-1, 1), complex_step=True),
    _activation(
        "softplus", sm, F + "softplus",
        options={"beta": Real(1.0, low=0, open_low=True), "threshold": Real(20.0)},
        variants=({}, {"beta": 2.0, "threshold": 3.0}),
        output_range=(0, math.inf),
        kinks=lambda o: (o.get("threshold", 20.0) / o.get("beta", 1.0),),
    ),
    _activation("silu", sm, F + "silu", complex_step=True),
    _activation("mish", sm, F + "mish", complex_step=True),
    _activation(
        "hardtanh", pw, F + "hardtanh",
        options={"min_val": Real(-1.0), "max_val": Real(1.0)},
        variants=({}, {"min_val": -2.0, "max_val": 0.5}),
        output_range=(-1, 1),
        kinks=lambda o: (o.get("min_val", -1.0), o.get("max_val", 1.0)),
        relations=_ordered("min_val", "max_val", -1.0, 1.0),
    ),
    # PyTorch 2.13's float64 hardsigmoid backward multiplies by float32(1/6)
    # (0.16666667163...), a relative error of 3e-8 that the default float64
    # tolerance absorbs (err/tol ~0.07); the manual engine keeps the exact 1/6.
    _activation(
        "hardsigmoid", pw, F + "hardsigmoid", domain=(-5.0, 5.0), output_range=(0, 1),
        kinks=lambda o: (-3.0, 3.0),
    ),
    _activation("hardswish", pw, F + "hardswish", domain=(-5.0, 5.0), kinks=lambda o: (-3.0, 3.0)),
    _activation("softsign", sm, F + "softsign", output_range=(-1, 1)),
    _activation(
        "logsigmoid", sm, F + "logsigmoid", output_range=(-math.inf, 0), complex_step=True
    ),
    # Both act on dim (the feature axis, -1, by default: rows are samples). PyTorch needs dim
    # spelled out: torch_kwargs is the default, a spec's dim overrides it.
    _activation("softmax", sx, F + "softmax", output_range=(0, 1), complex_step=True,
                options={"dim": _DIM}, structure="rowwise", torch_kwargs={"dim": -1}),
    _activation(
        "log_softmax", sx, F + "log_softmax", output_range=(-math.inf, 0), complex_step=True,
        options={"dim": _DIM}, structure="rowwise", torch_kwargs={"dim": -1},
    ),
]


def _loss(name: str, module: Any, torch: str, targets: tuple[str, ...], **kw: Any) -> OpInfo:
    kw.setdefault("options", {"reduction": REDUCTION})
    kw.setdefault("variants", ({}, {"reduction": "sum"}, {"reduction": "none"}))
    return OpInfo(name=name, torch=torch, targets=targets, **_pair(module, name), **kw)


_LOSSES = [
    _loss("mse", reg, F + "mse_loss", ("real",), complex_step=True),
    _loss("l1", reg, F + "l1_loss", ("real",), kinks=lambda o: (0.0,)),
    _loss(
        "smooth_l1", reg, F + "smooth_l1_loss", ("real",),
        options={"reduction": REDUCTION, "beta": Real(1.0, low=0)},
        variants=({}, {"reduction": "sum", "beta": 0.5}, {"reduction": "none", "beta": 0.0}),
        kinks=lambda o: (0.0,) if o.get("beta", 1.0) == 0 else (),
    ),
    _loss(
        "huber", reg, F + "huber_loss", ("real",),
        options={"reduction": REDUCTION, "delta": Real(1.0, low=0, open_low=True)},
        variants=({}, {"reduction": "sum", "delta": 0.5}, {"reduction": "none", "delta": 2.0}),
    ),
    _loss(
        "bce", cls, F + "binary_cross_entropy", ("probability",), domain=(0.02, 0.98),
        options={"reduction": REDUCTION, "weight": Values()}, complex_step=True,
        needs="probabilities", hint="end with 'sigmoid' or use 'bce_with_logits'",
    ),
    _loss(
        "bce_with_logits", cls, F + "binary_cross_entropy_with_logits", ("probability",),
        options={"reduction": REDUCTION, "weight": Values(), "pos_weight": Values()},
        complex_step=True,
    ),
    _loss(
        "cross_entropy", cls, F + "cross_entropy", ("class_index", "class_probability"),
        options={"reduction": REDUCTION, "label_smoothing": Real(0.0, low=0, high=1),
                 **_WEIGHTED},
        variants=(
            {}, {"reduction": "sum"}, {"reduction": "none"},
            {"label_smoothing": 0.1}, {"reduction": "sum", "label_smoothing": 0.3},
        ),
        complex_step=True,
    ),
    _loss("nll", cls, F + "nll_loss", ("class_index",), domain=(-4.0, 0.0), complex_step=True,
          options={"reduction": REDUCTION, **_WEIGHTED},
          needs="log-probabilities", hint="end with 'log_softmax' or use 'cross_entropy'"),
    _loss(
        "kl_div", cls, F + "kl_div", ("distribution",), domain=(-4.0, 0.0),
        options={
            "reduction": Choice("mean", ("mean", "batchmean", "sum", "none")),
            "log_target": Flag(False),
        },
        variants=(
            {"reduction": "batchmean"}, {}, {"reduction": "sum", "log_target": True},
            {"reduction": "none"},
        ),
        complex_step=True, needs="log-probabilities", hint="end with 'log_softmax'",
    ),
]

ACTIVATIONS: Mapping[str, OpInfo] = {op.name: op for op in _ACTIVATIONS}
LOSSES: Mapping[str, OpInfo] = {op.name: op for op in _LOSSES}
OPS: Mapping[str, OpInfo] = {**ACTIVATIONS, **LOSSES}
