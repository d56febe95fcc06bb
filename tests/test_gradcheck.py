"""The numerical gradient checker (manual.gradcheck): verdicts, modes, kinks, records."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest

import manual
from manual.gradcheck import GOOD, GradcheckRecord, check_function, check_network
from manual.gradcheck.core import DEFAULT_EPS
from manual.gradcheck.graph import GraphEvaluator
from manual.gradcheck.modes import run_check
from manual.gradcheck.network import NetworkEvaluator, complex_refusal, fast_path
from manual.gradcheck.opcheck import complex_form
from manual.layers import LAYERS
from manual.layers.core import linear_with
from manual.ops.linear import linear_backward
from manual.registry import ACTIVATIONS, LOSSES, OPS
from reference.conformance.matrix import network_cases, network_data, network_spec
from reference.core import records

SEED_SPEC = "examples/seed_example.json"
SEED_DATA = "examples/seed_example_data.json"
MODES = ("full", "sparse", "projection", "complex")


def seed_example() -> tuple[manual.Spec, manual.Data]:
    spec = manual.load_spec(SEED_SPEC)
    return spec, manual.load_data(SEED_DATA, spec)


def naive_numerical(spec: manual.Spec, data: manual.Data, name: str, h: float,
                    dloss: Any) -> np.ndarray:
    """The seed's loop: one full forward of a freshly built network per perturbation."""
    spec64 = manual.parse_spec({**spec.to_dict(), "dtype": "float64"})
    params: dict[str, Any] = {k: v.astype(np.float64)
                              for k, v in manual.initial_parameters(spec).items()}
    x = data.x.astype(np.float64)
    target = data.y if data.y.dtype.kind in "iu" else data.y.astype(np.float64)
    tensor = x if name == "input" else params[name]
    grad = np.zeros(tensor.size)
    for i in range(tensor.size):
        values = []
        for step in (h, -h):
            flat = tensor.reshape(-1)
            saved = flat[i]
            flat[i] = saved + step
            net = manual.build(spec64, params)
            values.append(np.sum(dloss * net.loss(net.forward(x), target)))
            flat[i] = saved
        grad[i] = (values[0] - values[1]) / (2 * h)
    return grad.reshape(tensor.shape)


# -- the seed example ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_seed_example_passes_in_every_mode_with_every_tensor_good(mode: str) -> None:
    spec, data = seed_example()
    if mode == "complex":  # the seed example holds a relu, which the complex step refuses
        with pytest.raises(ValueError, match=r"layers\[1\] \(relu\)"):
            check_network(spec, data, mode)
        return
    record = check_network(spec, data, mode)
    assert record.passed, record.describe()
    names = [t.name for t in record.tensors]
    assert names == ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias",
                     "input"]
    for t in record.tensors:
        assert t.verdict == "good" and t.max_rel_error <= GOOD, t


# -- the batched evaluation is the seed's loop, faster ---------------------------------------

STRUCTURE_CASES = [
    ("tanh", "mse", {}), ("relu", "cross_entropy", {}), ("softmax", "mse", {}),
    ("log_softmax", "nll", {}), ("sigmoid", "kl_div", {"reduction": "batchmean"}),
    ("gelu", "l1", {"reduction": "none"}), ("silu", "bce", {"reduction": "sum"}),
]


@pytest.mark.parametrize(("activation", "loss", "loss_options"), STRUCTURE_CASES,
                         ids=[f"{a}x{b}" for a, b, _ in STRUCTURE_CASES])
def test_batched_differences_match_the_naive_loop(activation: str, loss: str,
                                                  loss_options: dict[str, Any]) -> None:
    spec = network_spec(activation, loss, "float64", seed=3, width=5, features=3,
                        loss_options=loss_options)
    data = network_data(spec, batch=4)
    evaluator = NetworkEvaluator(spec, data, seed=0)
    reduction = loss_options.get("reduction", "mean")
    dloss = evaluator.weights if reduction == "none" else 1.0
    h = DEFAULT_EPS
    for name in evaluator.names:
        size = evaluator.value(name).size
        delta, _ = evaluator.differences(name, h, flat=np.arange(size))
        batched = (delta / (2 * h)).reshape(evaluator.value(name).shape)
        expected = naive_numerical(spec, data, name, h, dloss)
        np.testing.assert_allclose(batched, expected, rtol=1e-6, atol=1e-8, err_msg=name)


