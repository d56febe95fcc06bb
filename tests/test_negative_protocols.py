"""Negative tests of the protocols, the zoo's kill machinery and the optimizer lockstep.

Each protocol beyond the single pass is the only one that sees its mistake: the single pass
passes under the mutant, the protocol fails (so dropping the protocol lets the mutant live).
A mutant that changes nothing is reported as surviving, never as killed. The optimizer
comparison refuses a step off by a relative 1e-8 in float64 (its tolerance is 1e-10, not the
default 1e-7), a missing or extra state buffer, and a buffer of the right values in a
broadcasting shape. A user's layer off by a relative 1e-6 fails ``check_layer`` in float64.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch

from manual import registry
from manual.optim.registry import OPTIMIZERS
from manual.registry import DEFAULT_TOLERANCES
from reference.checks import check_layer
from reference.conformance.matrix import graph_data, graph_spec, network_data, network_spec
from reference.conformance.protocols import first_failure, op_kinks, op_no_mutation, run_protocol
from reference.core.compare import compare_op
from reference.training.optimizers import compare_optimizer, compare_state
from reference.zoo import core as zoo
from reference.zoo import kill as zoo_kill


@pytest.mark.parametrize(("mutant", "protocol"), [
    ("grad_overwritten", "accumulate"), ("stale_cache", "stale_cache")])
def test_each_protocol_alone_catches_what_the_single_pass_misses(mutant: str,
                                                                 protocol: str) -> None:
    activation = "relu" if "relu" in mutant else "tanh"
    spec = network_spec(activation, "mse", "float64")
    data = network_data(spec)
    with zoo.ZOO[mutant].inject():
        assert run_protocol("single", spec, data).passed, "the single pass sees it after all"
        record = run_protocol(protocol, spec, data)
    assert not record.passed
    assert record.options["check"] == protocol


def test_the_accumulate_protocol_sees_a_fan_in_assigned_on_a_graph() -> None:
    spec = graph_spec("twice", "float64")
    with zoo.ZOO["fan_in_assigned"].inject():
        assert not run_protocol("single", spec, graph_data(spec)).passed


def test_kinks_alone_catch_a_convention_at_the_kink() -> None:
    """Random inputs never land on relu's 0; the kink check puts them there."""
    with zoo.ZOO["relu_grad_at_zero"].inject():
        assert compare_op("relu", "float64").passed
        record = op_kinks("relu", "float64")
    assert not record.passed and record.first_divergence == "backward: input"


@pytest.mark.parametrize(("mutant", "op", "where"), [
    ("relu_mutates_upstream", "relu", "unchanged: dy"), ("tanh_mutates_input", "tanh",
                                                          "unchanged: x")])
def test_op_no_mutation_alone_refuses_an_array_written_in_place(mutant: str, op: str,
                                                                where: str) -> None:
    """compare_op hands each op copies, so only the no-mutation check sees the write."""
    with zoo.ZOO[mutant].inject():
        assert compare_op(op, "float64").passed
        record = op_no_mutation(op, "float64")
    assert not record.passed and record.first_divergence == where
    assert op_no_mutation(op, "float64").passed


# ---- the kill machinery ------------------------------------------------------------------

NOTHING = zoo.Mutant("nothing", "tanh replaced by itself",
                     lambda: zoo._op("tanh", backward=registry.OPS["tanh"].backward), ("tanh",))


def test_a_mutant_that_changes_nothing_survives_and_says_so() -> None:
    kill = zoo_kill.kill(NOTHING, max_examples=5, shrink=False)
    assert kill.conformance is None and not kill.fuzz_killed and not kill.killed
    table = zoo_kill.kill_table([dataclasses.asdict(kill)])
    assert "SURVIVED" in table[1] and table[1].count("SURVIVED") == 2


def test_a_crash_of_the_engine_is_a_failed_check() -> None:
    def crash(dy: Any, cache: Any) -> Any:
        raise FloatingPointError("boom")

    mutant = zoo.Mutant("crash", "tanh backward raises", lambda: zoo._op("tanh", backward=crash))
    with mutant.inject():
        found = first_failure(("float64",))
    assert found is not None and found[1] == "raised FloatingPointError: boom"


# ---- the optimizer lockstep --------------------------------------------------------------

