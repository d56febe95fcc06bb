"""manual.gradcheck and torch.autograd.gradcheck reach the same verdict on the same NumPy code.

torch's checker judges torch code, so each subject (a registered op alone, or a whole manual
network) is wrapped in a ``torch.autograd.Function`` whose forward and backward are the manual
engine's own: both checkers then judge the very same backward, correct or mutated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

import manual
from manual.gradcheck import check_network, check_op
from manual.layers import LAYERS
from manual.layers.core import linear_with
from manual.ops.linear import linear_backward
from manual.registry import OpInfo
from reference.conformance.matrix import OpCase, network_data, network_spec, op_cases
from reference.core import sampling
from reference.fuzz import strategies as hst

MUTATION = 1.1  # a backward that is 10% off: well inside what both checkers must see


def torch_wrapper(forward: Callable[..., Any], backward: Callable[..., Any]) -> Callable[..., Any]:
    """``forward(*arrays) -> (value, cache)`` and ``backward(dy, cache) -> tuple of grads``."""

    class Wrapped(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, *tensors: torch.Tensor) -> torch.Tensor:
            value, ctx.manual_cache = forward(*(t.detach().numpy() for t in tensors))
            return torch.as_tensor(np.array(value, dtype=np.float64))

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> Any:
            grads = backward(grad.detach().numpy().copy(), ctx.manual_cache)
            return tuple(torch.as_tensor(np.array(g, dtype=np.float64)) for g in grads)

    return Wrapped.apply


def torch_verdicts(fn: Callable[..., Any], inputs: list[np.ndarray]) -> dict[str, bool]:
    tensors = tuple(torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in inputs)
    return {f"torch {'fast' if fast else 'slow'}": torch.autograd.gradcheck(
        fn, tensors, raise_exception=False, fast_mode=fast) for fast in (False, True)}


def op_subject(case: OpCase, op: OpInfo) -> tuple[np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(11)
    x = sampling.op_input(op, (4, 3), rng, "float64")
    target = None
    if case.target_kind:
        target = sampling.target(case.target_kind, (4, 3), rng, "float64", case.options)
    return x, target


def op_verdicts(case: OpCase, op: OpInfo) -> dict[str, bool]:
    x, target = op_subject(case, op)
    options = {**op.defaults(), **case.options}
    if target is None:
        fn = torch_wrapper(lambda a: op.forward(a, **options),
                           lambda dy, c: (op.backward(dy, c),))
    else:
        fn = torch_wrapper(lambda a: op.forward(a, target, **options),
                           lambda dy, c: (op.backward(dy, c),))
    verdicts = torch_verdicts(fn, [x])
    for mode in ("full", "projection", "complex"):
        if mode == "complex" and op.calculus.complex_forward is None:
            continue
        verdicts[mode] = check_op(op, x, target=target, options=case.options, mode=mode).passed
    return verdicts


def mutated(op: OpInfo) -> OpInfo:
    return dataclasses.replace(op, backward=lambda dy, c: op.backward(dy, c) * MUTATION)


CASES = list(op_cases(("float64",)))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_registered_op_passes_both_checkers(case: OpCase) -> None:
    verdicts = op_verdicts(case, case.op)
    assert all(verdicts.values()), verdicts


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_registered_op_with_a_mutated_backward_fails_both_checkers(case: OpCase) -> None:
    verdicts = op_verdicts(case, mutated(case.op))
    assert not any(verdicts.values()), verdicts


def test_a_small_error_is_caught_here_and_missed_by_torch() -> None:
    """1e-5 relative is inside torch's rtol=1e-3 but far outside the 1e-7 band."""
    op = manual.registry.ACTIVATIONS["tanh"]
    slightly = dataclasses.replace(op, backward=lambda dy, c: op.backward(dy, c) * (1 + 1e-5))
    verdicts = op_verdicts(OpCase(op, "float64"), slightly)
    assert verdicts == {"torch slow": True, "torch fast": True, "full": False,
                        "projection": False, "complex": False}


# -- random small networks -------------------------------------------------------------------

ACTIVATION_NAMES = list(manual.registry.ACTIVATIONS)
LOSS_NAMES = list(manual.registry.LOSSES)


def random_network(seed: int) -> tuple[manual.Spec, manual.Data]:
    rng = np.random.default_rng([seed, 99])
    activation = ACTIVATION_NAMES[rng.integers(len(ACTIVATION_NAMES))]
    loss = LOSS_NAMES[rng.integers(len(LOSS_NAMES))]
    act_op, loss_op = manual.registry.ACTIVATIONS[activation], manual.registry.LOSSES[loss]
    spec = network_spec(
        activation, loss, "float64", seed=seed, width=int(rng.integers(2, 7)),
        features=int(rng.integers(1, 5)), classes=int(rng.integers(2, 5)),
        activation_options=act_op.variants[rng.integers(len(act_op.variants))],
        loss_options=loss_op.variants[rng.integers(len(loss_op.variants))],
    )
    return spec, network_data(spec, batch=int(rng.integers(1, 5)))


def network_verdicts(spec: manual.Spec, data: manual.Data) -> dict[str, bool]:
    params = manual.initial_parameters(spec)
    names = list(params)
    reduction = spec.loss.options.get("reduction", "mean")

    def forward(x: np.ndarray, *values: np.ndarray) -> Any:
        net = manual.build(spec, dict(zip(names, values, strict=True)))
        return net.loss(net.forward(x), data.y), net

    def backward(dloss: np.ndarray, net: Any) -> Any:
        net.zero_grad()
        net.backward(dloss if reduction == "none" else float(dloss))
        grads = net.named_grads()
        return (net.input_grad, *(grads[n] for n in names))

    verdicts = torch_verdicts(torch_wrapper(forward, backward), [data.x, *params.values()])
    for mode in ("full", "sparse", "projection"):
        verdicts[mode] = check_network(spec, data, mode).passed
    return verdicts


SEEDS = range(12)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_networks_pass_both_checkers(seed: int) -> None:
    spec, data = random_network(seed)
    verdicts = network_verdicts(spec, data)
    assert all(verdicts.values()), (spec.name, verdicts)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_networks_with_a_mutated_linear_backward_fail_both_checkers(
        monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    original = linear_backward

    def backward(dy: Any, cache: Any) -> Any:
        dx, dweight, dbias = original(dy, cache)
        return dx, dweight * MUTATION, dbias

    monkeypatch.setitem(LAYERS, "linear", linear_with(backward=backward))
    spec, data = random_network(seed)
    verdicts = network_verdicts(spec, data)
    assert not any(verdicts.values()), (spec.name, verdicts)


# -- fuzzed networks (reference.fuzz.strategies) ---------------------------------------------------


@pytest.mark.fuzz
@settings(suppress_health_check=[HealthCheck.too_slow])
@given(case=hst.fuzz_cases(dtypes=("float64",), max_depth=3, max_width=6, max_batch=4,
                           edges=False,  # saturated/extreme nets: finite differences break
                           protocols=("single",), graphs_too=False))
def test_fuzzed_networks_reach_torchs_verdict_wherever_no_kink_is_crossed(case: Any) -> None:
    """Correct code passes here always; torch agrees unless a perturbation crosses a kink,
    where its difference quotient is meaningless and only this checker says so."""
    verdicts = network_verdicts(case.spec, case.data)
    ours = check_network(case.spec, case.data, "full")
    assert verdicts["full"] and verdicts["sparse"] and verdicts["projection"], ours.describe()
    if not any(t.kinks_crossed for t in ours.tensors):
        assert verdicts["torch slow"] and verdicts["torch fast"], (case.spec.to_dict(), verdicts)
