"""Tests that kill mutants mutmut found surviving the conformance suite (mutation/triage.toml
names, for each, the test that kills it). Each compares with PyTorch through
:func:`reference.core.compare.compare_op` / ``compare_network``, or with independent math."""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from manual.layers import LAYERS
from manual.layers.core import matrix_shape
from manual.ops.attention import mha_backward, mha_forward, sdpa_forward
from manual.ops.conv import conv_forward
from manual.ops.dropout import dropout_forward
from manual.ops.merge import add_forward, concat_backward, concat_forward, flatten_forward
from manual.ops.normalization import group_norm_forward, layer_norm_forward
from manual.ops.pooling import (
    adaptive_avg_pool2d_forward,
    avg_pool_backward,
    avg_pool_forward,
    max_pool_backward,
    max_pool_forward,
)
from manual.ops.smooth import softplus_backward, softplus_forward
from manual.ops.tensor import matmul_backward, matmul_forward
from manual.registry import ACTIVATIONS, OPS, Oracle, Tolerance
from reference.core import sampling
from reference.core.compare import compare_op
from reference.core.engine import torch_callable

DTYPES = ("float32", "float64")


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_shifts_each_row_by_its_own_maximum(dtype: str) -> None:
    """Rows hundreds apart: shifting by the global maximum underflows every exp of the low row
    to 0 (0/0 = NaN), which the conformance inputs (all of one scale) never show."""
    rng = np.random.default_rng(16)
    x = np.stack([rng.normal(size=4) + 800.0, rng.normal(size=4) - 800.0, rng.normal(size=4)])
    record = compare_op("softmax", dtype, {}, x=x.astype(dtype), seed=3)
    assert record.passed, record.describe()


def _grad(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x.copy()).requires_grad_(True)


def _close(manual_value: np.ndarray, torch_value: Any) -> None:
    """float64 throughout: PyTorch's own result to machine precision."""
    torch.testing.assert_close(torch.from_numpy(np.ascontiguousarray(manual_value)),
                               torch_value.detach(), rtol=1e-12, atol=1e-12, equal_nan=True)


