"""Each fact an op's registry entry states, checked against PyTorch or independent math.

These facts were once kept in name-keyed tables outside the registry (issue 21); the
strategies, the gradient check, the target validation and the edge fuzzer now read them from
the entries. Each test fails when an entry states its fact wrongly, or leaves it out.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch

import manual
from manual.registry import (
    ACTIVATIONS,
    INPUT_KINDS,
    LOSSES,
    OPS,
    OpInfo,
    class_losses,
    hint,
    loss_info,
    probability_losses,
)
from reference.core import sampling
from reference.core.engine import torch_callable
from reference.training.lockstep import accuracy

SHAPE = (4, 5)


def _inputs(op: OpInfo, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """An input inside the op's domain and, for a loss, a target of its first kind."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(*op.domain.inputs, size=SHAPE)
    target = None if op.loss is None else sampling.target(op.targets[0], SHAPE, rng,
                                                          "float64", op.defaults())
    return x, target


def _call(op: OpInfo, x: torch.Tensor, target: np.ndarray | None, **options: Any
          ) -> torch.Tensor:
    args = () if target is None else (torch.from_numpy(target),)
    return torch_callable(op)(x, *args, **options)


# -- Domain.shift_invariant ------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(OPS))
def test_shift_invariance_is_declared_exactly_where_pytorch_has_it(name: str) -> None:
    """f(x + c) == f(x) for a constant c per row, in PyTorch, iff the entry says so."""
    op = OPS[name]
    x, target = _inputs(op)
    c = np.random.default_rng(1).uniform(0.005, 0.01, size=(SHAPE[0], 1))
    with torch.no_grad():
        plain = _call(op, torch.from_numpy(x), target)
        shifted = _call(op, torch.from_numpy(x + c), target)
    assert torch.allclose(plain, shifted, rtol=1e-12, atol=1e-13) == op.domain.shift_invariant


# -- Calculus.derivative ---------------------------------------------------------------------

@pytest.mark.parametrize("name", [n for n, op in ACTIVATIONS.items() if op.calculus.derivative])
def test_a_derivative_written_in_the_output_is_pytorchs(name: str) -> None:
    op = ACTIVATIONS[name]
    x, _ = _inputs(op)
    tx = torch.tensor(x, requires_grad=True)
    y = _call(op, tx, None)
    (grad,) = torch.autograd.grad(y.sum(), tx)
    _, derivative = op.calculus.derivative or ("", None)
    assert derivative is not None
    np.testing.assert_allclose(derivative(y.detach().numpy()), grad.numpy(), rtol=1e-12)


# -- Calculus.complex_forward ----------------------------------------------------------------

@pytest.mark.parametrize("name", [n for n, op in OPS.items() if op.calculus.complex_forward])
def test_a_complex_forward_differentiates_as_pytorch(name: str) -> None:
    """The complex step's directional derivative, Im f(x + ihv) / h, is PyTorch's gradient
    along v (for a loss: of its per-element terms weighted by w)."""
    op = OPS[name]
    form = op.calculus.complex_forward
    assert form is not None
    rng = np.random.default_rng(2)
    x, target = _inputs(op)
    v = rng.standard_normal(SHAPE)
    h = 1e-30
    options = {k: val for k, val in op.defaults().items()
               if k not in ("reduction", "weight", "pos_weight", "ignore_index")}
    z = x + 1j * h * v
    tx = torch.tensor(x, requires_grad=True)
    if target is None:
        values = form(z, **options)
        reference = _call(op, tx, None, **options)
    else:
        values = form(z, target, **options)
        reference = _call(op, tx, target, **options, reduction="none")
    w = rng.standard_normal(np.shape(values))
    (grad,) = torch.autograd.grad((reference * torch.from_numpy(w)).sum(), tx)
    np.testing.assert_allclose(np.sum(w * values).imag / h, float((grad * torch.from_numpy(v))
                                                                  .sum()), rtol=1e-10)


# -- Oracle.quiet and Oracle.exact -----------------------------------------------------------

@pytest.mark.parametrize("name", sorted(OPS))
def test_the_oracle_names_every_warning_pytorch_gives(name: str) -> None:
    op = OPS[name]
    x, target = _inputs(op)
    function = torch_callable(OpInfo(op.name, op.forward, op.backward, op.torch,
                                     oracle=type(op.oracle)(kwargs=op.oracle.kwargs)))
    messages = []
    for variant in op.variants:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            args = () if target is None else (torch.from_numpy(target),)
            function(torch.from_numpy(x), *args, **variant)
        messages += [str(w.message) for w in caught]
    if op.oracle.quiet:
        assert messages and all(m.startswith(op.oracle.quiet) for m in messages)
    else:
        assert not messages
    with warnings.catch_warnings(record=True) as caught:  # and the harness's call is quiet
        warnings.simplefilter("always")
        for variant in op.variants:
            _call(op, torch.from_numpy(x), target, **variant)
    assert not caught


@pytest.mark.parametrize(("name", "option"),
                         [(n, o) for n, op in OPS.items() for o in op.oracle.exact])