def test_base_loss_reassembled_from_per_element_terms_matches_the_network() -> None:
    spec = network_spec("tanh", "cross_entropy", "float64", loss_options={"label_smoothing": 0.1})
    evaluator = NetworkEvaluator(spec, network_data(spec))
    reassembled, network_loss = evaluator.value_check
    assert reassembled == pytest.approx(network_loss, rel=1e-14)


def test_rowwise_activations_are_exactly_the_ones_that_mix_a_row() -> None:
    x = np.random.default_rng(0).uniform(0.5, 1.5, size=(2, 4))
    for name, op in ACTIVATIONS.items():
        y0 = op.forward(x, **op.defaults())[0]
        bumped = x.copy()
        bumped[0, 1] += 0.1
        changed = op.forward(bumped, **op.defaults())[0] != y0
        changed[0, 1] = False
        assert bool(changed.any()) == (ACTIVATIONS[name].structure == "rowwise"), name


# -- verdicts on the whole conformance matrix --------------------------------------------------


@pytest.mark.parametrize("case", list(network_cases()), ids=lambda c: c.id)
def test_every_matrix_network_passes_full_and_projection(case: Any) -> None:
    spec = case.spec()
    data = network_data(spec)
    for mode in ("full", "projection"):
        record = check_network(spec, data, mode)
        assert record.passed, record.describe()
        assert record.source_dtype == case.dtype


@pytest.mark.parametrize("case", [c for c in network_cases(("float64",))
                                  if not complex_refusal(c.spec())], ids=lambda c: c.id)
def test_complex_step_is_exact_on_analytic_networks(case: Any) -> None:
    spec = case.spec()
    record = check_network(spec, network_data(spec), "complex")
    assert record.passed, record.describe()
    # No subtraction: what is left is the rounding of backprop itself, far below central
    # differences' 1e-7 band.
    assert record.max_rel_error <= 1e-10


# -- the complex step and the registry ---------------------------------------------------------


@pytest.mark.parametrize("name", [n for n, op in OPS.items() if op.calculus.complex_forward])
def test_registry_complex_forward_agrees_with_the_forward_on_real_input(name: str) -> None:
    op = OPS[name]
    rng = np.random.default_rng(0)
    x = rng.uniform(*op.domain.inputs, size=(3, 4))
    for options in op.variants:
        options = {**op.defaults(), **options}
        if op.kind == "activation":
            expected = op.forward(x, **options)[0]
            got = complex_form(op, options)(x.astype(complex))
        else:
            from reference.core.sampling import target
            t = target(op.targets[0], (3, 4), rng, "float64", options)
            expected = op.forward(x, t, **{**options, "reduction": "none"})[0]
            got = complex_form(op, options)(x.astype(complex), t)
        np.testing.assert_allclose(got.real, expected, rtol=1e-13, atol=1e-15)
        np.testing.assert_array_equal(got.imag, 0)


@pytest.mark.parametrize("activation", ["relu", "hardtanh", "softsign", "elu"])
def test_complex_step_is_refused_naming_the_op_and_layer(activation: str) -> None:
    spec = network_spec(activation, "mse", "float64")
    with pytest.raises(ValueError, match=rf"layers\[1\] \({activation}\) is not analytic"):
        check_network(spec, network_data(spec), "complex")


def test_complex_step_is_refused_for_a_kinked_loss() -> None:
    spec = network_spec("tanh", "l1", "float64")
    with pytest.raises(ValueError, match=r"loss \(l1\)"):
        check_network(spec, network_data(spec), "complex")


# -- a broken backward is caught, in every mode, and located ---------------------------------


def _broken_tanh(monkeypatch: pytest.MonkeyPatch) -> None:
    """tanh' taken as 1 - y instead of 1 - y^2."""
    broken = dataclasses.replace(ACTIVATIONS["tanh"], backward=lambda dy, c: dy * (1 - c.y))
    monkeypatch.setitem(ACTIVATIONS, "tanh", broken)


@pytest.mark.parametrize("mode", MODES)
def test_a_wrong_activation_derivative_is_caught(monkeypatch: pytest.MonkeyPatch,
                                                 mode: str) -> None:
    _broken_tanh(monkeypatch)
    spec = network_spec("tanh", "mse", "float64")
    record = check_network(spec, network_data(spec), mode)
    assert not record.passed
    assert "layers.0.weight" in [t.name for t in record.failures]
    assert all(t.verdict == "wrong" for t in record.failures)


