"""Convolution and pooling layers against PyTorch: every layer x dtype x grid configuration.

Each configuration runs the registry entry's forward/backward (a random upstream gradient)
and the torch builder's module (PyTorch's own kernels) with the same parameters, and compares
the output, the input gradient and every parameter gradient with ``assert_close``'s per-dtype
defaults. Shape inference and the refusals are checked against what torch does with the same
configuration. The conv bug zoo (``reference.zoo.conv``) must fail that same comparison.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from manual.layers import LAYERS, LayerInfo, Sample
from manual.layers.conv import CONV_LAYERS
from manual.spec import DTYPES
from reference.core.engine import resolve
from reference.zoo.conv import CONV_MUTANTS
from reference.zoo.core import Mutant

NAMES = [info.name for info in CONV_LAYERS]
# torch's note that an even kernel with padding "same" copies the input: expected, not a fault
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _samples(name: str, dtype: str, seed: int = 0) -> list[Sample]:
    samples = LAYERS[name].samples
    assert samples is not None
    return list(samples(np.random.default_rng(seed), dtype))


def _builder(info: LayerInfo) -> Any:
    return resolve(info.torch)


def compare_with_torch(info: LayerInfo, sample: Sample, dtype: str, seed: int = 1) -> None:
    """Run ``sample`` through ``info`` and through PyTorch; raise AssertionError on a mismatch.

    Parameters come from the signature's default initialisation (cast to ``dtype``) and are
    copied into the torch module by ``slot.torch``; the upstream gradient is random.
    """
    rng = np.random.default_rng(seed)
    (x,) = sample.inputs
    shapes = (x.shape[1:],)
    signature = info.signature(sample.options, shapes)
    params = {k: slot.init(rng, slot.shape).astype(dtype) for k, slot in
              signature.params.items()}
    given = (x.copy(), {k: v.copy() for k, v in params.items()})
    y, cache, new_state = info.forward((x,), params, {}, {}, training=True, **sample.options)
    assert new_state == {}
    assert y.shape == (x.shape[0], *signature.shape), "signature: inferred output shape"
    dy = rng.normal(size=y.shape).astype(dtype)
    (dx,), dparams = info.backward(dy, cache)
    np.testing.assert_array_equal(x, given[0], err_msg="forward wrote into its input")
    for k, v in params.items():
        np.testing.assert_array_equal(v, given[1][k], err_msg=f"forward wrote into {k}")
    assert set(dparams) == set(params)

    module = _builder(info)(info, sample.options, signature, shapes, TORCH_DTYPES[dtype])
    with torch.no_grad():
        for k, slot in signature.params.items():
            target = functools.reduce(getattr, slot.torch.split("."), module)
            assert target.shape == params[k].shape, f"torch {slot.torch} shape"
            target.copy_(torch.from_numpy(params[k]))
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = module(xt)
    yt.backward(torch.from_numpy(dy))

    def check(what: str, mine: np.ndarray | None, theirs: torch.Tensor | None) -> None:
        assert mine is not None and theirs is not None, what
        torch.testing.assert_close(torch.from_numpy(np.ascontiguousarray(mine)), theirs,
                                   msg=lambda m: f"{what}: {m}")

    check("forward: output", y, yt.detach())
    check("backward: input", dx, xt.grad)
    for k, slot in signature.params.items():
        check(f"backward: {k}", dparams[k],
              functools.reduce(getattr, slot.torch.split("."), module).grad)


CASES = [pytest.param(name, i, dtype, id=f"{name}-{s.name}-{dtype}")
         for name in NAMES for dtype in DTYPES for i, s in enumerate(_samples(name, dtype))]


@pytest.mark.parametrize(("name", "index", "dtype"), CASES)
def test_layer_matches_torch(name: str, index: int, dtype: str) -> None:
    compare_with_torch(LAYERS[name], _samples(name, dtype)[index], dtype)


def test_every_conv_layer_is_registered_with_samples() -> None:
    assert set(NAMES) == {"conv1d", "conv2d", "max_pool1d", "max_pool2d", "avg_pool1d",
                          "avg_pool2d", "adaptive_avg_pool2d"}
    for name in NAMES:
        assert LAYERS[name] is next(i for i in CONV_LAYERS if i.name == name)
        assert len(_samples(name, "float64")) >= 5


def _options(name: str) -> list[dict]:
    return [dict(s.options) for s in _samples(name, "float64")]


def test_grid_reaches_the_configurations_users_get_wrong() -> None:
    conv = _options("conv2d") + _options("conv1d")
    assert any(o.get("padding", 0) == 0 for o in conv)
    assert any(o.get("dilation", 1) != 1 for o in conv)
    assert any(o.get("groups", 1) > 1 for o in conv)
    assert any(o.get("bias", True) is False for o in conv)
    assert any(o.get("padding") == "same" for o in conv)
    assert all(any(s.inputs[0].shape[0] == 1 for s in _samples(n, "float64")) for n in NAMES)
    for name in NAMES:  # a stride that does not divide (padded size - span)
        assert any(_leaves_a_remainder(name, s) for s in _samples(name, "float64")), name
    for name in ("max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d"):
        assert any(_overlapping(o) for o in _options(name)), name
        assert any(o.get("ceil_mode") for o in _options(name)), name


def _overlapping(options: dict) -> bool:
    kernel, stride = options["kernel_size"], options.get("stride")
    kernel = kernel if isinstance(kernel, list) else [kernel]
    stride = kernel if stride is None else (stride if isinstance(stride, list) else [stride])
    return any(s < k for s, k in zip(stride, kernel, strict=False))


def _leaves_a_remainder(name: str, sample: Sample) -> bool:
    o = sample.options
    if "output_size" in o:
        return any(n % m for n, m in zip(sample.inputs[0].shape[2:], LAYERS[name].signature(
            o, (sample.inputs[0].shape[1:],)).shape[1:], strict=True))
    n_dims = sample.inputs[0].ndim - 2
    k = _as_list(o["kernel_size"], n_dims)
    s = _as_list(o.get("stride") or o["kernel_size"], n_dims)
    d = _as_list(o.get("dilation", 1), n_dims)
    p = [0] * n_dims if isinstance(o.get("padding", 0), str) else _as_list(o.get("padding", 0),
                                                                            n_dims)
    return any((n + 2 * pp - dd * (kk - 1) - 1) % ss for n, kk, ss, dd, pp in zip(
        sample.inputs[0].shape[2:], k, s, d, p, strict=True))


def _as_list(value: int | list, n: int) -> list:
    return value if isinstance(value, list) else [value] * n


@pytest.mark.parametrize("name", ["max_pool1d", "max_pool2d"])
def test_max_pool_samples_hold_exact_ties(name: str) -> None:
    """The tie rule is only exercised if some window's maximum occurs more than once."""
    ties = 0
    for sample in _samples(name, "float64"):
        values = _window_values(sample.inputs[0], sample.options)
        ties += int(((values == values.max(axis=-1, keepdims=True)).sum(axis=-1) > 1).sum())
    assert ties > 20