def test_matmul_gradients_sum_over_broadcast_batch_dims() -> None:
    """``a`` (2, 1, 3, 4) @ ``b`` (5, 4, 2): the gradients sum over the leading dim ``b`` lacks
    and over the stretched size-1 dim of ``a`` (the conformance graphs broadcast neither)."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 1, 3, 4)), rng.normal(size=(5, 4, 2))
    y, cache = matmul_forward(a, b)
    dy = rng.normal(size=y.shape)
    da, db = matmul_backward(dy, cache)
    ta, tb = _grad(a), _grad(b)
    (ta @ tb).backward(torch.from_numpy(dy))
    _close(y, ta @ tb)
    _close(da, ta.grad)
    _close(db, tb.grad)


def test_concat_backward_splits_three_inputs() -> None:
    rng = np.random.default_rng(2)
    xs = [rng.normal(size=(2, n, 3)) for n in (1, 3, 2)]
    y, cache = concat_forward(*xs, dim=1)
    dy = rng.normal(size=y.shape)
    txs = [_grad(x) for x in xs]
    torch.cat(txs, dim=1).backward(torch.from_numpy(dy))
    for dx, tx in zip(concat_backward(dy, cache), txs, strict=True):
        _close(dx, tx.grad)


def test_sdpa_softmax_is_shifted_by_the_row_maximum() -> None:
    """Scores in the hundreds: exp(z + max) overflows to inf (inf/inf = NaN) where
    exp(z - max) does not; the conformance samples keep scores near 1."""
    rng = np.random.default_rng(3)
    q, k, v = (rng.normal(size=(2, 3, 4)) * 40 for _ in range(3))
    out, _ = sdpa_forward(q, k, v)
    tq, tk, tv = (torch.from_numpy(t) for t in (q, k, v))
    _close(out, F.scaled_dot_product_attention(tq, tk, tv))


def _pool_input(rng: np.random.Generator) -> np.ndarray:
    x = rng.normal(size=(2, 3, 7, 8))
    x[0, 0] = -np.inf  # windows with no finite value: the gradient goes to the first real one
    x[1, 2, :4, :4] = -np.inf
    return x


@pytest.mark.parametrize("options", [{}, {"stride": 2, "padding": 1},
                                     {"stride": 2, "padding": 1, "dilation": 2},
                                     {"stride": 3, "ceil_mode": True}], ids=str)
def test_max_pool_defaults_and_all_minus_inf_windows_match_torch(options: dict) -> None:
    rng = np.random.default_rng(4)
    x = _pool_input(rng)
    y, cache = max_pool_forward(x, 3, **options)
    dy = rng.normal(size=y.shape)
    tx = _grad(x)
    ty = F.max_pool2d(tx, 3, **options)
    ty.backward(torch.from_numpy(dy))
    _close(y, ty)
    _close(max_pool_backward(dy, cache), tx.grad)


@pytest.mark.parametrize("options", [{}, {"stride": 2, "padding": 1}, {"ceil_mode": True},
                                     {"divisor_override": 1}], ids=str)
def test_avg_pool_defaults_and_divisor_override_match_torch(options: dict) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 3, 7, 8))
    y, cache = avg_pool_forward(x, 2, **options)
    dy = rng.normal(size=y.shape)
    tx = _grad(x)
    ty = F.avg_pool2d(tx, 2, **options)
    ty.backward(torch.from_numpy(dy))
    _close(y, ty)
    _close(avg_pool_backward(dy, cache), tx.grad)


def test_avg_pool_refuses_a_zero_divisor_as_torch_does() -> None:
    x = np.ones((1, 1, 4, 4))
    with pytest.raises(RuntimeError):
        F.avg_pool2d(torch.from_numpy(x), 2, divisor_override=0)
    with pytest.raises(ValueError, match="divisor_override"):
        avg_pool_forward(x, 2, divisor_override=0)


def test_softplus_default_threshold_is_torchs() -> None:
    """Above beta x = 20 PyTorch returns x itself (gradient 1), not log1p(e^x)."""
    x = np.array([19.5, 20.25, 20.75, 21.5])
    y, cache = softplus_forward(x)
    dy = np.random.default_rng(6).normal(size=x.shape)
    tx = _grad(x)
    ty = F.softplus(tx)
    ty.backward(torch.from_numpy(dy))
    _close(y, ty)
    _close(softplus_backward(dy, cache), tx.grad)


def test_adaptive_avg_pool_refuses_bad_ranks_and_empty_outputs() -> None:
    x = np.ones((1, 2, 4, 4))
    for bad_x, size in ((x, (0, 2)), (x[0], (2, 2)), (x, (2,))):
        with pytest.raises(ValueError, match="adaptive_avg_pool2d"):
            adaptive_avg_pool2d_forward(bad_x, size)


def test_mha_with_a_2d_float_mask_and_no_weights_gradient_matches_torch() -> None:
    """Two samples, two heads, an (L, S) float attn_mask, and only the output used (the
    weights get no upstream gradient): nn.MultiheadAttention with the same parameters."""
    rng = np.random.default_rng(7)
    n, length, source, e, h = 2, 3, 4, 4, 2
    net = torch.nn.MultiheadAttention(e, h, batch_first=True, dtype=torch.float64)
    params = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    params["in_proj_bias"] = rng.normal(size=3 * e)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    q, k, v = rng.normal(size=(n, length, e)), *rng.normal(size=(2, n, source, e))
    mask = rng.normal(size=(length, source))
    (y, _), cache = mha_forward(q, k, v, params, num_heads=h, batch_first=True, attn_mask=mask)
    dy = rng.normal(size=y.shape)
    (dq, dk, dv), dparams = mha_backward((dy, None), cache)
    tq, tk, tv = _grad(q), _grad(k), _grad(v)
    ty, _ = net(tq, tk, tv, attn_mask=torch.from_numpy(mask), need_weights=False)
    ty.backward(torch.from_numpy(dy))
    _close(y, ty)
    for mine, theirs in ((dq, tq), (dk, tk), (dv, tv)):
        _close(mine, theirs.grad)
    for name, p in net.named_parameters():
        _close(dparams[name], p.grad)


def test_concat_signature_is_torch_cat_shape_and_refuses_mismatches() -> None:
    """Per-sample shapes (the batch dim left out): dim 1 of the batch is axis 0 here."""
    signature = LAYERS["concat"].signature
    shapes = ((3, 4, 2), (5, 4, 2))
    expected = torch.cat([torch.zeros((1, *s)) for s in shapes], dim=1).shape[1:]
    assert tuple(signature({"dim": 1}, shapes).shape) == tuple(expected)
    with pytest.raises(ValueError, match="agree except along dim"):
        signature({"dim": 1}, ((3, 4, 2), (3, 5, 2)))
    for ranks in (((2, 3), (2, 3, 4)), ((), ())):
        with pytest.raises(ValueError, match="one rank of at least 1"):
            signature({"dim": 1}, ranks)


@pytest.mark.parametrize(("value", "shape"), [
    ([[1.0, 2.0], [3.0, 4.0]], (2, 2)), ([1.0, float("nan")], None), ([1.0, math.inf], None),
    ("ab", None), ({"a": 1.0}, None), ([], None), ([[1.0], [2.0, 3.0]], None)], ids=str)
def test_matrix_shape_accepts_rectangular_lists_of_finite_numbers_only(value, shape) -> None:
    assert matrix_shape(value) == shape


def test_add_of_three_inputs_matches_torch() -> None:
    rng = np.random.default_rng(8)
    xs = [rng.normal(size=(2, 3)) for _ in range(3)]
    y, _ = add_forward(*xs)
    _close(y, sum(torch.from_numpy(x) for x in xs))


def test_default_eps_and_dropout_p_are_torchs() -> None:
    """The ops' own defaults (the registry always passes options explicitly)."""
    rng = np.random.default_rng(9)
    x = rng.normal(size=(2, 4, 3)) * 1e-3  # small: eps matters
    y, _ = layer_norm_forward(x, None, None, normalized_dims=1)
    _close(y, F.layer_norm(torch.from_numpy(x), (3,)))
    y, _ = group_norm_forward(x, None, None, num_groups=2)
    _close(y, F.group_norm(torch.from_numpy(x), 2))
    mask = (rng.random(x.shape) >= 0.5).astype(x.dtype)
    y, _ = dropout_forward(x, mask)
    np.testing.assert_array_equal(y, x * mask / 0.5)  # F.dropout's default p = 0.5