def _one_wrong_weight_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    def backward(dy: Any, cache: Any) -> Any:
        dx, dweight, dbias = linear_backward(dy, cache)
        if dweight.shape == (8, 4):  # the first layer only
            dweight = dweight.copy()
            dweight[5, 2] += 1e-3
        return dx, dweight, dbias

    monkeypatch.setitem(LAYERS, "linear", linear_with(backward=backward))


@pytest.mark.parametrize("mode", ["full", "projection"])
def test_a_single_wrong_element_is_located(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    _one_wrong_weight_gradient(monkeypatch)
    spec = network_spec("sigmoid", "cross_entropy", "float64")
    record = check_network(spec, network_data(spec), mode)
    assert [t.name for t in record.failures] == ["layers.0.weight"]
    failure = record.failures[0]
    assert failure.worst_index == [5, 2]
    assert failure.located_by == ("full" if mode == "projection" else "")


def test_sparse_mode_catches_the_wrong_element_when_it_draws_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _one_wrong_weight_gradient(monkeypatch)
    spec = network_spec("sigmoid", "cross_entropy", "float64")
    record = check_network(spec, network_data(spec), "sparse", k=32)  # all 32 elements
    assert record.tensor("layers.0.weight").verdict == "wrong"
    assert record.tensor("layers.0.weight").checked == 32


# -- kinks ---------------------------------------------------------------------------------------


def kinked_spec(offset: float) -> manual.Spec:
    """x = [1, 2]: the first relu unit's pre-activation is exactly ``offset``."""
    return manual.parse_spec({
        "input_shape": [2],
        "layers": [
            {"type": "linear", "out_features": 2, "weight": [[2.0, -1.0], [0.3, 0.4]],
             "bias": [offset, 0.1]},
            {"type": "relu"},
            {"type": "linear", "out_features": 1, "weight": [[0.7, -0.8]], "bias": [0.2]},
        ],
        "loss": {"type": "mse"},
    })


KINK_DATA = {"x": [[1.0, 2.0]], "y": [[0.5]]}


def test_a_perturbation_across_relus_kink_is_reported_not_failed() -> None:
    record = check_network(kinked_spec(0.0), KINK_DATA, "full")
    assert record.passed, record.describe()
    weight = record.tensor("layers.0.weight")
    assert weight.kinks_crossed == 2 and weight.kink_indices == [[0, 0], [0, 1]]
    assert weight.verdict == "kink" and weight.max_rel_error_kinked > 1e-4
    assert weight.max_rel_error <= GOOD  # the elements that crossed nothing are still judged


def test_an_element_that_crosses_no_kink_is_still_judged(monkeypatch: pytest.MonkeyPatch) -> None:
    def backward(dy: Any, cache: Any) -> Any:
        dx, dweight, dbias = linear_backward(dy, cache)
        return dx, dweight * np.where(np.arange(dweight.shape[0]) == 1, 1.5, 1.0)[:, None], dbias

    monkeypatch.setitem(LAYERS, "linear", linear_with(backward=backward))
    record = check_network(kinked_spec(0.0), KINK_DATA, "full")
    weight = record.tensor("layers.0.weight")
    assert weight.verdict == "wrong" and weight.worst_index[0] == 1


def test_a_kink_far_from_the_point_is_not_crossed() -> None:
    record = check_network(kinked_spec(1e-3), KINK_DATA, "full")
    assert all(t.kinks_crossed == 0 and t.verdict == "good" for t in record.tensors)


def test_loss_kinks_are_detected_on_the_difference_to_the_target() -> None:
    spec = manual.parse_spec({"input_shape": [1], "layers": [
        {"type": "linear", "out_features": 1, "weight": [[1.0]], "bias": [0.0]}],
        "loss": {"type": "l1"}})
    record = check_network(spec, {"x": [[0.5]], "y": [[0.5]]}, "full")
    assert record.passed and record.tensor("layers.0.bias").kinks_crossed == 1


# -- float32, records, determinism, bad input ------------------------------------------------


def test_a_float32_network_is_checked_on_a_float64_copy() -> None:
    spec = network_spec("tanh", "cross_entropy", "float32")
    record = check_network(spec, network_data(spec), "full")
    assert record.passed and record.source_dtype == "float32"
    assert record.max_rel_error <= GOOD


def test_record_round_trips_through_json_and_reference_encode() -> None:
    record = check_network(kinked_spec(0.0), KINK_DATA, "projection")
    assert GradcheckRecord.from_json(record.to_json()) == record
    assert json.loads(records.dumps(record)) == json.loads(record.to_json())


def test_sparse_and_projection_are_deterministic_for_a_seed() -> None:
    spec = network_spec("gelu", "mse", "float64")
    data = network_data(spec)
    for mode in ("sparse", "projection"):
        first = check_network(spec, data, mode, seed=7, k=5)
        assert first == check_network(spec, data, mode, seed=7, k=5)
        assert first != check_network(spec, data, mode, seed=8, k=5)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "fast"}, "mode: must be one of"), ({"eps": 0.0}, "eps: must be a positive"),
    ({"eps": float("nan")}, "eps: must be a positive"), ({"mode": "sparse", "k": 0}, "k: must"),
])
def test_bad_arguments_are_rejected_naming_the_field(kwargs: dict[str, Any],
                                                    message: str) -> None:
    spec, data = seed_example()
    with pytest.raises(ValueError, match=message):
        check_network(spec, data, **kwargs)