def _window_values(x: np.ndarray, options: Mapping[str, Any]) -> np.ndarray:
    """Every max-pool window's values ``(N, C, *out, prod(kernel))``, read independently.

    The output size is torch's; the input is padded with ``-inf`` (never a maximum).
    """
    n_dims = x.ndim - 2
    fn = F.max_pool1d if n_dims == 1 else F.max_pool2d
    k = _as_list(options["kernel_size"], n_dims)
    s = _as_list(options.get("stride") or options["kernel_size"], n_dims)
    p = _as_list(options.get("padding", 0), n_dims)
    d = _as_list(options.get("dilation", 1), n_dims)
    out = fn(torch.from_numpy(x), k, s, p, d, options.get("ceil_mode", False)).shape[2:]
    spans = [dd * (kk - 1) + 1 for kk, dd in zip(k, d, strict=True)]
    xp = np.pad(x, [(0, 0), (0, 0), *((pp, pp + span) for pp, span in zip(p, spans,
                                                                          strict=True))],
                constant_values=-np.inf)
    view = np.lib.stride_tricks.sliding_window_view(xp, spans, axis=tuple(range(2, 2 + n_dims)))
    view = view[(slice(None), slice(None), *(slice(0, ss * (n - 1) + 1, ss)
                                             for ss, n in zip(s, out, strict=True)),
                 *(slice(None, None, dd) for dd in d))]
    return view.reshape(*view.shape[:2 + n_dims], -1)


# ---- shape inference and refusals ---------------------------------------------------------

def _torch_output_shape(name: str, options: dict, shape: tuple) -> tuple | None:
    """The per-sample output shape torch gives, or None if torch refuses the configuration."""
    info = LAYERS[name]
    try:
        module = _builder(info)(info, options, None, (shape,), torch.float64)
        return tuple(module(torch.zeros((2, *shape), dtype=torch.float64)).shape[1:])
    except (RuntimeError, ValueError, TypeError):
        return None


