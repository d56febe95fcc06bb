"""Torch modules reused across specs of one structure (``reference.core.mirror.lend``) leak nothing.

``run_torch`` without a ``net`` borrows its mirror from the thread's pool. Each test runs two
specs of the same structure with different parameters, state and data through the pool, in
both orders and back again, and holds every array of every run bit-identical to a run on a
fresh ``mirror.build``: a gradient, a running statistic, a batch counter or a training mode
left over from the previous case would show.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import manual
from manual.data import Data
from manual.layers.info import Signature
from manual.spec import Spec
from reference.conformance.layers import sample_case
from reference.conformance.matrix import mlp_spec, network_data
from reference.conformance.samples import layer_cases
from reference.core import mirror
from reference.core.compare import compare_network
from reference.core.records import dumps
from reference.core.run import Run, run_torch

Case = tuple[Spec, Data, dict[str, np.ndarray], dict[str, np.ndarray]]


def assert_same_run(got: Run, want: Run) -> None:
    for field in ("loss", "values", "grad_at", "param_grads", "state", "grad_in"):
        a, b = getattr(got, field), getattr(want, field)
        pairs = [(field, a, b)] if field == "loss" else [(f"{field}[{k}]", a.get(k), b[k])
                                                         for k in b]
        if field != "loss":
            assert set(a) == set(b), field
        for where, x, y in pairs:
            x, y = np.asarray(x), np.asarray(y)
            assert x.dtype == y.dtype and x.shape == y.shape, where
            assert np.array_equal(x, y, equal_nan=True), where
            assert np.array_equal(np.signbit(x), np.signbit(y)), where


def fresh(case: Case, noise: dict[str, np.ndarray]) -> Run:
    spec, data, params, state = case
    return run_torch(spec, data, params=params, state=state, noise=noise,
                     net=mirror.build(spec, params, state))


def pooled(case: Case, noise: dict[str, np.ndarray]) -> Run:
    spec, data, params, state = case
    return run_torch(spec, data, params=params, state=state, noise=noise)


def layer_samples() -> Iterator[Any]:
    """Every sample of every layer in both dtypes, with the modes it runs in."""
    seen: dict[str, Any] = {}
    for ident, name, sample, dtype, mode in layer_cases():
        key = ident.removesuffix(f"-{mode}")
        if key in seen:
            seen[key].values[3].append(mode)
        else:
            seen[key] = pytest.param(name, sample, dtype, [mode], id=key)
    yield from seen.values()


def twin_cases(name: str, sample: Any, dtype: str, mode: str) -> list[Case]:
    """The sample twice: other seeds (so other parameters and state), other data."""
    first = sample_case(name, sample.options, sample.inputs, dtype, mode=mode, seed=1)
    inputs = list(sample.inputs)
    x = np.asarray(inputs[0])
    if x.dtype.kind == "f":
        rng = np.random.default_rng(5)
        inputs[0] = (x + 0.25 * rng.standard_normal(x.shape)).astype(x.dtype)
    second = sample_case(name, sample.options, inputs, dtype, mode=mode, seed=2)
    return [(c.spec, c.data, c.params, c.state) for c in (first, second)]


@pytest.mark.parametrize(("name", "sample", "dtype", "modes"), list(layer_samples()))
def test_pooled_layer_runs_equal_fresh_builds(name: str, sample: Any, dtype: str,
                                              modes: list[str]) -> None:
    """Two cases per mode (train and eval share the pool's modules), run through the pool
    forward, backward and forward again, each run equal to its fresh build's."""
    cases = [case for mode in modes for case in twin_cases(name, sample, dtype, mode)]
    assert len({repr(ModuleKeys.of(c[0])) for c in cases}) == 1  # one structure
    noises = [manual.draw_noise(c[0], len(c[1].x)) for c in cases]
    want = [fresh(c, n) for c, n in zip(cases, noises, strict=True)]
    forward = list(range(len(cases)))
    for order in (forward + forward, forward[::-1] + forward):
        mirror.clear_pool()
        for i in order:
            assert_same_run(pooled(cases[i], noises[i]), want[i])


class ModuleKeys:
    @staticmethod
    def of(spec: Spec) -> Any:
        return mirror.ModulePool._keys(spec)


def mlp_case(seed: int, dtype: str = "float64", mode: str = "train") -> Case:
    spec = mlp_spec([4, 5, 5, 5, 3], "tanh", "cross_entropy", dtype, seed=seed)
    if mode != "train":
        spec = manual.parse_spec({**spec.to_dict(), "mode": mode})
    data = network_data(spec, batch=3 + seed)
    return spec, data, manual.initial_parameters(spec), manual.initial_state(spec)


def test_alike_nodes_of_one_graph_get_modules_of_their_own() -> None:
    spec = mlp_case(0)[0]
    modules = mirror.ModulePool().modules(spec)
    linears = [m for node, m in zip(spec.nodes, modules, strict=True) if node.type == "linear"]
    assert len({id(m) for m in linears}) == len(linears) == 4  # three are 5 -> 5 alike


def test_pooled_networks_equal_fresh_builds_in_any_order() -> None:
    cases = [mlp_case(1), mlp_case(2), mlp_case(3, mode="eval")]
    noise: dict[str, np.ndarray] = {}
    want = [fresh(c, noise) for c in cases]
    for order in ([0, 1, 2, 0], [2, 1, 0, 2]):
        mirror.clear_pool()
        for i in order:
            assert_same_run(pooled(cases[i], noise), want[i])


def test_compare_network_records_do_not_depend_on_the_cases_before() -> None:
    cases = [mlp_case(4), mlp_case(5, "float32")]
    alone = []
    for spec, data, _, _ in cases:
        mirror.clear_pool()
        alone.append(dumps(compare_network(spec, data), None))
    mirror.clear_pool()
    for i in [0, 1, 1, 0]:
        spec, data, _, _ = cases[i]
        assert dumps(compare_network(spec, data), None) == alone[i]


def test_pool_is_bounded() -> None:
    pool = mirror.ModulePool(capacity=3, graphs=2)
    for width in range(2, 9):
        spec = mlp_spec([width, width + 1, 2], "relu", "mse")
        net = pool.graph(spec, manual.initial_parameters(spec))
        assert len(pool) <= 3 and len(pool._graphs) <= 2
        assert net.graph_nodes[0].in_features == width
    big = mlp_spec([3, 4, 5, 6, 7], "relu", "mse")  # 7 nodes: more than the pool holds
    assert len(pool.modules(big)) == len(big.nodes)


def test_reset_restores_what_no_slot_sets() -> None:
    """A module whose tensors the spec does not all name (here a batch norm whose signature
    names none of them) gets them back as built, and loses its gradients."""
    module = nn.BatchNorm1d(3, momentum=None, dtype=torch.float64)
    entry = mirror._Pooled(module, Signature(shape=(3,)), info=None)
    built = {k: v.clone() for k, v in module.state_dict().items()}
    module(torch.from_numpy(np.random.default_rng(0).standard_normal((4, 3)))).sum().backward()
    assert module.weight.grad is not None
    assert int(module.state_dict()["num_batches_tracked"]) == 1
    entry.reset()
    assert module.weight.grad is None
    for key, value in module.state_dict().items():
        assert torch.equal(value, built[key]), key