@pytest.mark.parametrize(("options", "field"), [
    ({"kernel_size": 0}, "kernel_size"), ({"kernel_size": 2, "padding": -1}, "padding"),
    ({"kernel_size": 2, "dilation": 0}, "dilation"), ({"kernel_size": 2, "stride": 0}, "stride")],
    ids=str)
def test_pool_errors_name_the_field(options: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field} must be"):
        max_pool_forward(np.ones((1, 1, 4, 4)), **options)


def test_pool_geometry_agrees_with_torch_over_a_grid() -> None:
    """Every 1-d max pool of lengths 3-7 (kernel 2-3, stride and dilation 1-3, padding up to
    half the kernel, both ceil modes): the same output as F.max_pool1d, or a ValueError where
    PyTorch fails or leaves a window with no input position (-inf: the documented refusal)."""
    rng = np.random.default_rng(10)
    for length, k, s, d, ceil in itertools.product(range(3, 8), (2, 3), (1, 2, 3),
                                                   (1, 2, 3), (False, True)):
        for p in range(k // 2 + 1):
            x = rng.normal(size=(1, 1, length))
            case = f"length {length} k {k} s {s} p {p} d {d} ceil {ceil}"
            try:
                expected = F.max_pool1d(torch.from_numpy(x), k, s, p, d, ceil_mode=ceil)
            except RuntimeError:
                expected = None
            if expected is None or bool(torch.isinf(expected).any()):
                with pytest.raises(ValueError):
                    max_pool_forward(x, k, s, p, d, ceil)
                continue
            y, _ = max_pool_forward(x, k, s, p, d, ceil)
            assert y.shape == tuple(expected.shape), case
            _close(y, expected)


@pytest.mark.parametrize(("shape", "start", "end"), [
    ((3, 4, 5), 1, -1), ((3, 4, 5), 2, 3), ((3, 4, 5), 1, 2), ((3, 4, 5), -2, -1), ((6,), 1, 1)])
def test_flatten_signature_and_op_are_torch_flatten(shape, start, end) -> None:
    """Per-sample shapes (the batch of 2 left out) through start_dim/end_dim, as torch.flatten."""
    x = np.random.default_rng(11).normal(size=(2, *shape))
    expected = torch.flatten(torch.from_numpy(x), start, end)
    signature = LAYERS["flatten"].signature({"start_dim": start, "end_dim": end}, (shape,))
    assert tuple(signature.shape) == tuple(expected.shape[1:])
    y, _ = flatten_forward(x, start, end)
    _close(y, expected)


def test_flatten_of_a_scalar_sample_and_of_one_dim() -> None:
    """torch.flatten of a 0-d tensor is (1,); a per-sample scalar flattens to (1,) too."""
    assert tuple(LAYERS["flatten"].signature({}, ((),)).shape) == (1,)
    y, _ = flatten_forward(np.array(3.0))
    _close(y, torch.flatten(torch.tensor(3.0, dtype=torch.float64)))
    x = np.arange(3.0)
    y, _ = flatten_forward(x, -1, -1)
    _close(y, torch.flatten(torch.from_numpy(x), -1, -1))


@pytest.mark.parametrize(("options", "field"), [({"start_dim": 5}, "start_dim"),
                                                ({"end_dim": 9}, "end_dim")], ids=str)
def test_flatten_errors_name_the_option(options: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field} "):
        LAYERS["flatten"].signature(options, ((3, 4),))


@pytest.mark.parametrize("options", [{}, {"stride": 2, "padding": 1}], ids=str)
def test_conv_defaults_are_torchs(options: dict) -> None:
    """The op's own defaults; and padding on the low side only (stride 2 leaves a tail of the
    6-long input unread, so no high-side padding is needed)."""
    rng = np.random.default_rng(12)
    x, w, b = rng.normal(size=(2, 4, 6, 5)), rng.normal(size=(3, 4, 3, 2)), rng.normal(size=3)
    y, _ = conv_forward(x, w, b, **options)
    tx, tw, tb = (torch.from_numpy(t) for t in (x, w, b))
    _close(y, F.conv2d(tx, tw, tb, **options))


@pytest.mark.parametrize(("weight_shape", "groups"), [((4, 1, 3, 3), 2), ((3, 2, 3, 3), 2)],
                         ids=str)
def test_conv_refuses_weights_that_do_not_fit_the_groups(weight_shape, groups) -> None:
    """Four input channels in two groups need weight (O, 2, ...) with O even, as torch says."""
    x = np.ones((1, 4, 5, 5))
    with pytest.raises(RuntimeError):
        F.conv2d(torch.from_numpy(x), torch.zeros(weight_shape, dtype=torch.float64),
                 groups=groups)
    with pytest.raises(ValueError, match=f"^groups {groups}"):
        conv_forward(x, np.zeros(weight_shape), None, groups=groups)


@pytest.mark.parametrize(("options", "field"), [({"stride": 0}, "stride"),
                                                ({"dilation": 0}, "dilation"),
                                                ({"padding": -1}, "padding")], ids=str)
def test_conv_errors_name_the_field(options: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field} must be"):
        conv_forward(np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2)), None, **options)


