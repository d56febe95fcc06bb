"""The conformance matrix, driven by the registry: every op alone and in networks, both dtypes."""

from __future__ import annotations

import pytest

from reference.conformance.matrix import (
    GRAPHS,
    graph_data,
    graph_spec,
    network_cases,
    network_data,
    op_cases,
)
from reference.core.compare import compare_network, compare_op

OP_CASES = list(op_cases())
NETWORK_CASES = list(network_cases())


@pytest.mark.parametrize("case", OP_CASES, ids=[c.id for c in OP_CASES])
def test_op_alone_matches_torch(case, backprop_record) -> None:
    record = compare_op(case.op, case.dtype, case.options, seed=7, target_kind=case.target_kind)
    backprop_record(record)
    assert record.passed, record.describe()


@pytest.mark.parametrize("case", NETWORK_CASES, ids=[c.id for c in NETWORK_CASES])
def test_two_hidden_layer_network_matches_torch(case, backprop_record) -> None:
    spec = case.spec(seed=3)
    record = compare_network(spec, network_data(spec), keep_values=False)
    backprop_record(record)
    assert record.passed, record.describe()
    assert record.first_divergence is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_graph_matches_torch(name: str, dtype: str, backprop_record) -> None:
    """A residual block, two branches concatenated, a value read twice: every node's output,
    gradient and edge gradient, every parameter gradient."""
    spec = graph_spec(name, dtype, seed=3)
    record = compare_network(spec, graph_data(spec), keep_values=False)
    backprop_record(record)
    assert record.passed, record.describe()
    assert any(t.stage == "edge" for t in record.tensors)


def test_matrix_covers_every_registered_op_in_both_dtypes() -> None:
    from manual.registry import ACTIVATIONS, LOSSES

    alone = {(c.op.name, c.dtype) for c in OP_CASES}
    in_networks = {(c.activation, c.dtype) for c in NETWORK_CASES} | {
        (c.loss, c.dtype) for c in NETWORK_CASES}
    every = {(name, dtype) for name in [*ACTIVATIONS, *LOSSES] for dtype in ("float32", "float64")}
    assert alone == every
    assert in_networks == every


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_loss_variant_runs_in_a_network(dtype: str) -> None:
    """Reductions and options of each loss (not just the defaults) inside a network."""
    from manual.registry import LOSSES
    from reference.conformance.matrix import network_spec

    for loss in LOSSES.values():
        for options in loss.variants:
            for kind in loss.targets:
                spec = network_spec("tanh", loss.name, dtype, loss_options=options, seed=11)
                record = compare_network(spec, network_data(spec, target_kind=kind),
                                         keep_values=False)
                assert record.passed, record.describe()
