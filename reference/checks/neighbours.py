"""The option space around the configuration a user typed: its neighbours, checked by default.

Every option-space bug met in real course code (padding 0 cropped with ``x[:, :, p:-p]``, a
stride that does not divide the padded size, overlapping max-pool windows written with ``=``)
hides in a configuration next to the one the user wrote. So for each option the user fixed
that one of these rules knows, ``check_layer`` also runs the configurations one change
away (float64, no special inputs), and reports them apart. Each rule is named by what it
looks for; a leaf of a dict option (the course's ``conv_param``) counts as an option:

- ``padding`` (``pad``, ``padding``): 0, and half the kernel and one more (``k // 2``,
  ``k // 2 + 1``; the kernel is a sibling pool size, or a 4-D weight input's last axis);
- ``stride``: 1, the smallest stride >= 2 that divides the padded span ``H + 2p - k`` and the
  smallest that does not;
- ``pool size`` (``pool_height`` with ``pool_width`` together, ``pool_size``, ``kernel_size``):
  equal to the stride (windows that tile) and one larger (windows that overlap);
- ``dilation``: 1 and 2;
- ``flag`` (``bias``, ``ceil_mode``, ``count_include_pad``): the other boolean;
- ``approximate``: ``"none"`` and ``"tanh"`` (GELU's two forms);
- ``spatial size``: with a stride or pool rule, the first input's axes after (N, C) one
  smaller and one larger (sizes one off a multiple of the stride).

``groups`` is never varied (the weight's shape fixes it). Any other option, or other
values, the user declares: ``vary={"pad": range(0, 3)}``. A neighbour PyTorch rejects is
outside the range the twin accepts and is skipped.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

PADDING = ("pad", "padding")
STRIDE = ("stride",)
POOL_PAIR = ("pool_height", "pool_width")
POOL = ("pool_size", "kernel_size")
DILATION = ("dilation",)
FLAGS = ("bias", "ceil_mode", "count_include_pad")
APPROXIMATE = ("approximate",)
APPROXIMATIONS = ("none", "tanh")


@dataclass(frozen=True)
class Neighbour:
    """One configuration next to the user's: its label (``pad=0``), the options it replaces
    (whole top-level options, a dict option copied with one leaf changed), and the input
    shapes it replaces (a spatial-size neighbour)."""

    label: str
    overrides: dict[str, Any]
    shapes: dict[str, tuple[int, ...]]


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kernel(siblings: Mapping[str, Any], weights: Iterable[tuple[int, ...]]) -> int | None:
    for key in (*POOL_PAIR, *POOL):
        if _int(siblings.get(key)):
            return int(siblings[key])
    for shape in weights:
        if len(shape) == 4:
            return int(shape[-1])
    return None


def _strides(value: int, span: int | None) -> list[int]:
    """1, and the smallest strides >= 2 that divide ``span`` and that do not."""
    found = [1]
    if span is None or span <= 0:
        return [*found, value + 1]
    dividing = next((s for s in range(2, span + 1) if span % s == 0 and s != value), None)
    other = next((s for s in range(2, span + 2) if span % s != 0 and s != value), None)
    return [*found, *(s for s in (dividing, other) if s is not None)]


def leaf_values(key: str, value: Any, siblings: Mapping[str, Any], size: int | None,
                weights: list[tuple[int, ...]]) -> list[Any]:
    """The neighbour values of one option by its rule (``[]`` when no rule knows it)."""
    kernel = _kernel(siblings, weights)
    pad = next((siblings[k] for k in PADDING if _int(siblings.get(k))), 0)
    stride = next((siblings[k] for k in STRIDE if _int(siblings.get(k))), None)
    if key in PADDING and _int(value):
        return [0, kernel // 2, kernel // 2 + 1] if kernel else [0, value + 1]
    if key in STRIDE and _int(value):
        span = size + 2 * pad - kernel if size is not None and kernel else None
        return _strides(value, span)
    if (key in POOL or key in POOL_PAIR) and _int(value) and stride is not None:
        return [stride, stride + 1]
    if key in DILATION and _int(value):
        return [1, 2]
    if key in FLAGS and isinstance(value, bool):
        return [not value]
    if key in APPROXIMATE and value in APPROXIMATIONS:
        return list(APPROXIMATIONS)
    return []


def _vary_values(key: str, vary: Mapping[str, Iterable[Any]]) -> list[Any] | None:
    return list(vary[key]) if key in vary else None


def neighbours(options: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...] | None],
               first: str, vary: Mapping[str, Iterable[Any]] | None = None) -> list[Neighbour]:
    """Every neighbour of ``options`` (see the module docstring). ``shapes`` are the fixed
    input shapes (``None`` for one with a symbolic size), ``first`` the data input."""
    vary = dict(vary or {})
    leaves = _leaves(options)
    unknown = sorted(set(vary) - {leaf for _, leaf, _ in leaves} - set(options))
    if unknown:
        raise ValueError(f"vary[{unknown[0]!r}]: no such option (options: "
                         f"{', '.join(leaf for _, leaf, _ in leaves) or 'none'})")
    found: list[Neighbour] = []
    for name, values in vary.items():  # a whole dict option, varied as the user lists it
        if isinstance(options.get(name), Mapping):
            found += [Neighbour(f"{name}={v}", {name: v}, {}) for v in values
                      if v != options[name]]
    leaves = [leaf for leaf in leaves if leaf[0] not in vary]
    data = shapes.get(first)
    size = data[2] if data is not None and len(data) >= 3 else None
    weights = [s for n, s in shapes.items() if n != first and s is not None]
    strided = False
    for owner, key, value in leaves:
        siblings = options[owner] if owner else options
        declared = _vary_values(key, vary)
        values = declared if declared is not None else \
            leaf_values(key, value, siblings, size, weights)
        if declared is None:
            strided |= bool(values) and key in (*STRIDE, *POOL, *POOL_PAIR)
        if key == POOL_PAIR[1] and POOL_PAIR[0] in siblings and key not in vary:
            continue  # varied together with pool_height
        for new in dict.fromkeys(values):
            if new == value:
                continue
            keys = POOL_PAIR if key == POOL_PAIR[0] and POOL_PAIR[1] in siblings and \
                key not in vary else (key,)
            found.append(_changed(options, owner, keys, new))
    if strided and data is not None and len(data) >= 3:
        for step in (-1, 1):
            shape = (*data[:2], *(d + step for d in data[2:]))
            if min(shape[2:]) >= 1:
                found.append(Neighbour(f"{first}={shape}", {}, {first: shape}))
    return found


def _leaves(options: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """``(owner, key, value)``: top-level options (owner ``""``) and one level of dict
    options' keys."""
    found = []
    for name, value in options.items():
        if isinstance(value, Mapping):
            found += [(name, key, leaf) for key, leaf in value.items()]
        else:
            found.append(("", name, value))
    return found


def _changed(options: Mapping[str, Any], owner: str, keys: tuple[str, ...], new: Any
             ) -> Neighbour:
    label = " ".join(f"{k}={new!r}" if isinstance(new, str) else f"{k}={new}" for k in keys)
    if not owner:
        return Neighbour(label, {keys[0]: new}, {})
    changed = copy.deepcopy(dict(options[owner]))
    for key in keys:
        changed[key] = new
    return Neighbour(label, {owner: changed}, {})
