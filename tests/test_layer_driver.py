"""The one layer driver (reference.core.driver.compare_layer) against PyTorch itself.

Each subject kind (a registry layer with several inputs, with several outputs and a given
upstream per output, with parameters, state and noise; an op of any shape; a user's pair and
module twin) agrees with PyTorch, and PyTorch's side of the record is what PyTorch computes
when called directly here on the same arrays and upstream. Then one negative per check the
driver makes: a broken value, dtype, secondary output, output-only upstream, input, parameter,
state or noise, and a twin whose parameters or buffers are not the signature's, each fails.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from manual.layers import LAYERS
from manual.registry import OPS, OpInfo
from reference.checks.twin import user_subject
from reference.conformance.layers import check_sample
from reference.core import mirror
from reference.core.compare import compare_op
from reference.core.driver import LayerSample, compare_layer

RNG = np.random.default_rng(2024)


def _normal(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape)


def _reference(record: Any, name: str) -> np.ndarray:
    return np.asarray(record.tensor(name).reference)


def _failed(record: Any) -> list[str]:
    return [t.name for t in record.failures]


# ---- every subject kind agrees with PyTorch -------------------------------------------------

def test_several_inputs_each_get_their_gradient() -> None:
    x0, x1, g = _normal(2, 4, 3), _normal(2, 3, 5), _normal(2, 4, 5)
    record = compare_layer("matmul", LayerSample([x0, x1], upstream={"output": g}), "float64",
                           keep_values=True)
    assert record.passed, record.describe()
    t0, t1 = (torch.tensor(a, requires_grad=True) for a in (x0, x1))
    torch.matmul(t0, t1).backward(torch.from_numpy(g))
    np.testing.assert_array_equal(_reference(record, "backward: x0"), t0.grad.numpy())
    np.testing.assert_array_equal(_reference(record, "backward: x1"), t1.grad.numpy())


def _lstm_case() -> tuple[dict[str, np.ndarray], list[np.ndarray], dict[str, np.ndarray]]:
    signature = LAYERS["lstm"].signature({"hidden_size": 4}, ((5, 3), (1, 4), (1, 4)))
    params = {k: s.init(RNG, s.shape) for k, s in signature.params.items()}
    inputs = [_normal(2, 5, 3), _normal(2, 1, 4), _normal(2, 1, 4)]  # x, h0, c0 batch first
    upstream = {"output": _normal(2, 5, 4), "h_n": _normal(2, 1, 4), "c_n": _normal(2, 1, 4)}
    return params, inputs, upstream


def test_every_output_gets_the_given_upstream() -> None:
    params, inputs, upstream = _lstm_case()
    record = compare_layer("lstm", LayerSample(inputs, {"hidden_size": 4}, params=params,
                                               upstream=upstream), "float64", keep_values=True)
    assert record.passed, record.describe()
    assert {"forward: lstm", "forward: lstm.h_n", "forward: lstm.c_n"} <= {
        t.name for t in record.tensors}
    module = torch.nn.LSTM(3, 4, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.from_numpy(params[name]))
    x, h0, c0 = (torch.tensor(a, requires_grad=True) for a in inputs)
    y, (h_n, c_n) = module(x, (h0.transpose(0, 1), c0.transpose(0, 1)))
    torch.autograd.backward([y, h_n.transpose(0, 1), c_n.transpose(0, 1)],
                            [torch.from_numpy(upstream[k]) for k in ("output", "h_n", "c_n")])
    for name, tensor in (("x0", x), ("x1", h0), ("x2", c0)):
        np.testing.assert_allclose(_reference(record, f"backward: {name}"), tensor.grad,
                                   rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_reference(record, "backward: lstm.weight_hh_l0"),
                               module.weight_hh_l0.grad, rtol=1e-12, atol=1e-12)


def test_parameters_state_and_noise() -> None:
    x = _normal(6, 3) * 2 + 1
    params = {"weight": _normal(3), "bias": _normal(3)}
    state = {"running_mean": _normal(3), "running_var": 1 + RNG.random(3),
             "num_batches_tracked": np.asarray(4, np.int64)}
    g = _normal(6, 3)
    record = compare_layer("batch_norm", LayerSample([x], {"momentum": 0.2}, params=params,
                                                     state=state, upstream={"output": g}),
                           "float64", keep_values=True)
    assert record.passed, record.describe()
    mean, var = torch.from_numpy(state["running_mean"].copy()), torch.from_numpy(
        state["running_var"].copy())
    tx, w = torch.tensor(x, requires_grad=True), torch.tensor(params["weight"],
                                                               requires_grad=True)
    y = F.batch_norm(tx, mean, var, w, torch.from_numpy(params["bias"]), training=True,
                     momentum=0.2)
    y.backward(torch.from_numpy(g))
    np.testing.assert_allclose(_reference(record, "state: batch_norm.running_var"), var,
                               rtol=1e-14)
    np.testing.assert_allclose(_reference(record, "backward: batch_norm.weight"), w.grad,
                               rtol=1e-12)
    mask = (RNG.random((6, 3)) > 0.5).astype(np.float64)
    dropped = compare_layer("dropout", LayerSample([x], {"p": 0.5}, noise={"mask": mask}),
                            "float64", keep_values=True)
    assert dropped.passed, dropped.describe()
    np.testing.assert_array_equal(_reference(dropped, "forward: dropout"), x * mask * 2)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4), (1, 1, 2, 2, 3)])
def test_an_op_of_any_shape(shape: tuple[int, ...]) -> None:
    x, dy = _normal(*shape), _normal(*shape)
    record = compare_op("tanh", "float64", x=x, dy=dy)
    assert record.passed and [t.name for t in record.tensors] == ["forward: output",
                                                                  "backward: input"]
    tx = torch.tensor(x, requires_grad=True)
    torch.tanh(tx).backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(_reference(record, "backward: input"), tx.grad.numpy())


def test_a_loss_over_extra_dimensions_gets_no_target_gradient() -> None:
    x, target = _normal(4, 3, 2), RNG.integers(0, 3, size=(4, 2))
    record = compare_op("cross_entropy", "float64", {"reduction": "none"}, x=x, target=target)
    assert record.passed and [t.name for t in record.tensors] == ["forward: output",
                                                                  "backward: input"]
    want = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(target), reduction="none")
    np.testing.assert_array_equal(_reference(record, "forward: output"), want.numpy())


def _affine(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Any]:
    return x @ w.T + b, (x, w)


def _affine_backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:
    x, w = cache
    return dout @ w, dout.T @ x, dout.sum(axis=0)


def _user(backward: Any = _affine_backward) -> Any:
    module = torch.nn.Linear(3, 2, dtype=torch.float64)
    return user_subject(_affine, backward, module, options={},
                        params={"w": "weight", "b": "bias"}, name="affine")


def test_a_users_pair_and_module_twin() -> None:
    x, w, b, g = _normal(4, 3), _normal(2, 3), _normal(2), _normal(4, 2)
    record = compare_layer(_user(), LayerSample([x], params={"w": w, "b": b},
                                                upstream={"output": g}), "float64",
                           keep_values=True)
    assert record.passed, record.describe()
    tw = torch.tensor(w, requires_grad=True)
    F.linear(torch.from_numpy(x), tw, torch.from_numpy(b)).backward(torch.from_numpy(g))
    np.testing.assert_allclose(_reference(record, "backward: affine.w"), tw.grad, rtol=1e-14)


# ---- each check fails when what it checks is broken -------------------------------------------

def _replace(name: str, **changes: Any) -> Any:
    return dataclasses.replace(LAYERS[name], **changes)


def test_a_wrong_forward_value_fails() -> None:
    def forward(x: np.ndarray) -> tuple[np.ndarray, Any]:
        y, cache = OPS["tanh"].forward(x)
        return y * 1.001, cache
    broken = dataclasses.replace(OPS["tanh"], forward=forward)
    assert compare_op(broken, "float64").first_divergence == "forward: output"


def test_a_wrong_output_dtype_fails() -> None:
    def forward(x: np.ndarray) -> tuple[np.ndarray, Any]:
        y, cache = OPS["tanh"].forward(x)
        return y.astype(np.float64), cache
    record = compare_op(dataclasses.replace(OPS["tanh"], forward=forward), "float32")
    assert "dtype float64 != reference float32" in record.tensor("forward: output").problem


def _lstm_with(forward: Any = None, backward: Any = None) -> Any:
    info = LAYERS["lstm"]
    return dataclasses.replace(info, forward=forward or info.forward,
                               backward=backward or info.backward)


def test_a_wrong_secondary_output_fails() -> None:
    info = LAYERS["lstm"]

    def forward(*args: Any, **kwargs: Any) -> Any:
        (y, h_n, c_n), cache, state = info.forward(*args, **kwargs)
        return (y, h_n, c_n * 0.999), cache, state
    params, inputs, upstream = _lstm_case()
    record = compare_layer(_lstm_with(forward=forward), LayerSample(
        inputs, {"hidden_size": 4}, params=params, upstream=upstream), "float64")
    assert _failed(record) == ["forward: lstm.c_n"]


def test_the_default_upstream_reaches_every_output() -> None:
    """A backward that drops the gradient arriving at ``c_n`` is wrong only where ``c_n`` has
    an upstream: the default gives every output one (an upstream at ``output`` alone, as a
    loss on the output would, hides it)."""
    info = LAYERS["lstm"]

    def backward(dys: Any, cache: Any) -> Any:
        dy, dh, dc = dys
        return info.backward((dy, dh, np.zeros_like(dc)), cache)
    params, inputs, upstream = _lstm_case()
    broken = _lstm_with(backward=backward)
    record = compare_layer(broken, LayerSample(inputs, {"hidden_size": 4}, params=params),
                           "float64")
    assert not record.passed and "backward: x2" in _failed(record)
    hidden = compare_layer(broken, LayerSample(inputs, {"hidden_size": 4}, params=params,
                                               upstream={"output": upstream["output"]}),
                           "float64")
    assert hidden.passed


def test_a_wrong_gradient_of_one_input_fails() -> None:
    info = LAYERS["matmul"]

    def backward(dy: Any, cache: Any) -> Any:
        (d0, d1), grads = info.backward(dy, cache)
        return (d0, d1 * 1.001), grads
    record = compare_layer(_replace("matmul", backward=backward),
                           LayerSample([_normal(2, 4, 3), _normal(2, 3, 5)]), "float64")
    assert _failed(record) == ["backward: x1"]


def test_a_wrong_parameter_gradient_fails() -> None:
    def backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:
        dx, dw, db = _affine_backward(dout, cache)
        return dx, dw, db * 2
    record = compare_layer(_user(backward), LayerSample([_normal(4, 3)], params={
        "w": _normal(2, 3), "b": _normal(2)}), "float64")
    assert _failed(record) == ["backward: affine.b"]


def test_a_wrong_state_update_fails() -> None:
    info = LAYERS["batch_norm"]

    def forward(*args: Any, **kwargs: Any) -> Any:
        y, cache, state = info.forward(*args, **kwargs)
        return y, cache, {**state, "running_var": state["running_var"] * 1.01}
    record = compare_layer(_replace("batch_norm", forward=forward),
                           LayerSample([_normal(6, 3)]), "float64")
    assert _failed(record) == ["state: batch_norm.running_var"]


def test_a_layer_that_ignores_its_noise_fails() -> None:
    info = LAYERS["dropout"]

    def forward(inputs: Any, params: Any, state: Any, noise: Any, **kwargs: Any) -> Any:
        ones = {"mask": np.ones_like(noise["mask"])}
        return info.forward(inputs, params, state, ones, **kwargs)
    record = compare_layer(_replace("dropout", forward=forward),
                           LayerSample([_normal(6, 3)], {"p": 0.5}), "float64")
    assert "forward: dropout" in _failed(record)


class _ExtraParameter(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.extra = inner, torch.nn.Parameter(torch.zeros(1))


def _wrong_running_var() -> torch.nn.Module:
    module = torch.nn.BatchNorm1d(3, dtype=torch.float64)
    module.running_var = torch.ones(1, 3, dtype=torch.float64)
    return module


@pytest.mark.parametrize(("build", "message"), [
    (lambda: torch.nn.BatchNorm1d(4, dtype=torch.float64), "the torch twin's parameters"),
    (lambda: _ExtraParameter(torch.nn.BatchNorm1d(3, dtype=torch.float64)),
     "the torch twin's parameters"),
    (_wrong_running_var, "state 'running_var': the torch twin's buffer"),
], ids=["reshaped", "extra", "state"])
def test_a_builder_whose_module_is_not_the_signatures_is_refused(
        monkeypatch: pytest.MonkeyPatch, build: Any, message: str) -> None:
    # BatchNorm's slots (weight, bias, running_mean, running_var, num_batches_tracked) copy in
    # by torch name; copy_ would broadcast a (3,) slot into a (1, 3) buffer without a word.
    monkeypatch.setattr(mirror, "build_module", lambda info, node, spec: build())
    with pytest.raises(ValueError, match=rf"layer 'batch_norm': {message}"):
        compare_layer("batch_norm", LayerSample([_normal(6, 3)]), "float64")


def test_an_upstream_for_an_output_the_layer_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match=r"upstream: layer 'tanh' has no output 'h_n'"):
        compare_layer("tanh", LayerSample([_normal(2, 3)], upstream={"h_n": _normal(2, 3)}),
                      "float64")


def test_a_mask_gets_no_gradient_and_a_pair_that_gives_one_breaks_the_contract() -> None:
    info = LAYERS["scaled_dot_product_attention"]
    sample = next(s for s in info.samples(np.random.default_rng(0), "float64")  # type: ignore[misc]
                  if s.name == "additive_mask")
    record = compare_layer(info, LayerSample(sample.inputs, sample.options), "float64")
    assert record.passed and "backward: x3" not in {t.name for t in record.tensors}

    def backward(dy: Any, cache: Any) -> Any:
        grads, dparams = info.backward(dy, cache)
        return (*grads[:3], np.zeros_like(sample.inputs[3])), dparams
    original = LAYERS[info.name]
    LAYERS[info.name] = dataclasses.replace(info, backward=backward)
    try:
        boolean = next(s for s in info.samples(np.random.default_rng(0), "float64")  # type: ignore[misc]
                       if s.name == "boolean_mask")
        result = check_sample(info.name, boolean.options, boolean.inputs, "float64")
    finally:
        LAYERS[info.name] = original
    assert any("carries no gradient" in p for p in result.problems), result.problems


def _rounded_twin(scale: float) -> OpInfo:
    """The identity, whose PyTorch twin loses the low bits of x in float32 ((x + 1e4) - 1e4:
    up to half an ulp of 1e4, 4.9e-4, far above atol) while its float64 replay keeps them."""
    def forward(x: np.ndarray) -> tuple[np.ndarray, None]:
        return x * np.asarray(scale, dtype=x.dtype), None

    def backward(dy: np.ndarray, cache: None) -> np.ndarray:
        return dy * np.asarray(scale, dtype=dy.dtype)

    return OpInfo(name="identity_twin", forward=forward, backward=backward,
                  torch=lambda x: (x + 1e4) - 1e4)


def _rounded(scale: float, rounding: bool = True) -> Any:
    return compare_layer(_rounded_twin(scale), LayerSample([_normal(8, 16).astype(np.float32)]),
                         "float32", rounding=rounding)


def test_float32_rounding_is_judged_against_a_float64_replay() -> None:
    assert not _rounded(1.0, rounding=False).passed  # the twin's rounding is above atol
    record = _rounded(1.0)
    assert record.passed, record.describe()
    assert record.tolerance_reason.endswith("float32 rounding within a bound measured against "
                                            "float64")
    output = record.tensor("forward: identity_twin")
    assert output.problem.startswith("within the measured float32 rounding bound")
    assert 0 < output.tolerance_ratio <= 1


def test_a_float32_mistake_is_not_excused_as_rounding() -> None:
    record = _rounded(1.001)
    assert not record.passed and record.first_divergence == "forward: identity_twin " \
                                                            "(identity_twin)"
    assert not record.tensor("forward: identity_twin").problem


def test_the_readme_example() -> None:
    """README: an LSTM with the upstream given at h_n alone (output and c_n get none)."""
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    sample = LayerSample([x], {"hidden_size": 4}, upstream={"h_n": np.ones((2, 1, 4))})
    record = compare_layer("lstm", sample, "float64")
    assert record.passed, record.describe()
    names = [t.name for t in record.tensors]
    assert names[:3] == ["forward: lstm", "forward: lstm.h_n", "forward: lstm.c_n"]
    assert "backward: lstm.weight_ih_l0" in names


def test_a_mask_computed_by_a_node_sends_it_no_gradient_in_either_engine() -> None:
    """Signature.no_grad: the manual pair returns None for an attention mask, so the mirror
    detaches it; a mask made by a node then gets no gradient in PyTorch either."""
    import manual
    from reference.core.compare import compare_network

    spec = manual.parse_spec({
        "inputs": {"q": {"shape": [3, 4]}, "k": {"shape": [5, 4]}, "v": {"shape": [5, 4]},
                   "m0": {"shape": [3, 2]}},
        "nodes": [{"name": "m", "type": "linear", "inputs": ["m0"], "out_features": 5},
                  {"name": "att", "type": "scaled_dot_product_attention",
                   "inputs": ["q", "k", "v", "m"], "attn_mask": "additive"}],
        "loss": {"type": "mse"}, "dtype": "float64"})
    x = {name: _normal(2, *shape) for name, shape in
         (("q", (3, 4)), ("k", (5, 4)), ("v", (5, 4)), ("m0", (3, 2)))}
    data = manual.make_data(spec, x["q"], _normal(2, 3, 4), {k: v for k, v in x.items()
                                                            if k != "q"})
    record = compare_network(spec, data)
    assert record.passed, record.describe()
    assert not np.any(record.tensor("backward: m.weight").reference)
