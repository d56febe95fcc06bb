r"""Adding an elementwise activation is one registry entry plus its pair (issue 21).

``tanhshrink`` (PyTorch has it, the engine does not) is registered here in a test-local
copy of the registry: its pair, and an :class:`~manual.registry.OpInfo` naming PyTorch's
function and its analytic form. Nothing else is written for it, yet conformance (alone and in
every activation x loss network), the fuzz strategies and the gradient check (the rank-one
fast path and the complex step) all run it: they read the entry, never a list of names.

.. math::
    f(x) = x - \tanh x, \qquad f'(x) = \tanh^2 x
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from manual.gradcheck import check_network, check_op
from manual.layers import LAYERS, from_op
from manual.registry import ACTIVATIONS, OPS, Calculus, OpInfo
from reference.conformance.matrix import network_cases, network_data, op_cases
from reference.conformance.protocols import CHECKS, check_single
from reference.core.compare import compare_op
from reference.fuzz import strategies as hst


def tanhshrink_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.tanh(x)
    return x - t, t


def tanhshrink_backward(dy: np.ndarray, t: np.ndarray) -> np.ndarray:
    return dy * t * t


TANHSHRINK = OpInfo(name="tanhshrink", forward=tanhshrink_forward,
                    backward=tanhshrink_backward, torch="torch.nn.functional.tanhshrink",
                    calculus=Calculus(complex_forward=lambda z: z - np.tanh(z)))


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The entry in the registries (for this test only): the op and its layer."""
    monkeypatch.setitem(ACTIVATIONS, "tanhshrink", TANHSHRINK)  # type: ignore[index]
    monkeypatch.setitem(OPS, "tanhshrink", TANHSHRINK)  # type: ignore[index]
    monkeypatch.setitem(LAYERS, "tanhshrink", from_op(TANHSHRINK))
    yield


def test_conformance_runs_the_new_activation_alone_and_in_every_network() -> None:
    alone = [case for case in op_cases() if case.op.name == "tanhshrink"]
    assert [case.dtype for case in alone] == ["float32", "float64"]
    for case in alone:
        record = compare_op(case.op, case.dtype, case.options)
        assert record.passed, record.describe()
    networks = [case for case in network_cases() if case.activation == "tanhshrink"]
    assert len(networks) == 2 * 9  # x every loss x both dtypes
    for case in networks:
        spec = case.spec()
        record = check_single(spec, network_data(spec))
        assert record.passed, record.describe()


@settings(max_examples=10)
@given(data=st.data())
def test_the_fuzz_strategies_draw_it_and_every_protocol_passes(data: st.DataObject) -> None:
    case = data.draw(hst.fuzz_cases(include=("tanhshrink",), graphs_too=False))
    assert "tanhshrink" in [node.type for node in case.spec.nodes]
    record = CHECKS[case.protocol](case.spec, case.data)
    assert record.passed, record.describe()


@pytest.mark.parametrize("mode", ["full", "complex"])
def test_the_gradient_check_takes_it_on_the_fast_path_and_by_the_complex_step(mode: str
                                                                              ) -> None:
    case = next(c for c in network_cases(("float64",)) if c.activation == "tanhshrink"
                and c.loss == "mse")
    spec = case.spec()
    record = check_network(spec, network_data(spec), mode)
    assert record.passed, record.describe()
    x = np.random.default_rng(0).uniform(-4, 4, (5, 3))
    assert check_op(TANHSHRINK, x, mode=mode).passed


def test_a_wrong_backward_of_the_new_activation_is_caught(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """The checks above are not vacuous: the same entry with f' = tanh x fails them."""
    def wrong(dy: np.ndarray, t: np.ndarray) -> np.ndarray:
        return dy * t

    broken: Any = OpInfo(name="tanhshrink", forward=tanhshrink_forward, backward=wrong,
                         torch="torch.nn.functional.tanhshrink")
    monkeypatch.setitem(ACTIVATIONS, "tanhshrink", broken)  # type: ignore[index]
    assert not compare_op(broken, "float64").passed
    case = next(c for c in network_cases(("float64",)) if c.activation == "tanhshrink")
    spec = case.spec()
    assert not check_network(spec, network_data(spec), "full").passed
