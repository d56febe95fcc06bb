"""Losses on inputs of any rank, with class weights, ignore_index and pos_weight, vs PyTorch.

The class axis is dim 1 (``(N, C, d1, ...)``), or dim 0 for an unbatched ``(C,)`` input.
Every case runs through :func:`reference.core.compare.compare_op` (output and input gradient,
random upstream gradient for ``reduction="none"``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from manual import targets
from manual.data import make_data
from manual.options import Values
from manual.parse import parse_spec
from manual.registry import LOSSES, OPS
from manual.spec import DTYPES
from reference.core.compare import compare_network, compare_op

REDUCTIONS = ("mean", "sum", "none")


def _index(rng: np.random.Generator, shape: tuple[int, ...], classes: int,
           ignored: int | None = None) -> np.ndarray:
    t = rng.integers(0, classes, size=shape).astype(np.int64)
    if ignored is not None and t.size:
        t.reshape(-1)[:: 3] = ignored  # every third position hits ignore_index
    return t


def _all_ignored(target: np.ndarray, options: dict[str, Any]) -> bool:
    """A mean over class-index targets that are all ignore_index: 0/0, NaN in PyTorch."""
    return (options.get("reduction", "mean") == "mean" and target.dtype.kind in "iu"
            and "ignore_index" in options and bool(np.all(target == options["ignore_index"])))


def _check(op: str, x: np.ndarray, target: np.ndarray, options: dict[str, Any], dtype: str,
           seed: int = 0) -> None:
    # NaN agrees with NaN only where it is expected (and then it must be there).
    expect_nan = _all_ignored(target, options)
    record = compare_op(op, dtype, options, x=x.astype(dtype), target=target, seed=seed,
                        equal_nan=expect_nan)
    failed = [(t.name, t.problem, t.tolerance_ratio) for t in record.tensors if not t.passed]
    assert record.passed, failed
    if expect_nan:
        assert np.isnan(LOSSES[op].forward(x.astype(dtype), target, **options)[0])


CE_SHAPES = [(5, 3), (3, 3, 6), (2, 3, 4, 5), (3,)]  # three classes (dim 1, or 0 unbatched)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
@pytest.mark.parametrize("options", [
    {}, {"weight": [0.5, 2.0, 1.0]}, {"ignore_index": 1},
    {"weight": [0.5, 2.0, 1.0], "ignore_index": 2, "label_smoothing": 0.2},
    {"label_smoothing": 0.1, "ignore_index": 0},
], ids=["plain", "weight", "ignore", "weight-ignore-smoothing", "smoothing-ignore"])
def test_cross_entropy_and_nll_index_targets(shape: tuple[int, ...], options: dict, dtype: str,
                                              reduction: str) -> None:
    rng = np.random.default_rng(len(shape))
    x = rng.normal(0, 2, size=shape)
    classes = targets.num_classes(shape)
    ignore = options.get("ignore_index")
    t = _index(rng, targets.index_target_shape(shape), classes, ignore)
    _check("cross_entropy", x, t, {**options, "reduction": reduction}, dtype)
    nll_options = {k: v for k, v in options.items() if k != "label_smoothing"}
    log_p = x - np.log(np.sum(np.exp(x), axis=0 if len(shape) == 1 else 1, keepdims=True))
    _check("nll", log_p, t, {**nll_options, "reduction": reduction}, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_weight_and_ignore_index_on_n_c_l(dtype: str) -> None:
    """The issue's acceptance case: (N, C, L) input, class weights and ignore_index hits."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(6, 5, 9))
    t = _index(rng, (6, 9), 5, ignored=3)
    for reduction in REDUCTIONS:
        _check("cross_entropy", x, t, {"weight": [1.0, 0.2, 3.0, 0.7, 1.5], "ignore_index": 3,
                                       "reduction": reduction}, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
@pytest.mark.parametrize("options", [
    {}, {"weight": [0.5, 2.0, 1.0]}, {"label_smoothing": 0.3},
    {"weight": [1.0, 0.1, 2.0], "label_smoothing": 0.1, "reduction": "sum"},
    {"reduction": "none", "ignore_index": -5},
], ids=["plain", "weight", "smoothing", "weight-smoothing-sum", "none-negative-ignore"])
def test_cross_entropy_probability_targets(shape: tuple[int, ...], options: dict,
                                           dtype: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0, 2, size=shape)
    axis = 0 if len(shape) == 1 else 1
    z = np.exp(rng.normal(size=shape))
    normalised = (z / z.sum(axis=axis, keepdims=True)).astype(dtype)
    multi_label = rng.uniform(0, 1, size=shape).astype(dtype)  # rows do not sum to 1
    for t in (normalised, multi_label):
        _check("cross_entropy", x, t, options, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_target_ignored_gives_nan_as_pytorch(dtype: str) -> None:
    x = np.random.default_rng(0).normal(size=(3, 4, 2))
    t = np.full((3, 2), 1, np.int64)
    _check("cross_entropy", x, t, {"ignore_index": 1}, dtype)
    _check("nll", x, t, {"ignore_index": 1, "weight": [1.0, 2.0, 3.0, 4.0]}, dtype)
    loss, _ = LOSSES["cross_entropy"].forward(x.astype(dtype), t, ignore_index=1)
    assert np.isnan(loss)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "weight", "pos_weight"), [
    ((5, 3), [0.5, 1.0, 2.0], [3.0, 0.5, 1.0]),
    ((2, 3, 4), [[1.0], [0.5], [2.0]], [0.5, 1.0, 2.0, 4.0]),
    ((2, 3, 4, 2), None, [[2.0, 0.5]]),
    ((6,), 0.5, None),
], ids=["(N, C)", "(N, C, L)", "(N, C, H, W)", "(N,)"])
def test_binary_losses_with_weights(shape: tuple[int, ...], weight: Any, pos_weight: Any,
                                    dtype: str, reduction: str) -> None:
    rng = np.random.default_rng(5)
    t = rng.uniform(0, 1, size=shape).astype(dtype)
    weights = {} if weight is None else {"weight": weight if isinstance(weight, list)
                                         else [weight]}
    _check("bce", rng.uniform(0.02, 0.98, size=shape), t,
           {**weights, "reduction": reduction}, dtype)
    positive = {} if pos_weight is None else {"pos_weight": pos_weight}
    _check("bce_with_logits", rng.normal(0, 3, size=shape), t,
           {**weights, **positive, "reduction": reduction}, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize(("shape", "dim"), [((3, 4, 5), 1), ((3, 4, 5), -1), ((4, 6), 0),
                                            ((2, 3, 4, 5), -3)])
def test_softmax_takes_dim(op: str, shape: tuple[int, ...], dim: int, dtype: str) -> None:
    x = np.random.default_rng(1).normal(0, 3, size=shape)
    record = compare_op(op, dtype, {"dim": dim}, x=x.astype(dtype))
    assert record.passed, [(t.name, t.tolerance_ratio) for t in record.tensors]


def test_softmax_dim_changes_the_result() -> None:
    """Guards the test above: a dim that is ignored would pass it for dim = -1 only."""
    x = np.random.default_rng(2).normal(size=(3, 4, 5))
    assert not np.allclose(OPS["softmax"].forward(x, dim=1)[0], OPS["softmax"].forward(x)[0])


# ---- refusals at the boundary ------------------------------------------------------------

REFUSALS = [
    ("cross_entropy", (0, 3), np.zeros(0, np.int64), {}, r"input of shape \(0, 3\) is empty$"),
    ("nll", (2, 0, 4), np.zeros((2, 4), np.int64), {}, r"input of shape \(2, 0, 4\) is empty"),
    ("bce", (0,), np.zeros(0), {}, r"bce: input of shape \(0,\) is empty"),
    ("cross_entropy", (), np.zeros((), np.int64), {}, "must have a class dimension"),
    ("cross_entropy", (3, 4, 5), np.zeros((3, 4), np.int64), {},
     r"class-index target must have shape \(3, 5\) for input \(3, 4, 5\) \(classes on dim 1\)"),
    ("cross_entropy", (3, 4), np.array([0, 4, 1]), {},
     r"class index 4 is out of range \[0, 3\] \(ignore_index -100\)"),
    ("nll", (3, 4), np.array([0, -7, 1]), {}, "class index -7 is out of range"),
    ("cross_entropy", (3, 4), np.array([0, 1, 1]), {"weight": [1.0, 2.0, 3.0]},
     r"weight must have one entry per class, shape \(4,\), got \(3,\)"),
    ("cross_entropy", (3, 4), np.zeros((3, 5)), {}, "probability target must have the input's"),
    ("cross_entropy", (3, 4), np.zeros((3, 4)), {"ignore_index": 0},
     "ignore_index .0. is not supported with probability targets"),
    ("nll", (3, 4), np.zeros((3, 4)), {}, "target must be class indices"),
    ("bce_with_logits", (3, 4), np.zeros((3, 4)), {"pos_weight": [1.0, 2.0, 3.0]},
     r"pos_weight of shape \(3,\) does not broadcast to the input shape \(3, 4\)"),
    ("bce", (3, 4), np.zeros((3, 4)), {"weight": [[[1.0]]]}, "does not broadcast"),
]


@pytest.mark.parametrize(("loss", "shape", "target", "options", "message"), REFUSALS,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(REFUSALS)])
def test_loss_refuses_at_first_call(loss: str, shape: tuple[int, ...], target: np.ndarray,
                                    options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        LOSSES[loss].forward(np.full(shape, 0.5), target, **options)
    assert "\n" not in str(error.value)


def test_values_option() -> None:
    option = Values()
    assert option.check(None) is None and option.check([1.0, 2]) is None
    assert option.check([[1.0], [2.0]]) is None
    assert "non-empty list" in (option.check([]) or "")
    assert "finite numbers" in (option.check([1.0, float("nan")]) or "")
    assert "finite numbers" in (option.check([True]) or "")


def _spec(loss: dict) -> dict:
    return {"input_shape": [3], "layers": [{"type": "linear", "out_features": 4}],
            "loss": loss}


def test_spec_accepts_weights_and_refuses_bad_ones() -> None:
    spec = parse_spec(_spec({"type": "cross_entropy", "weight": [1, 2, 3, 4],
                             "ignore_index": 0}))
    assert spec.loss.options["weight"] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"weight must be a \(nested\) list of finite"):
        parse_spec(_spec({"type": "nll", "weight": ["a"]}))
    with pytest.raises(ValueError, match="ignore_index must be an integer"):
        parse_spec(_spec({"type": "nll", "ignore_index": 1.5}))


