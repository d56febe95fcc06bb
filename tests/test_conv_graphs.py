"""The composed-conv-net strategy (reference.fuzz.conv): what it draws is valid, shape
consistent and passes the differential comparison under every protocol; fuzz_cases draws it
(one case in eight, and focused on a conv or pool layer); and it kills conv zoo mutants by
itself, shrinking to a small net."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from manual.spec import Spec
from reference.conformance.protocols import PROTOCOLS
from reference.fuzz.campaign import fails, run_case
from reference.fuzz.conv import CONV_NET_LAYERS, conv_nets
from reference.fuzz.strategies import FuzzCase, fuzz_cases
from reference.zoo.conv import CONV_MUTANTS

MUTANTS = {m.name: m for m in CONV_MUTANTS}
FIND = settings(max_examples=60, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck), phases=(Phase.generate, Phase.shrink))


def _types(spec: Spec) -> list[str]:
    return [node.type for node in spec.nodes]


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(conv_nets(), st.sampled_from(sorted(PROTOCOLS)))
def test_drawn_conv_nets_are_valid_and_pass(net: Any, protocol: str) -> None:
    spec, data = net
    types = _types(spec)
    assert types[-2:] == ["flatten", "linear"] and types[0] in CONV_NET_LAYERS
    assert data.x.shape[1:] == spec.input_shape
    outcome = run_case(FuzzCase(spec, data, protocol))
    assert not outcome.failed, (spec.to_json(), outcome.where, outcome.error)


@given(conv_nets(include=("max_pool1d",)))
def test_include_fixes_the_dimension_and_holds_the_layer(net: Any) -> None:
    types = _types(net[0])
    assert "max_pool1d" in types and "conv2d" not in types


def test_the_strategy_reaches_residual_blocks_groups_and_every_pool() -> None:
    def residual(net: Any) -> bool:
        spec = net[0]
        adds = [n for n in spec.nodes if n.type == "add"]
        return any(n.options.get("kernel_size") == 1 for n in spec.nodes) and bool(adds)

    assert find(conv_nets(), residual, settings=FIND)
    assert find(conv_nets(), lambda n: any(node.options.get("groups", 1) > 1
                                           for node in n[0].nodes), settings=FIND)
    for pool in ("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "avg_pool1d"):
        def holds(net: Any, pool: str = pool) -> bool:
            return pool in _types(net[0])

        assert find(conv_nets(), holds, settings=FIND)


def test_fuzz_cases_draws_conv_nets_unfocused_and_focused() -> None:
    def conv_net(case: FuzzCase) -> bool:
        types = _types(case.spec)
        return "flatten" in types and sum(t.startswith("conv") for t in types) >= 2

    # find stops at the first hit; the budget only bounds a miss (p = (7/8)^200 unfocused)
    wide = settings(FIND, max_examples=200)
    assert find(fuzz_cases(), conv_net, settings=wide)
    assert find(fuzz_cases(include=("avg_pool2d",)), conv_net, settings=wide)


def test_a_conv_zoo_mutant_is_killed_by_conv_nets_alone() -> None:
    """A stride ignored in backward: the shrunk net is one strided conv and its head."""
    mutant = MUTANTS["conv2d_stride_ignored_in_backward"]
    with mutant.inject():
        case = find(conv_nets(include=("conv2d",)).map(lambda n: FuzzCase(*n)), fails,
                    settings=FIND)
    strided = [n for n in case.spec.nodes if n.type == "conv2d" and n.options.get("stride")]
    assert strided and len(case.spec.nodes) <= 6, case.spec.to_json()


def test_a_max_pool_mutant_is_killed_by_conv_nets_alone() -> None:
    mutant = MUTANTS["max_pool2d_overlap_assign"]
    with mutant.inject():
        case = find(conv_nets(include=("max_pool2d",)).map(lambda n: FuzzCase(*n)), fails,
                    settings=FIND)
    assert "max_pool2d" in _types(case.spec)
