r"""A user's whole model, not a spec: its loss and every gradient against a PyTorch twin.

Two conventions for the user's side, both returning the loss and a dict of gradients by
parameter name:

- an object with a ``params`` dict and ``loss(X, y) -> (loss, grads)`` (the course's
  ``TwoLayerNet``, ``FullyConnectedNet``);
- any callable ``model(X, y) -> (loss, grads)``, with its parameter arrays given as
  ``params`` (the seed's forward/backward functions, a micrograd MLP read out by name).

The twin is PyTorch's loss from the *same* parameters:

- a callable ``torch(p, X, y)`` on a dict of tensors by the user's names (requires grad),
  or
- an ``nn.Module`` with ``mapping`` from the user's names to its parameter names (a
  ``.T`` suffix for a transposed layout: the course's ``W1`` (D, H) is
  ``"0.weight.T"`` of an ``nn.Linear``), whose output ``loss(out, y)`` turns into the loss.
  Every parameter of the module must be mapped.

The record compares ``forward: loss``, then ``backward: <name>`` for each parameter in the
user's order, and that the user's call left every parameter unchanged (``hygiene: <name>``);
the first wrong gradient is named, each gradient that is a constant multiple of PyTorch's says
its factor, and when all wrong gradients share one factor the record's note says so.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from manual.registry import DEFAULT_TOLERANCES
from reference.checks.diagnose import _failed, compare_named, constant_factor, unchanged
from reference.checks.userpass import error_text
from reference.core.names import TensorName
from reference.core.records import ComparisonRecord, TensorComparison

TRANSPOSED = ".T"


def _arrays(model: Any, params: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    if params is None:
        found = getattr(model, "params", None)
        if not isinstance(found, Mapping):
            raise ValueError("params: give the model's parameter arrays by name (the model "
                             "has no params dict)")
        params = found
    arrays = {k: np.asarray(v) for k, v in params.items()}
    if not arrays:
        raise ValueError("params: the model has no parameters")
    return arrays


def _user_loss(model: Any) -> Callable[[Any, Any], Any]:
    loss = getattr(model, "loss", None)
    if callable(loss):
        return loss
    if callable(model):
        return model
    raise TypeError("model: must have loss(X, y) -> (loss, grads), or be such a callable")


def _tensor(value: Any) -> torch.Tensor:
    return torch.from_numpy(np.array(value, copy=True))


def _module_reference(module: nn.Module, mapping: Mapping[str, str],
                      loss: Callable[..., Any] | None, arrays: Mapping[str, np.ndarray],
                      X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    if loss is None:
        raise ValueError("loss: a module twin needs loss(out, y) (e.g. F.cross_entropy)")
    dtype = next(iter(arrays.values())).dtype
    twin = copy.deepcopy(module).to(getattr(torch, str(dtype)))
    known = dict(twin.named_parameters())
    unmapped = sorted(set(known) - {t.removesuffix(TRANSPOSED) for t in mapping.values()})
    if unmapped:
        raise ValueError(f"mapping: the module's parameter {unmapped[0]!r} has no user name "
                         f"(map every one of {', '.join(known)})")
    for user, target in mapping.items():
        if user not in arrays:
            raise ValueError(f"mapping[{user!r}]: the model has no parameter {user!r}")
        name = target.removesuffix(TRANSPOSED)
        if name not in known:
            raise ValueError(f"mapping[{user!r}]: the module has no parameter {name!r}")
        value = arrays[user].T if target.endswith(TRANSPOSED) else arrays[user]
        if tuple(known[name].shape) != value.shape:
            hint = f" (write {name + TRANSPOSED!r}?)" if tuple(known[name].shape) == \
                arrays[user].T.shape and not target.endswith(TRANSPOSED) else ""
            raise ValueError(f"mapping[{user!r}]: shape {arrays[user].shape} does not fit "
                             f"{name!r} of shape {tuple(known[name].shape)}{hint}")
        with torch.no_grad():
            known[name].copy_(_tensor(value))
    value = loss(twin(_tensor(X)), _tensor(y))
    value.backward()
    grads = {}
    for user, target in mapping.items():
        grad = known[target.removesuffix(TRANSPOSED)].grad
        array = np.zeros_like(arrays[user]) if grad is None else grad.numpy()
        grads[user] = array.T if target.endswith(TRANSPOSED) else array
    return value.detach().numpy(), grads


def _function_reference(twin: Callable[..., Any], arrays: Mapping[str, np.ndarray],
                        X: np.ndarray, y: np.ndarray
                        ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    tensors = {k: _tensor(v).requires_grad_(v.dtype.kind == "f") for k, v in arrays.items()}
    value = twin(tensors, _tensor(X), _tensor(y))
    value.backward()
    grads = {k: (t.grad.numpy() if t.grad is not None else np.zeros_like(arrays[k]))
             for k, t in tensors.items() if t.requires_grad}
    return value.detach().numpy(), grads


def check_model(model: Any, data: tuple[Any, Any], *, torch: Any,
                params: Mapping[str, Any] | None = None, mapping: Mapping[str, str] | None = None,
                loss: Callable[..., Any] | None = None, name: str | None = None
                ) -> ComparisonRecord:
    """Compare the user's ``model`` on ``data = (X, y)`` with PyTorch's twin (see the module
    docstring); ``name`` is the record's subject."""
    X, y = (np.asarray(a) for a in data)
    arrays = _arrays(model, params)
    before = {k: v.copy() for k, v in arrays.items()}
    if isinstance(torch, nn.Module):
        want_loss, want = _module_reference(torch, dict(mapping or {}), loss, arrays, X, y)
    elif callable(torch):
        if mapping:
            raise ValueError("mapping: only for an nn.Module twin (a function twin gets the "
                             "user's names)")
        want_loss, want = _function_reference(torch, arrays, X, y)
    else:
        raise TypeError(f"torch: must be a callable or an nn.Module, got {type(torch)!r}")
    dtype = str(next(iter(arrays.values())).dtype)
    tolerance = DEFAULT_TOLERANCES.get(dtype, DEFAULT_TOLERANCES["float64"])
    subject = name or str(getattr(model, "__name__", type(model).__name__))
    loss_name = TensorName("forward", "loss")
    try:
        got_loss, got = _user_loss(model)(X.copy(), y.copy())
    except Exception as error:
        problem = f"the model's loss raised {error_text(error)}"
        tensors = [_failed(loss_name, np.asarray(want_loss), tolerance, problem, True)]
        return _record(subject, dtype, tensors, tolerance.reason, [])
    got = dict(got or {})
    tensors = [compare_named(loss_name, np.asarray(got_loss).reshape(np.shape(want_loss)),
                             want_loss, tolerance)]
    for key, reference in want.items():
        label = TensorName("backward", key)
        tensors.append(compare_named(label, got[key], reference, tolerance) if key in got else
                       _failed(label, reference, tolerance,
                               f"missing: the model returned no gradient {key!r}", True))
    current = _arrays(model, params)
    tensors += [unchanged(TensorName("hygiene", k), current[k], before[k]) for k in before]
    wrong = [(got[k], want[k]) for k in want if k in got and
             not next(t for t in tensors if t.name == f"backward: {k}").passed]
    notes = []
    factor = constant_factor(wrong) if len(wrong) > 1 else None
    if factor is not None:
        notes.append(f"every wrong gradient is {factor:.3g} x PyTorch's: one factor applied "
                     "once too often, or missing?")
    return _record(subject, dtype, tensors, tolerance.reason, notes)


def _record(subject: str, dtype: str, tensors: list[TensorComparison], reason: str,
            notes: list[str]) -> ComparisonRecord:
    worst = next((t for t in tensors if not t.passed), None)
    return ComparisonRecord(
        subject=subject, kind="network", dtype=dtype, seed=0, passed=worst is None,
        first_divergence=None if worst is None else f"{worst.name}: {worst.problem}",
        tolerance_reason=reason, tensors=tensors, notes=notes)


class ModelCase:
    """A user's model for ``backprop-harness check``: ``ModelCase(name, model, (X, y),
    torch=..., **check_model's keyword arguments)``."""

    def __init__(self, name: str, model: Any, data: tuple[Any, Any], **kwargs: Any) -> None:
        if not name:
            raise ValueError("ModelCase: give the case a name")
        self.name, self.model, self.data, self.kwargs = name, model, data, kwargs

    def __repr__(self) -> str:
        return f"ModelCase({self.name!r})"

    def run(self) -> ComparisonRecord:
        return check_model(self.model, self.data, name=self.name, **self.kwargs)