def test_oracle_exact_values_are_exact_in_pytorch(name: str, option: str) -> None:
    """At the values the fuzzer is restricted to, PyTorch's float64 backward is the manual
    engine's to rounding (elsewhere it is off by ~1e-8: the canary in test_fuzz_strategies)."""
    op = OPS[name]
    x = np.linspace(-3, 3, 41)
    for value in op.oracle.exact[option]:
        tx = torch.tensor(x, requires_grad=True)
        _call(op, tx, None, **{option: value}).sum().backward()
        _, cache = op.forward(x, **{option: value})
        mine = op.backward(np.ones_like(x), cache)
        assert tx.grad is not None
        np.testing.assert_allclose(mine, tx.grad.numpy(), rtol=1e-15, atol=0)


# -- LossInfo --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [n for n, op in LOSSES.items() if loss_info(op).adapter])
def test_an_adapter_makes_what_the_loss_needs(name: str) -> None:
    info = loss_info(LOSSES[name])
    low, high = INPUT_KINDS[info.needs]
    logits = torch.linspace(-40, 40, 81, dtype=torch.float64).reshape(9, 9)
    made = _call(ACTIVATIONS[info.adapter], logits, None)
    assert bool(made.min() >= low) and bool(made.max() <= high)


def test_hints_name_the_adapter_and_the_loss_that_applies_it() -> None:
    assert {name: hint(op) for name, op in LOSSES.items() if hint(op)} == {
        "bce": "end with 'sigmoid' or use 'bce_with_logits'",
        "nll": "end with 'log_softmax' or use 'cross_entropy'",
        "kl_div": "end with 'log_softmax'",
    }


@pytest.mark.parametrize("name", [n for n, op in LOSSES.items() if loss_info(op).inner])
def test_a_loss_with_an_inner_activation_is_the_plain_loss_of_it(name: str) -> None:
    """bce_with_logits(x) = bce(sigmoid(x)), cross_entropy(x) = nll(log_softmax(x)) in
    PyTorch: the plain loss is the one whose adapter is the inner activation."""
    op = LOSSES[name]
    inner = loss_info(op).inner
    plain = [p for p in LOSSES.values() if loss_info(p).adapter == inner
             and set(p.targets) & set(op.targets)]
    assert len(plain) == 1
    x, target = _inputs(op)
    kind = next(k for k in op.targets if k in plain[0].targets)
    target = sampling.target(kind, SHAPE, np.random.default_rng(3), "float64", {})
    tx = torch.from_numpy(x)
    whole = _call(op, tx, target, reduction="none")
    parts = _call(plain[0], _call(ACTIVATIONS[inner], tx, None), target, reduction="none")
    torch.testing.assert_close(whole, parts, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", [n for n, op in LOSSES.items() if "real" in op.targets])
def test_a_kink_at_the_target_is_declared_exactly_where_pytorchs_gradient_jumps(name: str
                                                                                ) -> None:
    op = LOSSES[name]
    info = loss_info(op)
    options = {**(info.kinked_by or {}), "reduction": "sum"}
    target = np.linspace(-1, 1, 6)
    one_sided = []
    for side in (1.0, -1.0):
        x = torch.tensor(target + side * 1e-7, requires_grad=True)
        _call(op, x, target, **options).backward()
        assert x.grad is not None
        one_sided.append(x.grad.numpy())
    jumps = bool(np.all(np.abs(one_sided[0] - one_sided[1]) > 0.5))
    assert jumps == (info.kinked_by is not None)
    if info.kinked_by is not None:  # and the entry's kinks say so under those options
        assert 0.0 in op.domain.kinks(options)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_target_kinds_are_the_ones_pytorch_accepts(name: str) -> None:
    """PyTorch takes class indices (int64) exactly from the losses that declare them, and of
    those, class probabilities (floats of the input's shape) exactly from the ones declaring
    those; a distribution with a negative entry (and no log_target) makes PyTorch's loss NaN,
    which is why the data check refuses one."""
    op = LOSSES[name]
    x, _ = _inputs(op)
    rng = np.random.default_rng(4)

    def accepted(kind: str) -> bool:
        target = sampling.target(kind, SHAPE, rng, "float64", {})
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a regression loss warns of broadcasting
                _call(op, torch.from_numpy(x), target)
        except (RuntimeError, ValueError):
            return False
        return True

    assert accepted("class_index") == ("class_index" in op.targets)
    if "class_index" in op.targets:
        assert accepted("class_probability") == ("class_probability" in op.targets)
    if "distribution" in op.targets:
        target = sampling.target("distribution", SHAPE, rng, "float64", {})
        target[0, 0] = -0.1
        assert torch.isnan(_call(op, torch.from_numpy(x), target, reduction="sum"))


def test_binary_and_class_losses_and_their_decision_points() -> None:
    assert class_losses() == ("cross_entropy", "nll")
    assert probability_losses() == ("bce", "bce_with_logits")

    def spec(loss: str, last: list[dict[str, Any]]) -> manual.Spec:
        return manual.parse_spec({"input_shape": [2], "layers": [
            {"type": "linear", "out_features": 1}, *last], "loss": {"type": loss}})

    labels = np.array([1, 0, 1])
    # bce reads probabilities (class 1 above 1/2), bce_with_logits logits (above 0).
    assert accuracy(spec("bce", [{"type": "sigmoid"}]), np.array([[0.6], [0.4], [0.51]]),
                    labels) == 1.0
    assert accuracy(spec("bce_with_logits", []), np.array([[0.2], [-0.1], [0.01]]),
                    labels) == 1.0
