"""Shapes and values a loss accepts, on inputs of any rank, checked once at the boundary.

PyTorch's class axis is dim 1: ``cross_entropy`` and ``nll`` take input ``(N, C, d1, ...)``
(or unbatched ``(C,)``) with class-index targets ``(N, d1, ...)`` (``()`` unbatched), and
``cross_entropy`` also probability targets of the input's shape. The binary losses take a
target of the input's shape; ``weight`` / ``pos_weight`` broadcast against it.

Every check raises a one-line ``ValueError`` naming the loss and the shapes (callers put
the node in front). :func:`validate_target` is the whole check of a data file's ``y``
against the output of a network; the loss forwards call the cheaper shape checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from manual.registry import OpInfo

DEFAULT_IGNORE_INDEX = -100


def index_target_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The class-index target's shape for an input of ``shape``: dim 1 (the classes) removed."""
    return () if len(shape) == 1 else (shape[0], *shape[2:])


def num_classes(shape: tuple[int, ...]) -> int:
    return shape[0] if len(shape) == 1 else shape[1]


def check_input(loss: str, shape: tuple[int, ...], classes: bool = False) -> None:
    """Refuse input shapes the losses do not support: empty, or (for a loss over ``classes``)
    no class axis."""
    if classes and not shape:
        raise ValueError(f"{loss}: input must have a class dimension ((C,) or (N, C, ...)), got "
                         f"shape ()")
    if 0 in shape:
        raise ValueError(f"{loss}: input of shape {shape} is empty")


def check_class_weight(loss: str, weight: NDArray[Any] | None, classes: int) -> None:
    if weight is not None and weight.shape != (classes,):
        raise ValueError(f"{loss}: weight must have one entry per class, shape ({classes},), "
                         f"got {weight.shape}")


def check_broadcast(loss: str, name: str, value: NDArray[Any] | None,
                    shape: tuple[int, ...]) -> None:
    """``value`` must broadcast to ``shape`` without changing it (as PyTorch requires)."""
    if value is None:
        return
    try:
        broadcast = np.broadcast_shapes(value.shape, shape)
    except ValueError:
        broadcast = ()
    if broadcast != shape:
        raise ValueError(f"{loss}: {name} of shape {value.shape} does not broadcast to the input "
                         f"shape {shape}")


def check_index_shape(loss: str, shape: tuple[int, ...], target: NDArray[Any]) -> None:
    """A class-index target has the input's shape without dim 1 (the classes)."""
    want = index_target_shape(shape)
    if target.shape != want:
        raise ValueError(f"{loss}: class-index target must have shape {want} for input "
                         f"{shape} (classes on dim {0 if len(shape) == 1 else 1}), got "
                         f"{target.shape}")


def check_class_target(loss: str, shape: tuple[int, ...], target: NDArray[Any],
                       ignore_index: int, probabilities_allowed: bool) -> bool:
    """Check a class target against an input of ``shape``; True for class indices."""
    classes = num_classes(shape)
    if target.dtype.kind in "iu":
        check_index_shape(loss, shape, target)
        outside = (target != ignore_index) & ((target < 0) | (target >= classes))
        if np.any(outside):
            bad = target[outside].reshape(-1)[0]
            raise ValueError(f"{loss}: class index {bad} is out of range [0, {classes - 1}] "
                             f"(ignore_index {ignore_index})")
        return True
    if not probabilities_allowed:
        raise ValueError(f"{loss}: target must be class indices (integers), got {target.dtype}")
    if target.shape != shape:
        raise ValueError(f"{loss}: probability target must have the input's shape {shape}, got "
                         f"{target.shape}")
    if ignore_index >= 0:
        raise ValueError(f"{loss}: ignore_index ({ignore_index}) is not supported with "
                         f"probability targets (as in PyTorch)")
    return False


def as_array(value: object, what: str) -> NDArray[Any]:
    """``value`` as a finite numeric array, or a one-line error naming ``what``."""
    try:
        array = np.asarray(value)
    except ValueError:
        array = np.asarray(None, dtype=object)
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{what}: must be a number or a rectangular array of numbers")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what}: contains NaN or infinity")
    return array


def validate_target(op: OpInfo, options: Mapping[str, Any], output_shape: tuple[int, ...],
                    y_raw: object, dtype: str) -> NDArray[Any]:
    """Check a data file's target ``y`` against a network output of ``output_shape`` (batch
    first) for the loss ``op``, by the target kinds it accepts; return it cast (class indices
    as int64, others in ``dtype``)."""
    loss, kinds = op.name, op.targets
    y = as_array(y_raw, "data.y")
    check_input(loss, output_shape, classes="class_index" in kinds)
    if "class_index" in kinds:
        return _class_target(loss, options, output_shape, y, dtype,
                             probabilities="class_probability" in kinds)
    if y.shape != output_shape:
        raise ValueError(f"data.y: {loss} needs a target shaped like the output, "
                         f"{output_shape}, got {y.shape}")
    if "probability" in kinds:
        _in_unit_interval(y, loss)
    logs = options.get("log_target", False)  # a distribution given as log-probabilities
    if "distribution" in kinds and not logs and y.size and y.min() < 0:
        raise ValueError(f"data.y: {loss} needs non-negative probabilities as target "
                         f"(or set log_target), found negative values")
    return y.astype(dtype)


def _class_target(loss: str, options: Mapping[str, Any], output_shape: tuple[int, ...],
                  y: NDArray[Any], dtype: str, probabilities: bool) -> NDArray[Any]:
    """Indices ``(N, d1, ...)`` or, where the loss takes ``probabilities`` (cross_entropy),
    probabilities of the output's shape.

    A data file cannot tell 1 from 1.0 reliably, so the shape decides: a target of the
    output's shape is probabilities (a one-hot written with integers included).
    """
    ignore = options.get("ignore_index", DEFAULT_IGNORE_INDEX)
    where = f"data.y: {loss}"
    if probabilities and y.shape == output_shape:
        y = y.astype(dtype)
        check_class_target(where, output_shape, y, ignore, True)
        _in_unit_interval(y, loss)
        return y
    if y.dtype.kind == "f":
        alternative = (f" (or probabilities of the output's shape {output_shape})"
                       if probabilities else "")
        raise ValueError(f"{where} class indices must be integers of shape "
                         f"{index_target_shape(output_shape)}{alternative}, got {y.dtype} of "
                         f"shape {y.shape}")
    check_index_shape(where, output_shape, y)
    classes = num_classes(output_shape)
    kept = y[y != ignore]
    if kept.size and (kept.min() < 0 or kept.max() >= classes):
        raise ValueError(f"{where} class indices must lie in [0, {classes - 1}] (the output "
                         f"has {classes} classes; ignore_index {ignore}), found "
                         f"{kept.min()}..{kept.max()}")
    return y.astype(np.int64)


def _in_unit_interval(y: NDArray[Any], loss: str) -> None:
    if y.size and (y.min() < 0 or y.max() > 1):
        raise ValueError(f"data.y: {loss} needs probabilities in [0, 1], found values in "
                         f"[{y.min():g}, {y.max():g}]")
