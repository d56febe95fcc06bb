r"""State and modes: running statistics after each training call, then the eval output.

``state`` maps the user's state keys to the module's buffer names:
``{"running_var": "running_var"}``. A key is looked up in the options: ``"bn_param.running_var"``
names the dict explicitly; a bare key lives in the one dict-valued option (the course's
``bn_param``), which the user's forward updates in place. Before the first call both sides
start from the module's buffers (PyTorch's running variance starts at ones, not zeros), so a
difference after step ``s`` is the update itself.

When a running statistic differs and the module has a ``momentum``, the updates are compared:
with :math:`u = s_{new} - (1 - m)\,s_{old}`, a constant :math:`u_{mine} / u_{torch} = (N-1)/N`
is the biased batch variance (divides by N) where PyTorch keeps the unbiased one (N - 1).
After ``steps`` training calls, ``then`` (option overrides, e.g. ``{"bn_param": {"mode":
"test"}}``, merged into dict options) switches the user's layer, ``module.eval()`` PyTorch's,
and the outputs on a fresh input are compared as ``eval: out``. The state after step ``s`` is
``step s: state: running_var``. PyTorch's steps are the layer driver's (the pair that
:meth:`~reference.checks.layer.LayerCheck.twin_pair` built for the first), forward alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from manual.registry import Tolerance
from reference.checks.diagnose import _failed, compare_named, constant_factor
from reference.core.driver import LayerPair
from reference.core.names import TensorName
from reference.core.records import TensorComparison

if TYPE_CHECKING:
    from reference.checks.cases import Case
    from reference.checks.layer import LayerCheck

Home = tuple[dict[str, Any], str]


def _home(options: dict[str, Any], key: str) -> Home:
    if "." in key:
        owner, _, leaf = key.partition(".")
        if not isinstance(options.get(owner), dict):
            raise ValueError(f"state[{key!r}]: option {owner!r} is not a dict")
        return options[owner], leaf
    dicts = [name for name, value in options.items() if isinstance(value, dict)]
    if len(dicts) != 1:
        raise ValueError(f"state[{key!r}]: say which option holds it ('option.{key}'); "
                         f"dict-valued options: {', '.join(dicts) or 'none'}")
    return options[dicts[0]], key


def seed_state(check: LayerCheck, reference: Any, options: dict[str, Any]) -> dict[str, Home]:
    """Put the module's initial buffers where the user's layer keeps its state."""
    if not check.state:
        return {}
    buffers = dict(reference.named_buffers())
    homes = {}
    for key, buffer in check.state.items():
        if buffer not in buffers:
            raise ValueError(f"state[{key!r}]: the module has no buffer {buffer!r} (it has "
                             f"{', '.join(buffers) or 'none'})")
        home = _home(options, key)
        home[0][home[1]] = buffers[buffer].detach().numpy().copy()
        homes[key] = home
    return homes


def _explain(key: str, mine: Any, want: np.ndarray, before: np.ndarray,
             momentum: float | None) -> str:
    """Why a running statistic differs, when its update is a constant factor off."""
    if momentum is None or mine is None or np.shape(mine) != want.shape:
        return ""
    keep = 1.0 - momentum
    c = constant_factor([(np.asarray(mine) - keep * before, want - keep * before)])
    if c is None:
        return ""
    text = f"the update of {key} is {c:.4g} x PyTorch's"
    if 0 < c < 1:
        n = 1.0 / (1.0 - c)
        if abs(n - round(n)) < 1e-3 * n and round(n) >= 2:
            return (f"{text} = (N-1)/N with N = {round(n)}: a biased variance (divides by N) "
                    f"where PyTorch's running variance is unbiased (divides by N-1)")
    return text


def _compare_state(check: LayerCheck, reference: nn.Module, homes: Mapping[str, Home],
                   before: Mapping[str, np.ndarray], step: int, tolerance: Tolerance,
                   keep_values: bool) -> tuple[list[TensorComparison], list[str]]:
    buffers = dict(reference.named_buffers())
    momentum = getattr(reference, "momentum", None)
    tensors, notes = [], []
    for key, (owner, leaf) in homes.items():
        want = buffers[check.state[key]].detach().numpy().copy()
        name = TensorName("state", key, step=step)
        mine = owner.get(leaf)
        if mine is None:
            tensors.append(_failed(name, want, tolerance, f"not found: the layer left no "
                                   f"{leaf!r} in its options", keep_values))
            continue
        record = compare_named(name, mine, want, tolerance, keep_values)
        tensors.append(record)
        if not record.passed:
            why = _explain(key, mine, want, before[key],
                           momentum if isinstance(momentum, float) else None)
            if why:
                notes.append(f"{name}: {why}")
    return tensors, notes


def run_steps(check: LayerCheck, case: Case, pair: LayerPair, reference: Any,
              options: dict[str, Any], homes: Mapping[str, Home], tolerance: Tolerance,
              keep_values: bool) -> tuple[list[TensorComparison], list[str]]:
    """State after step 1 (already run) and steps 2..k, then the output in the ``then`` mode."""
    tensors: list[TensorComparison] = []
    notes: list[str] = []
    data = [n for n in check.inputs if n not in check.params]
    initial = {key: np.asarray(v) for key, v in _initial(check, reference).items()}
    before = initial
    for step in range(1, check.steps + 1):
        if step > 1:
            before = _snapshot(check, reference)
            arrays = {**check.draw(case), **check.draw(case, str(step), data)}
            _, _, raised = _both_forward(check, pair, arrays, options)
            if raised:
                tensors += [_failed(TensorName("state", key, step=step), np.zeros(0),
                                    tolerance, raised, keep_values) for key in homes]
                continue
        if homes:
            more, why = _compare_state(check, reference, homes, before, step, tolerance,
                                       keep_values)
            tensors += more
            notes += why
    if check.then is not None:
        for key, value in check.then.items():
            if isinstance(value, Mapping) and isinstance(options.get(key), dict):
                options[key].update(value)
            else:
                options[key] = value
        arrays = {**check.draw(case), **check.draw(case, "then", data)}
        mine, want, raised = _both_forward(check, pair, arrays, options, training=False)
        name = TensorName("eval", "out")
        tensors.append(_failed(name, want, tolerance, raised, keep_values) if raised
                       else compare_named(name, mine, want, tolerance, keep_values))
    return tensors, notes


def _initial(check: LayerCheck, reference: Any) -> dict[str, np.ndarray]:
    """The buffers before step 1: a fresh copy of the user's module has them."""
    if not isinstance(check.reference, nn.Module):
        return {}
    start = dict(check.reference.named_buffers())
    return {key: start[b].detach().numpy().astype(np.float64) for key, b in check.state.items()}


def _snapshot(check: LayerCheck, reference: Any) -> dict[str, np.ndarray]:
    buffers = dict(reference.named_buffers())
    return {key: buffers[b].detach().numpy().astype(np.float64).copy()
            for key, b in check.state.items()}


def _both_forward(check: LayerCheck, pair: LayerPair, arrays: Mapping[str, np.ndarray],
                  options: dict[str, Any], training: bool | None = None
                  ) -> tuple[Any, np.ndarray, str]:
    """Both outputs (PyTorch's forward alone, in ``training`` mode if given), and what the
    user's forward raised (``""`` if nothing)."""
    data = pair.case.data_for([arrays[n] for n in check.inputs])
    run = pair.reference(data, training=training, upstream={})
    want = run.values[pair.case.node.name].copy()
    try:
        mine, _ = check.forward(*(arrays[n].copy() for n in check.names), **options)
    except Exception as error:
        return None, want, f"forward raised {type(error).__name__}: {error}"
    return mine, want, ""