# -- any function of arrays ----------------------------------------------------------------------


@pytest.mark.parametrize("batched", [False, True], ids=["looped", "batched"])
@pytest.mark.parametrize("mode", MODES)
def test_check_function_on_a_generic_function(batched: bool, mode: str) -> None:
    x = np.random.default_rng(0).uniform(-2, 2, size=(3, 2))
    w = np.linspace(0.5, 1.5, 2)

    def f(inputs: dict[str, Any]) -> Any:
        w_in = inputs["w"]
        z = inputs["x"] * (w_in[:, None, :] if w_in.ndim == 2 else w_in)  # (K, 2) when stacked
        axes = tuple(range(z.ndim - 2, z.ndim))
        return np.sum(np.sin(z) * z, axis=axes)

    def grad(z: np.ndarray) -> np.ndarray:
        return np.sin(z) + z * np.cos(z)

    z = x * w
    good = {"x": grad(z) * w, "w": np.sum(grad(z) * x, axis=0)}
    assert check_function(f, {"x": x, "w": w}, good, mode=mode, batched=batched).passed
    bad = {**good, "w": good["w"] * 1.001}
    record = check_function(f, {"x": x, "w": w}, bad, mode=mode, batched=batched)
    assert [t.name for t in record.failures] == ["w"]


def test_check_function_judges_a_gradient_of_the_wrong_shape_wrong() -> None:
    """A wrong-shaped gradient is a wrong answer (as the network checker records it), not
    bad input; the other tensors are still checked."""
    record = check_function(lambda d: np.sum(d["x"]) + np.sum(d["y"]),
                            {"x": np.ones(3), "y": np.ones(2)}, {"x": np.ones(2), "y": np.ones(2)})
    assert [(t.name, t.verdict) for t in record.tensors] == [("x", "wrong"), ("y", "good")]
    assert record.tensor("x").problem == \
        "the analytic gradient has shape (2,), the tensor has shape (3,)"


GRAPH_SKIP = {"inputs": {"x": {"shape": [3]}}, "loss": {"type": "mse"}, "seed": 2, "nodes": [
    {"name": "fc", "type": "linear", "inputs": ["x"], "out_features": 3},
    {"name": "act", "type": "tanh", "inputs": ["fc"]},
    {"name": "skip", "type": "add", "inputs": ["act", "x"]}]}


@pytest.mark.parametrize("evaluator", ["network", "graph"])
def test_network_evaluators_judge_a_gradient_of_the_wrong_shape_wrong(evaluator: str) -> None:
    """The same verdict and words from the chain's and the graph's evaluator as from
    check_function: the wrong-shaped tensor is wrong, every other one is still checked."""
    if evaluator == "network":
        spec = network_spec("tanh", "mse", "float64", seed=3, width=4, features=3)
        data = network_data(spec, batch=4)
        subject: Any = NetworkEvaluator(spec, data)
        name = "layers.0.bias"
    else:
        spec = manual.parse_spec(GRAPH_SKIP)
        rng = np.random.default_rng(4)
        data = manual.make_data(spec, rng.standard_normal((5, 3)), rng.standard_normal((5, 3)))
        subject = GraphEvaluator(spec, data)
        name = "fc.bias"
    want = subject.value(name).shape
    subject.grads[name] = subject.grads[name][:-1]
    record = run_check(subject, mode="full")
    verdicts = {t.name: t.verdict for t in record.tensors}
    assert verdicts.pop(name) == "wrong"
    assert set(verdicts.values()) == {"good"}, record
    assert record.tensor(name).problem == (f"the analytic gradient has shape "
                                           f"{(want[0] - 1,)}, the tensor has shape {want}")