# ---- data targets of any rank (manual.targets.validate_target) -----------------------------

def test_validate_target_any_rank() -> None:
    ce = LOSSES["cross_entropy"]
    y = targets.validate_target(ce, {}, (2, 3, 4), [[0, 1, 2, 0]] * 2, "float32")
    assert y.dtype == np.int64 and y.shape == (2, 4)
    y = targets.validate_target(LOSSES["cross_entropy"], {"ignore_index": -1}, (2, 3),
                                [2, -1], "float32")
    assert y.tolist() == [2, -1]
    y = targets.validate_target(LOSSES["cross_entropy"], {}, (1, 2), [[0.25, 0.5]], "float32")
    assert y.dtype == np.float32
    with pytest.raises(ValueError, match=r"nll class indices must be integers of shape \(2,\)"):
        targets.validate_target(LOSSES["nll"], {}, (2, 3), [0.0, 1.0], "float64")
    with pytest.raises(ValueError, match=r"needs probabilities in \[0, 1\]"):
        targets.validate_target(LOSSES["bce"], {}, (1, 2), [[0.5, 1.5]], "float64")
    with pytest.raises(ValueError, match="is empty"):
        targets.validate_target(LOSSES["mse"], {}, (0, 2), np.zeros((0, 2)), "float64")