# (layer, options, per-sample input shape, part of the message, torch refuses it too)
REFUSALS = [
    ("conv2d", {"out_channels": 2, "kernel_size": 5}, (1, 3, 3),
     "kernel span (5, 5) (kernel_size (5, 5), dilation (1, 1)) is larger than the padded "
     "input (3, 3)", True),
    ("conv2d", {"out_channels": 2, "kernel_size": 3, "dilation": 2, "padding": 1}, (1, 2, 4),
     "kernel span (5, 5) (kernel_size (3, 3), dilation (2, 2)) is larger than the padded "
     "input (4, 6)", True),
    ("conv2d", {"out_channels": 2, "kernel_size": 3, "groups": 2}, (3, 5, 5),
     "groups 2 must divide both in_channels 3 and out_channels 2", True),
    ("conv2d", {"out_channels": 3, "kernel_size": 3, "groups": 2}, (4, 5, 5),
     "groups 2 must divide both in_channels 4 and out_channels 3", True),
    ("conv2d", {"out_channels": 2, "kernel_size": 3, "stride": 0}, (1, 5, 5),
     "stride must be at least 1, got 0", True),
    ("conv1d", {"out_channels": 2, "kernel_size": 3, "dilation": 0}, (1, 5),
     "dilation must be at least 1, got 0", True),
    ("conv2d", {"out_channels": 2, "kernel_size": 3, "padding": -1}, (1, 5, 5),
     "padding must be at least 0, got -1", True),
    ("conv2d", {"out_channels": 2, "kernel_size": 3, "padding": "same", "stride": 2},
     (1, 5, 5), "padding 'same' needs stride 1, got stride (2, 2)", True),
    ("conv2d", {"out_channels": 2, "kernel_size": 3, "padding": "full"}, (1, 5, 5),
     "padding must be an integer, a list of 2 integers, 'same' or 'valid', got 'full'", True),
    ("conv2d", {"out_channels": 2, "kernel_size": [3]}, (1, 5, 5),
     "kernel_size must be an integer or a list of 2 integers, got [3]", None),
    ("conv2d", {"out_channels": 2, "kernel_size": 3}, (1, 5),
     "needs inputs of shape (C, H, W) per sample, got shape (1, 5)", None),
    ("conv2d", {"out_channels": 2, "kernel_size": 3, "in_channels": 4}, (3, 5, 5),
     "in_channels is 4, but the input has 3 channels", None),
    # deliberate: PyTorch supports the other padding modes; this engine does not
    ("conv2d", {"out_channels": 2, "kernel_size": 3, "padding_mode": "reflect"}, (1, 5, 5),
     "padding_mode 'reflect' is not supported (only 'zeros')", False),
    ("max_pool2d", {"kernel_size": 3, "padding": 2}, (1, 6, 6),
     "padding (2, 2) must be at most half of kernel_size (3, 3)", True),
    ("max_pool2d", {"kernel_size": 4}, (1, 3, 3),
     "input size (3, 3) with kernel_size (4, 4), stride (4, 4), padding (0, 0), dilation "
     "(1, 1) gives output size (0, 0): too small", True),
    ("max_pool1d", {"kernel_size": 2, "stride": 0}, (1, 6), "stride must be at least 1", True),
    ("avg_pool2d", {"kernel_size": 2, "padding": 2}, (1, 6, 6),
     "padding (2, 2) must be at most half of kernel_size (2, 2)", True),
    ("avg_pool2d", {"kernel_size": 2, "divisor_override": 0}, (1, 6, 6),
     "divisor_override must be a nonzero integer or null, got 0", True),
    ("avg_pool1d", {"kernel_size": 5}, (1, 4), "gives output size (0,): too small", True),
    ("adaptive_avg_pool2d", {"output_size": [2, 2, 2]}, (1, 6, 6),
     "output_size must be a positive integer or a list of 2 positive integers or nulls", None),
    # deliberate: PyTorch returns -inf for a window of padding only and sends its gradient
    # to an unrelated input position
    ("max_pool1d", {"kernel_size": 2, "stride": 3, "padding": 1, "dilation": 2}, (1, 1),
     "dilation (2,) with padding (1,) leaves a window of input size (1,) with no input "
     "position in it", False),
]