def _nudged(name: str, relative: float) -> Any:
    info = OPTIMIZERS[name]

    def step(param: Any, grad: Any, state: Any, **options: Any) -> Any:
        new, new_state = info.step(param, grad, state, **options)
        return new + relative * np.abs(new), new_state

    return dataclasses.replace(info, step=step)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_float64_step_off_by_a_relative_1e_minus_8_is_refused(name: str) -> None:
    """1e-8 hides inside the default float64 tolerance (1e-7): the override must be tighter."""
    assert OPTIMIZERS[name].tolerance("float64").rtol <= 1e-9
    assert OPTIMIZERS[name].tolerance("float64").atol <= 1e-11
    assert compare_optimizer(name, steps=2).passed
    record = compare_optimizer(_nudged(name, 1e-8), steps=2)
    assert not record.passed and record.first_divergence == "step 1: layers.0.weight"


def test_a_float32_step_off_by_a_relative_1e_minus_4_is_refused() -> None:
    assert OPTIMIZERS["adam"].tolerance("float32") == DEFAULT_TOLERANCES["float32"]
    record = compare_optimizer(_nudged("adam", 1e-4), dtype="float32", steps=1)
    assert not record.passed


def test_compare_state_refuses_a_missing_an_extra_and_a_broadcasting_buffer() -> None:
    info = OPTIMIZERS["sgd"]
    tolerance = info.tolerance("float64")
    buffer = np.array([0.5, -1.0, 2.0])
    theirs = {"momentum_buffer": torch.from_numpy(buffer.copy())}
    assert all(t.passed for t in compare_state("s", info, {"momentum_buffer": buffer},
                                               theirs, tolerance))
    missing = compare_state("s", info, {}, theirs, tolerance)
    assert [(t.passed, t.problem) for t in missing] == [(False, "missing in the manual engine")]
    extra = compare_state("s", info, {"momentum_buffer": buffer, "velocity": buffer}, theirs,
                          tolerance)
    assert [(t.name, t.passed) for t in extra] == [("s.momentum_buffer", True),
                                                   ("s.velocity", False)]
    assert extra[1].problem == "missing in the reference"
    column = compare_state("s", info, {"momentum_buffer": buffer[None, :]}, theirs, tolerance)
    assert not column[0].passed and column[0].problem.startswith("shape (1, 3)")


# ---- a user's own layer ------------------------------------------------------------------

def _affine_forward(x: Any, w: Any, b: Any) -> Any:
    return x @ w + b, (x, w)


def _affine_backward_off(relative: float) -> Any:
    def backward(dout: Any, cache: Any) -> Any:
        x, w = cache
        return dout @ w.T, (x.T @ dout) * (1 + relative), dout.sum(axis=0)
    return backward


@pytest.mark.parametrize(("relative", "failing"), [(1e-6, {"float64"}),
                                                   (1e-3, {"float32", "float64"})])
def test_check_layer_refuses_a_weight_gradient_off_by_a_small_factor(
        relative: float, failing: set[str]) -> None:
    result = check_layer(_affine_forward, _affine_backward_off(relative),
                         torch=lambda x, w, b: x @ w + b,
                         inputs={"x": (4, 3), "w": (3, 5), "b": (5,)}, special=False)
    assert not result.passed
    assert {r.dtype for r in result.records if not r.passed} == failing
    for record in result.records:
        if not record.passed:
            assert record.first_divergence == "backward: w"


# ---- whole runs: every tensor is judged, the lockstep training refuses a small drift -----

def test_a_tensor_missing_from_the_manual_run_fails() -> None:
    from reference.core.compare import compare_runs
    from reference.core.run import run_manual, run_torch

    spec = network_spec("tanh", "mse", "float64")
    data = network_data(spec)
    ref = run_torch(spec, data)
    mine = run_manual(spec, data, dloss=ref.dloss)
    assert all(t.passed for t in compare_runs(spec, mine, ref))
    del mine.param_grads["layers.2.bias"]
    mine.values.pop("layers.1")
    failed = {t.name: t.problem for t in compare_runs(spec, mine, ref) if not t.passed}
    assert set(failed) == {"backward: layers.2.bias", "forward: layers.1"}
    assert all(problem.startswith("shape () != reference") for problem in failed.values())


def test_lockstep_training_refuses_a_step_off_by_a_relative_1e_minus_6() -> None:
    """Training holds float64 to the default 1e-7 (backprop's own rounding accumulates over
    steps); a drift of 1e-6 per step is refused at the first step."""
    from reference.conformance.matrix import mlp_spec
    from reference.training.datasets import load_dataset
    from reference.training.lockstep import train_lockstep

    data = load_dataset("iris")
    spec = mlp_spec([4, 8, 3], "tanh", "cross_entropy", "float64", seed=1)
    assert train_lockstep(spec, data, "adam", {"lr": 1e-2}, steps=3).passed
    record = train_lockstep(spec, data, _nudged("adam", 1e-6), {"lr": 1e-2}, steps=3)
    assert not record.passed and record.first_divergence_step == 1
