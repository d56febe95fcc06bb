"""The network spec: one JSON description that both engines build from.

A spec is validated once, when it is loaded; every error is a ``ValueError``
that names the field or layer (``layers[2] (linear): out_features ...``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from manual import finite, jsonfile
from manual import init as initializers
from manual.registry import ACTIVATIONS, INPUT_KINDS, LOSSES

DTYPES = ("float32", "float64")
_TOP_FIELDS = {"name", "input_shape", "layers", "loss", "dtype", "seed"}
_LINEAR_FIELDS = {"type", "out_features", "in_features", "weight", "bias", "init"}


@dataclass(frozen=True)
class LayerSpec:
    """One entry of ``layers`` (or the ``loss``): its type and its options."""

    type: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.options}


@dataclass(frozen=True)
class Spec:
    """A validated network description.

    ``input_shape`` is ``(D,)``: the features of one sample (data come in
    batches of rows, ``(N, D)``). ``widths[i]`` is the feature count that
    layer ``i`` outputs.
    """

    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]
    loss: LayerSpec
    dtype: str = "float64"
    seed: int = 0
    name: str = ""

    @property
    def widths(self) -> tuple[int, ...]:
        width, out = self.input_shape[0], []
        for layer in self.layers:
            if layer.type == "linear":
                width = layer.options["out_features"]
            out.append(width)
        return tuple(out)

    @property
    def output_width(self) -> int:
        return self.widths[-1] if self.layers else self.input_shape[0]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name} if self.name else {}
        out |= {
            "input_shape": list(self.input_shape),
            "layers": [layer.to_dict() for layer in self.layers],
            "loss": self.loss.to_dict(),
            "dtype": self.dtype,
            "seed": self.seed,
        }
        return out

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _matrix_shape(value: object) -> tuple[int, ...] | None:
    """The shape of a nested list of finite numbers, or None if it is not rectangular."""
    if _is_int(value) or isinstance(value, float):
        return () if math.isfinite(value) else None  # type: ignore[arg-type]
    if not isinstance(value, list) or not value:
        return None
    shapes = {_matrix_shape(item) for item in value}
    if len(shapes) != 1 or None in shapes:
        return None
    (inner,) = shapes
    return (len(value), *inner)  # type: ignore[misc]


def _check_options(where: str, op_options: Mapping[str, Any], given: Mapping[str, Any]) -> dict:
    unknown = sorted(set(given) - set(op_options))
    if unknown:
        known = ", ".join(sorted(op_options)) or "none"
        raise ValueError(f"{where}: unknown option {unknown[0]!r} (known options: {known})")
    for name, value in given.items():
        problem = op_options[name].check(value)
        if problem:
            raise ValueError(f"{where}: {name} {problem}")
    return dict(given)


def _parse_linear(where: str, raw: Mapping[str, Any], in_features: int) -> LayerSpec:
    unknown = sorted(set(raw) - _LINEAR_FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown option {unknown[0]!r} (known options: "
                         f"{', '.join(sorted(_LINEAR_FIELDS - {'type'}))})")
    out = raw.get("out_features")
    if not isinstance(out, int) or isinstance(out, bool) or out < 1:
        raise ValueError(f"{where}: out_features must be a positive integer, got {out!r}")
    if "in_features" in raw and raw["in_features"] != in_features:
        raise ValueError(f"{where}: in_features is {raw['in_features']!r}, but the previous "
                         f"layer outputs {in_features} features")
    options: dict[str, Any] = {"out_features": out}
    if "weight" in raw:
        shape = _matrix_shape(raw["weight"])
        if shape != (out, in_features):
            got = "not a rectangular array of finite numbers" if shape is None else shape
            raise ValueError(f"{where}: weight must have shape (out_features, in_features) = "
                             f"{(out, in_features)}, got {got}")
        options["weight"] = raw["weight"]
    bias = raw.get("bias", True)
    if isinstance(bias, list):
        shape = _matrix_shape(bias)
        if shape != (out,):
            got = "not a list of finite numbers" if shape is None else shape
            raise ValueError(f"{where}: bias must have shape (out_features,) = ({out},), "
                             f"got {got}")
    elif not isinstance(bias, bool):
        raise ValueError(f"{where}: bias must be true, false or a list of {out} numbers, "
                         f"got {bias!r}")
    if bias is not True:
        options["bias"] = bias
    if "init" in raw:
        options["init"] = _parse_init(where, raw["init"], options, in_features)
    return LayerSpec("linear", options)


def _parse_init(where: str, raw: object, options: Mapping[str, Any], in_features: int
                ) -> dict[str, dict[str, Any]]:
    """``init``: ``{"weight": {"type": "kaiming_normal", ...}, "bias": {"type": "zeros"}}``.

    Each key is optional (a key left out keeps nn.Linear's default); an entry may not
    describe a parameter that the layer gives explicitly or does not have.
    """
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: init must be an object with 'weight' and/or 'bias', "
                         f"got {raw!r}")
    unknown = sorted(set(raw) - {"weight", "bias"})
    if unknown:
        raise ValueError(f"{where}: init: unknown key {unknown[0]!r} (known: bias, weight)")
    shapes = {"weight": (options["out_features"], in_features),
              "bias": (options["out_features"],)}
    parsed: dict[str, dict[str, Any]] = {}
    for key, entry in raw.items():
        if key in options:
            given_as = "bias=false" if options[key] is False else f"explicit {key} values"
            raise ValueError(f"{where}: init.{key} conflicts with the layer's {given_as}")
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise ValueError(f"{where}: init.{key} must be an object with a string 'type', "
                             f"got {entry!r}")
        given = {k: v for k, v in entry.items() if k != "type"}
        try:
            initializers.check(entry["type"], shapes[key], given)
        except ValueError as error:
            raise ValueError(f"{where}: init.{key}: {error}") from None
        parsed[key] = dict(entry)
    return parsed


def _parse_layer(index: int, raw: object, in_features: int) -> LayerSpec:
    where = f"layers[{index}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise ValueError(f"{where}: must be an object with a string 'type', got {raw!r}")
    kind = raw["type"]
    where = f"layers[{index}] ({kind})"
    if kind == "linear":
        return _parse_linear(where, raw, in_features)
    if kind not in ACTIVATIONS:
        known = ", ".join(["linear", *ACTIVATIONS])
        raise ValueError(f"layers[{index}]: unknown layer type {kind!r} (known: {known})")
    given = {k: v for k, v in raw.items() if k != "type"}
    options = _check_options(where, ACTIVATIONS[kind].options, given)
    problem = ACTIVATIONS[kind].relations(options)
    if problem:
        raise ValueError(f"{where}: {problem}")
    return LayerSpec(kind, options)


def _parse_loss(raw: object, layers: tuple[LayerSpec, ...]) -> LayerSpec:
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise ValueError(f"loss: must be an object with a string 'type', got {raw!r}")
    kind = raw["type"]
    if kind not in LOSSES:
        raise ValueError(f"loss: unknown loss type {kind!r} (known: {', '.join(LOSSES)})")
    given = {k: v for k, v in raw.items() if k != "type"}
    spec = LayerSpec(kind, _check_options(f"loss ({kind})", LOSSES[kind].options, given))
    needs = LOSSES[kind].needs
    low, high = INPUT_KINDS[needs]
    last = layers[-1].type if layers else "input"
    made = ACTIVATIONS[last].output_range if last in ACTIVATIONS else (-math.inf, math.inf)
    if made[0] < low or made[1] > high:
        bounds = f"[{low:g}, {high:g}]".replace("inf", "∞")
        raise ValueError(f"loss ({kind}): needs {needs} in {bounds}, but the last layer "
                         f"({last!r}) does not produce them; {LOSSES[kind].hint}")
    return spec


def parse_spec(raw: object) -> Spec:
    """Validate a decoded JSON object and return the :class:`Spec` it describes."""
    if not isinstance(raw, dict):
        raise ValueError(f"spec: must be a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _TOP_FIELDS)
    if unknown:
        known = ", ".join(sorted(_TOP_FIELDS))
        raise ValueError(f"spec: unknown field {unknown[0]!r} (known: {known})")
    for required in ("input_shape", "layers", "loss"):
        if required not in raw:
            raise ValueError(f"spec: missing field {required!r}")
    shape = raw["input_shape"]
    if not (isinstance(shape, list) and len(shape) == 1 and _is_int(shape[0]) and shape[0] >= 1):
        raise ValueError(f"input_shape: must be [D] with a positive integer D, got {shape!r}")
    dtype = raw.get("dtype", "float64")
    if dtype not in DTYPES:
        raise ValueError(f"dtype: must be 'float32' or 'float64', got {dtype!r}")
    seed = raw.get("seed", 0)
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise ValueError(f"name: must be a string, got {name!r}")
    if not isinstance(raw["layers"], list):
        raise ValueError(f"layers: must be a list, got {type(raw['layers']).__name__}")
    layers: list[LayerSpec] = []
    width = shape[0]
    for index, item in enumerate(raw["layers"]):
        layer = _parse_layer(index, item, width)
        width = layer.options.get("out_features", width)
        layers.append(layer)
    loss = _parse_loss(raw["loss"], tuple(layers))
    spec = Spec(tuple(shape), tuple(layers), loss, dtype, seed, name)
    finite.check_spec(spec)  # finite as JSON is not finite in float32
    return spec


def load_json(path: str | Path, what: str) -> Any:
    """Read a JSON file; every problem is a one-line ``ValueError`` (:mod:`manual.jsonfile`)."""
    return jsonfile.load_json(path, what)


def load_spec(path: str | Path) -> Spec:
    """Load and validate a spec file."""
    return parse_spec(load_json(path, "spec"))
