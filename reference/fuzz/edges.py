"""The edges of the input space, drawn on purpose: what typical random draws never reach.

:func:`reference.fuzz.strategies.fuzz_cases` draws a chain network and then, one time in three,
hands it to :func:`edged_specs`, which applies some of these edge classes (each where the
spec allows it, inserting a layer when one is needed) and says which it applied:

- ``extreme_weights``: one linear layer at a random depth has its weights scaled by a power
  of two (exact), up to :data:`EXTREME_SCALE` (x32 in float32, x512 in float64);
- ``kink_beyond_input``: a pre-activation exactly at a kink of an activation that follows a
  linear layer (not the network input), or an output exactly at a loss kink. Exactness
  in both engines whatever their summation order: one row of that layer's weight is zero
  and its bias is the kink, so the row's pre-activation is ``0 + 0 + ... + kink``, the
  same bits in NumPy and in PyTorch.
  The loss kink (also tagged ``loss_kink``): an output exactly equal to its target for
  ``l1`` or ``smooth_l1`` with ``beta = 0``: a zero weight row of the last linear layer
  with bias 0, the target column set to what the trailing activations make of 0 (exact
  for most: 0 or 1/2);
- ``saturated``: the logits of the sigmoid before ``bce`` (or of ``bce_with_logits``, or
  of the softmax behind ``cross_entropy``, ``nll`` and ``kl_div``) pushed to
  +-:data:`SATURATING_LOGITS`: probabilities within an ulp of 1 (or exactly 1) and near 0;
- ``near_overflow``: the logits of a softmax, log-softmax or cross-entropy shifted by
  :data:`OVERFLOW_SHIFT`, just past where ``exp`` overflows (88.7 in float32, 709.8 in
  float64): those ops are shift-invariant, so a stable engine stays finite;
- ``unnormalised_target`` / ``zero_target`` (:func:`edge_targets`): class-probability and
  distribution rows that do not sum to 1, and exact zeros in them (``kl_div`` without
  ``log_target``, soft ``cross_entropy``).

Batch sizes: :func:`batch_sizes` draws :data:`LARGE_BATCH` on purpose too (1 comes often
enough by itself); a large
batch's arrays come from a seeded generator (a Hypothesis array of 256 rows would cost more
than the comparison). :func:`batch_classes` names a batch's classes for the campaign record.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Mapping
from typing import Any

import numpy as np
from hypothesis import strategies as st

import manual
from manual.registry import ACTIVATIONS, LOSSES, OPS, SOFT_TARGETS, loss_info
from manual.spec import Spec

EDGE_CLASSES = ("extreme_weights", "kink_beyond_input", "saturated", "near_overflow",
                "unnormalised_target", "zero_target")
TARGET_EDGES = ("unnormalised_target", "zero_target")
BATCH_CLASSES = ("1", ">1", "large")
LARGE_BATCH = 256
# Powers of two scale exactly. The largest keeps a default-initialised net's values well
# inside what every activation's stable form computes finitely.
EXTREME_SCALE: Mapping[str, tuple[int, ...]] = {"float32": (8, 16, 32),
                                                 "float64": (16, 64, 512)}
# sigmoid(17) rounds to 1 in float32 and sigmoid(37) in float64; the smaller ones stay an
# ulp or a few below 1 (the region where bce's gradient amplifies rounding most).
SATURATING_LOGITS: Mapping[str, tuple[float, ...]] = {"float32": (12.0, 17.0, 24.0),
                                                       "float64": (30.0, 37.0, 45.0)}
# exp overflows at 88.7 (float32) and 709.8 (float64): both shifts put a row's largest logit
# just past it. A shift-invariant op must not care.
OVERFLOW_SHIFT: Mapping[str, tuple[float, ...]] = {"float32": (90.0, 100.0),
                                                    "float64": (712.0, 730.0)}
# The loss of an edge case, one face each: every loss once, and those that take soft
# targets (cross_entropy, kl_div: the target classes) twice. Every loss is then drawn about
# as often as in a typical case, and each edge class applies to at least two faces.
EDGE_LOSS_FACES = tuple(sorted([*LOSSES, *(name for name, op in LOSSES.items()
                                           if set(op.targets) & set(SOFT_TARGETS))]))


def _mix(value: int) -> int:
    """SplitMix64's finaliser: consecutive integers to unrelated 64-bit values."""
    z = (value + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


_MASK64 = 2**64 - 1


def roll(sides: int) -> st.SearchStrategy[int]:
    """A fair die: ``0 .. sides - 1`` about equally often.

    ``st.integers(0, k)``, ``st.sampled_from`` and ``st.booleans()`` favour their simplest
    value heavily, and a wide integer is small far more often than uniform, which would
    starve the rarer edge classes and losses. A wide integer through a mixing hash spreads
    them evenly (a low-discrepancy hash such as Knuth's golden ratio does not: small values
    miss some faces). 0, which Hypothesis draws about one time in five, stays face 0, so
    shrinking still leads to the first face.
    """
    return st.integers(0, 2**32 - 1).map(
        lambda value: 0 if value == 0 else (_mix(value) >> 32) * sides >> 32)


def batch_classes(batch: int) -> tuple[str, ...]:
    """``("1",)``, ``(">1",)`` or ``(">1", "large")`` (at least :data:`LARGE_BATCH` rows)."""
    if batch == 1:
        return ("1",)
    return (">1", "large") if batch >= LARGE_BATCH else (">1",)


def batch_sizes(max_batch: int, edges: bool = True) -> st.SearchStrategy[int]:
    """``[1, max_batch]``; with ``edges``, :data:`LARGE_BATCH` one time in six on purpose.

    Batch size 1 needs no help: Hypothesis draws the simplest integer, 1, for about a
    third of the typical batches already (and a batch of one cannot show a mistake in a
    mean, so more of them would weaken the rest of the search).
    """
    typical = st.integers(1, max_batch)
    if not edges:
        return typical
    return roll(6).flatmap(lambda side: st.just(LARGE_BATCH) if side == 1 else typical)


def _kinked(name: str, options: Mapping[str, Any]) -> tuple[float, ...]:
    op = ACTIVATIONS.get(name)
    return op.domain.kinks(options) if op is not None and op.structure == "elementwise" else ()


class _Plan:
    """Edits to a chain's layers: which linear layers get explicit values, and how."""

    def __init__(self, layers: list[dict[str, Any]], input_width: int) -> None:
        self.layers = layers
        self.input_width = input_width
        self.scale: dict[int, float] = {}  # id(layer) -> weight factor
        self.shift: dict[int, Any] = {}  # id(layer) -> added to the bias (scalar or per row)
        self.rows: dict[int, dict[int, float]] = {}  # id(layer) -> {row: bias}, zero weights

    def width_before(self, index: int) -> int:
        width = self.input_width
        for layer in self.layers[:index]:
            if layer["type"] == "linear":
                width = layer["out_features"]
        return width

    def linear_before(self, index: int) -> dict[str, Any]:
        """The linear layer feeding position ``index``, inserted when another op feeds it."""
        if index > 0 and self.layers[index - 1]["type"] == "linear":
            return self.layers[index - 1]
        layer = {"type": "linear", "out_features": self.width_before(index)}
        self.layers.insert(index, layer)
        return layer

    def index(self, layer: dict[str, Any]) -> int:
        """Where ``layer`` is (by identity: two layers may be equal dicts)."""
        return next(i for i, other in enumerate(self.layers) if other is layer)

    def linears(self) -> list[dict[str, Any]]:
        return [layer for layer in self.layers if layer["type"] == "linear"]

    def apply(self, raw: dict[str, Any]) -> Spec:
        """Write explicit weights and biases (the initial ones, edited) into the spec."""
        spec = manual.parse_spec(raw)
        params = manual.initial_parameters(spec)
        edited = set(self.scale) | set(self.shift) | set(self.rows)
        for i, layer in enumerate(self.layers):
            if id(layer) not in edited:
                continue
            weight = params[f"layers.{i}.weight"].astype(np.float64)
            bias = params.get(f"layers.{i}.bias")
            bias = np.zeros(len(weight)) if bias is None else bias.astype(np.float64)
            weight = weight * self.scale.get(id(layer), 1.0)
            bias = bias + self.shift.get(id(layer), 0.0)
            for row, value in self.rows.get(id(layer), {}).items():
                weight[row], bias[row] = 0.0, value
            # Through the run's dtype, so that the values in the spec are the values used.
            layer["weight"] = weight.astype(spec.dtype).tolist()
            layer["bias"] = bias.astype(spec.dtype).tolist()
            layer.pop("init", None)
        return manual.parse_spec(raw)


LossKink = tuple[int, float, list[dict[str, Any]]]  # (output column, value, trailing layers)


@st.composite
def edged_specs(draw: st.DrawFn, spec: Spec, activations: Collection[str],
                layer: Callable[[str], st.SearchStrategy[dict[str, Any]]],
                aim: str | None = None, prefer: Collection[str] = ()
                ) -> tuple[Spec, tuple[str, ...], LossKink | None]:
    """Apply a drawn subset of the structural edge classes to a chain ``spec``.

    ``activations`` is the pool the spec was drawn from (an inserted kinked activation comes
    from it) and ``layer(name)`` draws an activation layer with options. Returns the new
    spec, the classes applied, and for ``loss_kink`` the output column whose target must
    equal what the trailing layers make of the given value (:func:`loss_kink_target`).
    ``aim`` names a class to apply for sure when it applies; a kink goes to an activation
    of ``prefer`` (the ops a focused search names) when one of them has kinks.
    """
    raw = spec.to_dict()
    plan = _Plan(raw["layers"], spec.input_shape[0])
    dtype, loss = spec.dtype, spec.loss.type
    kinked = [a for a in sorted(activations) if _kinked(a, ACTIVATIONS[a].defaults())]
    kinked = [a for a in kinked if a in prefer] or kinked
    info = loss_info(LOSSES[loss])
    # A loss on probabilities (bce) saturates behind its adapter (a sigmoid), added if need be.
    on_probabilities = info.needs == "probabilities"
    loss_kinked = info.kinked_by is not None  # a kink where the output equals the target
    applicable = [name for name, ok in (
        ("kink_beyond_input", bool(kinked) or bool(_kink_sites(plan.layers)) or loss_kinked),
        ("near_overflow", _logit_consumer(plan.layers, loss) is not None),
        ("saturated", on_probabilities or _saturating_input(plan.layers, loss) is not None),
        ("extreme_weights", True)) if ok]
    # One applicable class for sure (a fair pick), each other applicable one at 1/2; every
    # one when focused (a focused search draws fewer edge cases, each with all it can have).
    first = aim if aim in applicable else applicable[draw(roll(len(applicable)))]
    chosen = {name for name in applicable
              if name == first or bool(prefer) or draw(roll(2)) == 1}
    applied: list[str] = []
    kinks = "kink_beyond_input" in chosen
    if kinks and (not loss_kinked or draw(roll(2))) and _put_on_kink(draw, plan, kinked, layer):
        applied.append("kink_beyond_input")
    consumer = _logit_consumer(plan.layers, loss)
    if consumer is not None and "near_overflow" in chosen:
        linear = plan.linear_before(consumer if consumer >= 0 else len(plan.layers))
        shift = draw(st.sampled_from(OVERFLOW_SHIFT[dtype]))
        plan.shift[id(linear)] = plan.shift.get(id(linear), 0.0) + shift
        applied.append("near_overflow")
    if "saturated" in chosen and _saturate(draw, plan, loss, dtype):
        applied.append("saturated")
    if "extreme_weights" in chosen:
        linear = draw(st.sampled_from(plan.linears()))
        plan.scale[id(linear)] = draw(st.sampled_from(EXTREME_SCALE[dtype]))
        applied.append("extreme_weights")
    kink: LossKink | None = None
    if kinks and info.kinked_by is not None:
        raw["loss"].update(info.kinked_by)  # smooth_l1's kink at 0 exists at beta 0 only
        kink = _loss_kink(draw, plan)
        applied += [name for name in ("kink_beyond_input", "loss_kink") if name not in applied]
    return plan.apply(raw), tuple(applied), kink


def _put_on_kink(draw: st.DrawFn, plan: _Plan, kinked: list[str],
                 layer: Callable[[str], st.SearchStrategy[dict[str, Any]]]) -> bool:
    """Make one pre-activation of a kinked activation exactly its kink (a zero weight row
    whose bias is the kink point): an existing site, or a kinked activation inserted after a
    random linear layer. False when no site could be made."""
    sites = [site for site in _kink_sites(plan.layers) if site["type"] in kinked]
    if not sites or draw(roll(2)):  # else a kinked activation after a random linear
        new = draw(st.sampled_from(kinked).flatmap(layer)) if kinked else {}
        if new and _kinked(new["type"], new):
            after = plan.index(draw(st.sampled_from(plan.linears())))
            plan.layers.insert(after + 1, new)
            sites = [new]
    if not sites:
        return False
    site = draw(st.sampled_from(sites))
    linear = plan.layers[plan.index(site) - 1]
    point = draw(st.sampled_from(sorted(_kinked(site["type"], site))))
    row = draw(st.integers(0, linear["out_features"] - 1))
    plan.rows.setdefault(id(linear), {})[row] = point
    return True


def _saturate(draw: st.DrawFn, plan: _Plan, loss: str, dtype: str) -> bool:
    """Shift the logits that feed a saturating op (bce's adapter sigmoid, added if need be) by
    a saturating size with random signs. False when nothing saturates."""
    info = loss_info(LOSSES[loss])
    if info.needs == "probabilities" and plan.layers[-1]["type"] != info.adapter:
        plan.layers.append({"type": info.adapter})  # after any [0, 1] ender: still valid
    at = _saturating_input(plan.layers, loss)
    if at is None:
        return False
    linear = plan.linear_before(at if at >= 0 else len(plan.layers))
    size = draw(st.sampled_from(SATURATING_LOGITS[dtype]))
    signs = draw(st.lists(st.sampled_from((-1.0, 1.0)), min_size=linear["out_features"],
                          max_size=linear["out_features"]))
    plan.shift[id(linear)] = plan.shift.get(id(linear), 0.0) + size * np.asarray(signs)
    return True


def _loss_kink(draw: st.DrawFn, plan: _Plan) -> LossKink:
    """The output column (of the last linear layer that only elementwise layers follow) whose
    target must equal what those trailing layers make of its exact value."""
    last = plan.linears()[-1]
    if any(ACTIVATIONS[t["type"]].structure != "elementwise"
           for t in plan.layers[plan.index(last) + 1:]):  # softmax mixes columns
        last = plan.linear_before(len(plan.layers))
    trailing = plan.layers[plan.index(last) + 1:]
    row = draw(st.integers(0, last["out_features"] - 1))
    value = plan.rows.setdefault(id(last), {}).setdefault(row, 0.0)
    return row, value, trailing


def _kink_sites(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Kinked activations right after a linear layer."""
    return [layer for before, layer in itertools.pairwise(layers)
            if before["type"] == "linear" and _kinked(layer["type"], layer)]


def _shift_invariant(name: str) -> bool:
    op = OPS.get(name)
    return op is not None and op.domain.shift_invariant


def _logit_consumer(layers: list[dict[str, Any]], loss: str) -> int | None:
    """Where shift-invariant logits are consumed (:attr:`Domain.shift_invariant`): a softmax
    layer's index, -1 for a shift-invariant loss (cross-entropy) on the output, ``None`` when
    neither."""
    if _shift_invariant(loss) and not _shift_invariant(layers[-1]["type"]):
        return -1
    found = [i for i, layer in enumerate(layers) if _shift_invariant(layer["type"])]
    return found[-1] if found else None


def _saturating_input(layers: list[dict[str, Any]], loss: str) -> int | None:
    """Where probabilities saturate: the adapter (sigmoid) ending the net of a loss on
    probabilities (``bce``; its index), -1 for a loss that applies a squashing activation
    itself (``bce_with_logits``: the output's logits), the softmax behind a log-likelihood
    loss (``cross_entropy``, ``nll``, ``kl_div``: as :func:`_logit_consumer`), else None."""
    info = loss_info(LOSSES[loss])
    if info.inner and not _shift_invariant(info.inner):
        return -1
    if info.needs == "probabilities":
        return len(layers) - 1 if layers[-1]["type"] == info.adapter else None
    log_likelihood = info.needs == "log-probabilities" or _shift_invariant(info.inner)
    return _logit_consumer(layers, loss) if log_likelihood else None


def loss_kink_target(y: np.ndarray, kink: LossKink, dtype: str) -> np.ndarray:
    """``y`` with column ``kink[0]`` set to the output the zero row gives (value, then the
    trailing activations, in the manual engine: exact for the usual f(0) of 0 or 1/2)."""
    row, value, trailing = kink
    column = np.full((len(y), 1), value, dtype=dtype)
    with np.errstate(all="ignore"):
        for layer in trailing:
            options = {k: v for k, v in layer.items() if k != "type"}
            column = OPS[layer["type"]].forward(column, **options)[0]
    out = y.copy()
    out[:, row] = column[:, 0]
    return out


@st.composite
def edge_targets(draw: st.DrawFn, y: np.ndarray, kind: str, options: Mapping[str, Any],
                 aim: str | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Soft-target rows that do not sum to 1 and/or hold exact zeros (drawn, at least one).

    Log-targets (``kl_div`` with ``log_target``) are only unnormalised: a zero probability
    is ``log 0 = -inf`` there, where PyTorch's loss is NaN.
    """
    if kind not in ("class_probability", "distribution"):
        return y, ()
    logs = kind == "distribution" and bool(options.get("log_target", False))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    p = np.exp(y.astype(np.float64)) if logs else y.astype(np.float64)
    choices = [("unnormalised_target",), ("zero_target",), TARGET_EDGES]
    chosen = {"unnormalised_target"} if logs else set(choices[draw(roll(3))]) | (
        {aim} if aim in TARGET_EDGES else set())
    if "zero_target" in chosen:  # about 40% zeros; each row keeps its largest entry
        zero = rng.random(p.shape) < 0.4
        zero[np.arange(len(p)), np.argmax(p, axis=-1)] = False
        p = np.where(zero, 0.0, p)
        p = p / p.sum(axis=-1, keepdims=True)  # still rows of probabilities
    if "unnormalised_target" in chosen:  # each row scaled: sums from 1/4 to 3, entries <= 1
        factor = rng.uniform(0.25, 3.0, size=(len(p), 1))
        p = p * np.minimum(factor, 1 / p.max(axis=-1, keepdims=True))
    out = (np.log(p) if logs else p).astype(y.dtype)
    # Named by what the rows are (one class keeps its only entry; a factor may be near 1).
    drawn = np.exp(out.astype(np.float64)) if logs else out.astype(np.float64)
    present = {"zero_target": bool(np.any(drawn == 0)),
               "unnormalised_target": not np.allclose(drawn.sum(axis=-1), 1, atol=1e-3)}
    return out, tuple(name for name in TARGET_EDGES if present[name])