@pytest.mark.parametrize(("name", "options", "shape", "message", "torch_refuses"), REFUSALS,
                         ids=[f"{r[0]}-{r[3][:30]}" for r in REFUSALS])
def test_signature_refuses_naming_the_numbers(name: str, options: dict, shape: tuple,
                                              message: str, torch_refuses: bool | None
                                              ) -> None:
    with pytest.raises(ValueError) as error:
        LAYERS[name].signature(options, (shape,))
    assert message in str(error.value)
    assert "\n" not in str(error.value)
    if torch_refuses is not None:
        assert (_torch_output_shape(name, options, shape) is None) == torch_refuses


def _random_config(rng: np.random.Generator, name: str) -> tuple[dict, tuple]:
    n_dims = 1 if name.endswith("1d") else 2
    pick = lambda low, high: int(rng.integers(low, high))  # noqa: E731
    size = tuple(pick(1, 10) for _ in range(n_dims))
    kernel = [pick(1, 5) for _ in range(n_dims)]
    options: dict = {"kernel_size": kernel, "stride": [pick(1, 4) for _ in range(n_dims)]}
    if name.startswith("conv"):
        groups = pick(1, 3)
        options.update(out_channels=2 * groups, groups=groups,
                       padding=[pick(0, 3) for _ in range(n_dims)],
                       dilation=[pick(1, 3) for _ in range(n_dims)])
        return options, (2 * groups, *size)
    options["padding"] = [pick(0, k // 2 + 1) for k in kernel]
    options["ceil_mode"] = bool(pick(0, 2))
    if name.startswith("max"):
        options["dilation"] = [pick(1, 3) for _ in range(n_dims)]
    else:
        options["count_include_pad"] = bool(pick(0, 2))
    return options, (2, *size)


@pytest.mark.parametrize("name", ["conv1d", "conv2d", "max_pool1d", "max_pool2d", "avg_pool1d",
                                  "avg_pool2d"])
def test_inferred_shapes_and_refusals_agree_with_torch(name: str) -> None:
    """Random geometries (ceil mode, dilation, padding, strides): same shape or both refuse."""
    rng = np.random.default_rng(11)
    agreed = 0
    for _ in range(150):
        options, shape = _random_config(rng, name)
        theirs = _torch_output_shape(name, options, shape)
        try:
            mine = LAYERS[name].signature(options, (shape,)).shape
        except ValueError as error:
            if "no input position" in str(error):  # the deliberate refusal above
                continue
            mine = None
        assert mine == theirs, (options, shape)
        agreed += theirs is not None
    assert agreed > 50


@pytest.mark.parametrize(("output_size", "shape", "expected"), [
    (3, (2, 7, 5), (2, 3, 3)), ([None, 2], (2, 5, 7), (2, 5, 2)), ([5, 4], (1, 3, 3), (1, 5, 4)),
])
def test_adaptive_output_shape(output_size: object, shape: tuple, expected: tuple) -> None:
    options = {"output_size": output_size}
    assert LAYERS["adaptive_avg_pool2d"].signature(options, (shape,)).shape == expected
    assert _torch_output_shape("adaptive_avg_pool2d", options, shape) == expected


# ---- default initialisation ---------------------------------------------------------------

@pytest.mark.parametrize(("name", "options", "shape", "fan_in"), [
    ("conv2d", {"out_channels": 64, "kernel_size": 3, "groups": 2}, (8, 6, 6), 4 * 9),
    ("conv1d", {"out_channels": 256, "kernel_size": 5}, (3, 9), 3 * 5),
])
def test_default_init_is_pytorchs(name: str, options: dict, shape: tuple, fan_in: int) -> None:
    r"""kaiming_uniform(a=sqrt(5)) and the bias both draw from U(+-1/sqrt(fan_in)), fan_in
    with the receptive field: the largest |value| of many draws sits just under the bound, in
    both engines."""
    bound = 1 / math.sqrt(fan_in)
    signature = LAYERS[name].signature(options, (shape,))
    rng = np.random.default_rng(3)
    with torch.random.fork_rng():  # torch's draws from a seed of their own: deterministic
        torch.manual_seed(3)
        module = _builder(LAYERS[name])(LAYERS[name], options, signature, (shape,),
                                        torch.float64)
    for slot_name, slot in signature.params.items():
        mine = slot.init(rng, slot.shape)
        theirs = getattr(module, slot.torch).detach().numpy()
        assert mine.shape == theirs.shape == slot.shape
        spread = 0.9 if slot_name == "bias" else 0.99
        for values in (mine, theirs):
            assert spread * bound < np.abs(values).max() <= bound, slot_name
            # The mean of n draws of U(-b, b) has standard error b / sqrt(3 n): 5 of them.
            assert abs(values.mean()) < 5 * bound / math.sqrt(3 * values.size), slot_name


# ---- max pooling at NaN and -inf -----------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_nan_and_negative_infinity_as_pytorch(dtype: str) -> None:
    """NaN propagates as the maximum and its LAST occurrence takes the gradient; a window of
    -inf sends it to its first real position (padding never wins)."""
    x = np.array([[[1.0, np.nan, 3.0, np.nan, 2.0, -np.inf, -np.inf, -np.inf]]], dtype=dtype)
    x2 = np.stack([x, x[..., ::-1]], axis=2)  # (1, 1, 2, 8)
    cases: list[tuple[str, np.ndarray, dict[str, Any]]] = [
        ("max_pool1d", x, {"kernel_size": 4, "stride": 2, "padding": 1}),
        ("max_pool2d", x2, {"kernel_size": [2, 3], "stride": [1, 2], "padding": [1, 1]})]
    for name, inputs, options in cases:
        info = LAYERS[name]
        y, cache, _ = info.forward((inputs,), {}, {}, {}, training=True, **options)
        dy = np.random.default_rng(0).normal(size=y.shape).astype(dtype)
        (dx,), _ = info.backward(dy, cache)
        xt = torch.from_numpy(inputs.copy()).requires_grad_()
        fn = F.max_pool1d if name == "max_pool1d" else F.max_pool2d
        yt = fn(xt, **options)
        yt.backward(torch.from_numpy(dy))
        assert np.isnan(y).any() and np.isneginf(y).any()
        torch.testing.assert_close(torch.from_numpy(y), yt.detach(), equal_nan=True)
        torch.testing.assert_close(torch.from_numpy(np.ascontiguousarray(dx)), xt.grad)


# ---- the bug zoo --------------------------------------------------------------------------

def _killed(mutant_layer: str) -> list[str]:
    failures = []
    for sample in _samples(mutant_layer, "float64", seed=5):
        try:
            compare_with_torch(LAYERS[mutant_layer], sample, "float64")
        except (AssertionError, ValueError, IndexError, RuntimeError) as error:
            failures.append(f"{sample.name}: {type(error).__name__}")
    return failures


@pytest.mark.parametrize("mutant", CONV_MUTANTS, ids=[m.name for m in CONV_MUTANTS])
def test_conformance_kills_conv_mutant(mutant: Mutant) -> None:
    (layer,) = mutant.ops
    original = LAYERS[layer]
    with mutant.inject():
        assert LAYERS[layer] is not original
        failures = _killed(layer)
    assert LAYERS[layer] is original
    assert failures, f"{mutant.name} survived every {layer} sample"


def test_zoo_covers_the_issues_bug_classes() -> None:
    assert len(CONV_MUTANTS) >= 8
    assert len({m.name for m in CONV_MUTANTS}) == len(CONV_MUTANTS)
    assert {m.ops[0] for m in CONV_MUTANTS} >= {"conv2d", "max_pool2d", "avg_pool2d"}


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_non_finite_upstream_reaches_only_the_winners(dtype: str) -> None:
    """An infinite or NaN upstream gradient goes to its window's winner and nowhere else."""
    rng = np.random.default_rng(4)
    x = rng.integers(-2, 3, size=(2, 2, 6, 6)).astype(dtype)
    options = {"kernel_size": 3, "stride": 2, "padding": 1}
    y, cache, _ = LAYERS["max_pool2d"].forward((x,), {}, {}, {}, training=True, **options)
    dy = rng.normal(size=y.shape).astype(dtype)
    dy[0, 0, 1, 1], dy[1, 1, 0, 2] = np.inf, np.nan
    (dx,), _ = LAYERS["max_pool2d"].backward(dy, cache)
    assert dx is not None
    xt = torch.from_numpy(x).requires_grad_()
    F.max_pool2d(xt, kernel_size=3, stride=2, padding=1).backward(torch.from_numpy(dy))
    assert np.isnan(dx).sum() == 1 and np.isinf(dx).sum() == 1
    torch.testing.assert_close(torch.from_numpy(np.ascontiguousarray(dx)), xt.grad,
                               equal_nan=True)