def test_compare_op_casts_array_options_to_the_run_dtype() -> None:
    """A float64 class-weight array in a float32 run is cast, so both engines see float32."""
    weight = np.array([0.5, 2.0, 1.0])
    record = compare_op("cross_entropy", "float32", {"weight": weight}, shape=(5, 3),
                        target_kind="class_index")
    assert record.passed, record.describe()


def test_compare_op_is_deterministic_and_nan_fails_unless_expected() -> None:
    """Same seed, same inputs (bit for bit the same errors); a NaN in both engines is a
    failure unless the caller says it expects one."""
    first, second = (compare_op("tanh", "float64", seed=5) for _ in range(2))
    assert [t.max_abs_error for t in first.tensors] == [t.max_abs_error for t in second.tensors]
    x = np.array([[np.nan, 1.0], [0.5, -2.0]])
    assert not compare_op("tanh", "float64", x=x).passed
    assert compare_op("tanh", "float64", x=x, equal_nan=True).passed


def test_compare_op_record_names_what_was_compared_and_applies_stage_tolerances() -> None:
    """The record's labels (the report shows them) and a user op's per-stage tolerances."""
    record = compare_op("cross_entropy", "float64", seed=4)
    assert (record.subject, record.kind, record.dtype, record.seed) == (
        "cross_entropy", "loss", "float64", 4)
    assert [t.name for t in record.tensors] == ["forward: output", "backward: input"]
    assert record.options == {"target": OPS["cross_entropy"].targets[0]}
    assert record.tolerance_reason and all(t.manual and t.reference for t in record.tensors)
    assert all(t.manual is None for t in compare_op("tanh", "float64", keep_values=False).tensors)
    assert compare_op("tanh", "float64").kind == "activation"
    assert compare_op("tanh", "float64").options == {}
    x, target = np.ones((2, 3)), np.zeros((2, 3))
    assert compare_op("mse", "float64", x=x, target=target).options == {}  # nothing drawn
    own = dataclasses.replace(OPS["tanh"], name="my_tanh", oracle=Oracle(tolerances={
        "float64:forward": Tolerance(1e-3, 1e-4, "forward reason"),
        "float64:backward": Tolerance(1e-2, 1e-3, "backward reason")}))
    mine = compare_op(own, "float64")
    assert mine.kind == "op"  # a user's op is not "an activation"
    assert [(t.rtol, t.atol) for t in mine.tensors] == [(1e-3, 1e-4), (1e-2, 1e-3)]
    assert mine.tolerance_reason == "backward reason; forward reason"


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_layer_structure_matches_torchs_jacobian(name: str) -> None:
    """A layer declared elementwise has a diagonal Jacobian in PyTorch; rowwise ones couple the
    features of a row (never two rows)."""
    op = OPS[name]
    fn = torch_callable(op)
    x = torch.from_numpy(sampling.op_input(op, (2, 3), np.random.default_rng(13), "float64"))
    jac = torch.autograd.functional.jacobian(fn, x)
    jac = jac.reshape(2, 3, 2, 3)
    across_rows = bool(jac[0, :, 1, :].abs().sum() + jac[1, :, 0, :].abs().sum())
    off_diagonal = any(bool((jac[i, :, i, :] - torch.diag(torch.diagonal(jac[i, :, i, :])))
                            .abs().sum()) for i in range(2))
    assert not across_rows
    assert LAYERS[name].structure == ("rowwise" if off_diagonal else "elementwise")


def test_activation_layers_pass_their_options_and_run_the_registered_pair(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A leaky_relu layer with negative_slope 0.3 is torch's; and the layer runs whatever pair
    ACTIVATIONS holds now (the bug zoo replaces entries there)."""
    x = np.random.default_rng(14).normal(size=(4, 3))
    layer = LAYERS["leaky_relu"]
    y, _, _ = layer.forward((x,), {}, None, None, training=False, negative_slope=0.3)
    _close(y, F.leaky_relu(torch.from_numpy(x), 0.3))
    monkeypatch.setitem(ACTIVATIONS, "tanh", dataclasses.replace(OPS["relu"], name="tanh"))
    y, _, _ = LAYERS["tanh"].forward((x,), {}, None, None, training=False)
    _close(y, torch.relu(torch.from_numpy(x)))