def test_losses_cover_every_registered_loss() -> None:
    assert set(LOSSES) <= set(OPS)


# -- truncation where a second derivative jumps ------------------------------------------------

SOFTSIGN_AT_ZERO = {
    "input_shape": [1],
    "layers": [{"type": "softsign"},
               {"type": "linear", "out_features": 1, "weight": [[0.5]], "bias": [0.1]}],
    "loss": {"type": "mse"},
}
ZERO_DATA = {"x": [[0.0]], "y": [[0.3]]}


def test_an_error_that_shrinks_with_the_step_is_truncation_not_a_bug() -> None:
    """softsign'' jumps at 0, so the central difference is off by O(h) (~3e-6) there."""
    record = check_network(SOFTSIGN_AT_ZERO, ZERO_DATA, "full")
    assert record.passed, record.describe()
    found = record.tensor("input")
    assert found.refined == 1 and found.verdict == "acceptable" and found.kinks_crossed == 0
    assert GOOD < found.max_rel_error <= 1e-6


def test_an_error_that_does_not_shrink_with_the_step_stays_wrong(
        monkeypatch: pytest.MonkeyPatch) -> None:
    op = ACTIVATIONS["softsign"]
    off = dataclasses.replace(op, backward=lambda dy, c: op.backward(dy, c) * (1 + 1e-5))
    monkeypatch.setitem(ACTIVATIONS, "softsign", off)
    record = check_network(SOFTSIGN_AT_ZERO, ZERO_DATA, "full")
    assert record.tensor("input").verdict == "wrong" and record.tensor("input").refined == 0


# -- the rank-one fast path chooses by structure ---------------------------------------------


def _chain(*middle: dict[str, Any]) -> tuple[manual.Spec, manual.Data]:
    spec = manual.parse_spec({"input_shape": [4], "layers": [
        {"type": "linear", "out_features": 5}, *middle,
        {"type": "linear", "out_features": 3}], "loss": {"type": "mse"}})
    rng = np.random.default_rng(0)
    return spec, manual.make_data(spec, rng.standard_normal((6, 4)),
                                  rng.standard_normal((6, 3)))


def test_the_fast_path_takes_any_elementwise_layer_by_its_structure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """flatten is the identity on (N, D): marked elementwise in a test-local registry, the
    rank-one evaluator runs it through its own pair (no activation op, no name lookup) and
    agrees with the general evaluator; a bare KeyError before issue 21."""
    monkeypatch.setitem(LAYERS, "flatten", dataclasses.replace(LAYERS["flatten"],
                                                               structure="elementwise"))
    spec, data = _chain({"type": "flatten"}, {"type": "tanh"})
    assert fast_path(spec)
    fast = NetworkEvaluator(spec, data)
    record = check_network(spec, data, "full")
    assert record.passed, record.describe()
    general = GraphEvaluator(spec, data)
    for name in fast.names:
        if name != "input":
            np.testing.assert_allclose(fast.analytic(name), general.analytic(name), rtol=1e-12)
    # The complex step asks the entry too: flatten has no complex forward, and says so.
    assert "layers[1] (flatten) has no complex forward" in complex_refusal(spec)


def test_the_fast_path_leaves_a_layer_with_parameters_to_the_general_evaluator(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An 'elementwise' layer that owns parameters (a per-feature scale) is not a column map
    the rank-one updates may assume: the general evaluator checks it."""
    monkeypatch.setitem(LAYERS, "layer_norm", dataclasses.replace(LAYERS["layer_norm"],
                                                                  structure="elementwise"))
    spec, data = _chain({"type": "layer_norm", "normalized_shape": [5]})
    assert not fast_path(spec)
    assert check_network(spec, data, "full").passed