# ---- data files: the class axis of a network's output is dim 1 ------------------------------

def _conv_spec(loss: dict, dtype: str, head: list[dict] | None = None) -> Any:
    """A one-conv graph whose output is (N, 3, 5): three classes at five positions."""
    nodes = [{"name": "conv", "type": "conv1d", "inputs": ["x"], "out_channels": 3,
              "kernel_size": 3, "padding": 1}, *(head or [])]
    return parse_spec({"inputs": {"x": {"shape": [2, 5]}}, "nodes": nodes, "loss": loss,
                       "dtype": dtype})


@pytest.mark.parametrize("dtype", DTYPES)
def test_data_file_targets_on_dim_1_agree_with_torch(dtype: str) -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 2, 5)).tolist()
    y = _index(rng, (4, 5), 3, ignored=2).tolist()
    spec = _conv_spec({"type": "cross_entropy", "weight": [0.5, 2.0, 1.0], "ignore_index": 2},
                      dtype)
    data = make_data(spec, x, y)
    assert data.y.dtype == np.int64 and data.y.shape == (4, 5)
    assert compare_network(spec, data).passed
    nll = _conv_spec({"type": "nll", "reduction": "sum"}, dtype,
                     [{"name": "logp", "type": "log_softmax", "inputs": ["conv"], "dim": 1}])
    record = compare_network(nll, make_data(nll, x, _index(rng, (4, 5), 3).tolist()))
    assert record.passed, record.first_divergence


def test_data_file_probability_targets_and_refusals() -> None:
    spec = _conv_spec({"type": "cross_entropy"}, "float64")
    x = np.zeros((2, 2, 5)).tolist()
    one_hot = np.eye(3, dtype=np.int64)[[[0, 1, 2, 0, 1]] * 2].transpose(0, 2, 1)
    data = make_data(spec, x, one_hot.tolist())  # integers of the output's shape: probabilities
    assert data.y.dtype == np.float64 and data.y.shape == (2, 3, 5)
    with pytest.raises(ValueError, match=r"data.y: cross_entropy class indices must lie in "
                                         r"\[0, 2\] \(the output has 3 classes"):
        make_data(spec, x, [[0, 1, 2, 3, 0]] * 2)
    with pytest.raises(ValueError, match=r"class-index target must have shape \(2, 5\) for "
                                         r"input \(2, 3, 5\) \(classes on dim 1\), got \(2,\)"):
        make_data(spec, x, [0, 1])
    with pytest.raises(ValueError, match=r"class indices must be integers of shape \(2, 5\) "
                                         r"\(or probabilities of the output's shape"):
        make_data(spec, x, [[0.5] * 5] * 2)
    ignoring = _conv_spec({"type": "nll", "ignore_index": 7}, "float64",
                          [{"name": "logp", "type": "log_softmax", "inputs": ["conv"], "dim": 1}])
    assert make_data(ignoring, x, [[7, 0, 1, 2, 7]] * 2).y[0, 0] == 7
