"""One layer alone in both engines, for the recurrent and attention entries: a stand-in for
the lead's generic layer comparison (``reference.core.compare.compare_layer``) until it lands.

:func:`compare_sample` draws the parameters from the signature's slots, runs the entry's
pair with a random upstream gradient for *every* output, builds the torch mirror with the
entry's builder, copies the parameters in by ``slot.torch``, and compares every output,
every input gradient and every parameter gradient with ``torch.testing.assert_close``
(per-dtype defaults), plus the dtypes. Torch runs in :func:`_run_torch`, the one place to
rewire to ``reference.core.run``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from manual.layers.info import LayerInfo, Sample, Signature

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def build_torch(info: LayerInfo, options: Any, signature: Signature,
                shapes: tuple[tuple[int, ...], ...], dtype: str) -> torch.nn.Module:
    """The entry's torch builder, resolved from its dotted name."""
    module_name, _, fn = info.torch.rpartition(".")
    builder = getattr(importlib.import_module(module_name), fn)
    return builder(info, options, signature, shapes, TORCH_DTYPES[dtype])


def _attribute(module: torch.nn.Module, path: str) -> Any:
    for part in path.split("."):
        module = getattr(module, part)
    return module


def _run_torch(module: torch.nn.Module, params: dict[str, Any], signature: Signature,
               inputs: Sequence[np.ndarray], differentiable: Sequence[bool],
               upstream: Sequence[np.ndarray]) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """Outputs, input gradients (None where not differentiable) and parameter gradients."""
    with torch.no_grad():
        for name, slot in signature.params.items():
            _attribute(module, slot.torch).copy_(torch.from_numpy(params[name]))
    tensors = [torch.tensor(x, requires_grad=d)
               for x, d in zip(inputs, differentiable, strict=True)]
    out = module(*tensors)
    outs = list(out) if isinstance(out, tuple) else [out]
    torch.autograd.backward(outs, [torch.from_numpy(g) for g in upstream])
    grads = {name: _attribute(module, slot.torch).grad for name, slot in signature.params.items()}
    return ([o.detach() for o in outs], [t.grad if d else None for t, d in
                                         zip(tensors, differentiable, strict=True)], grads)


def _differs(what: str, got: Any, want: Any, dtype: str, equal_nan: bool) -> list[str]:
    if got is None or want is None:
        return [] if got is None and want is None else [f"{what}: one engine gave no gradient"]
    if str(got.dtype) != dtype:
        return [f"{what}: dtype {got.dtype}, expected {dtype}"]
    try:
        torch.testing.assert_close(torch.from_numpy(np.ascontiguousarray(got)), want,
                                   equal_nan=equal_nan)
    except AssertionError as error:
        return [f"{what}: {str(error).splitlines()[0]}"]
    return []


def compare_sample(info: LayerInfo, sample: Sample, dtype: str, seed: int = 0,
                   equal_nan: bool = False) -> list[str]:
    """Every disagreement between the engines on one sample (empty when they agree)."""
    rng = np.random.default_rng(seed)
    shapes = tuple(tuple(x.shape[1:]) for x in sample.inputs)
    signature = info.signature(sample.options, shapes)
    params = {name: slot.init(rng, slot.shape).astype(dtype)
              for name, slot in signature.params.items()}
    y, cache, _ = info.forward(sample.inputs, params, {}, {}, training=True, **sample.options)
    outs = list(y) if signature.outputs else [y]
    upstream = [rng.normal(size=o.shape).astype(dtype) for o in outs]
    dys: Any = tuple(upstream) if signature.outputs else upstream[0]
    dinputs, dparams = info.backward(dys, cache)
    module = build_torch(info, sample.options, signature, shapes, dtype)
    torch_params = {n: tuple(p.shape) for n, p in module.named_parameters()}
    want_params = {slot.torch: slot.shape for slot in signature.params.values()}
    if torch_params != want_params:
        return [f"params: torch has {torch_params}, the signature {want_params}"]
    t_outs, t_dinputs, t_dparams = _run_torch(module, params, signature, sample.inputs,
                                              [d is not None for d in dinputs], upstream)
    names = list(signature.outputs) or ["output"]
    failures = []
    for name, got, want in zip(names, outs, t_outs, strict=True):
        failures += _differs(f"forward: {name}", got, want, dtype, equal_nan)
    for i, (got, want) in enumerate(zip(dinputs, t_dinputs, strict=True)):
        failures += _differs(f"backward: inputs[{i}]", got, want, dtype, equal_nan)
    if set(dparams) != set(params):
        failures.append(f"backward: parameter gradients for {sorted(dparams)}, params "
                        f"{sorted(params)}")
    for name in params:
        failures += _differs(f"backward: {name}", dparams.get(name), t_dparams[name], dtype,
                             equal_nan)
    return failures
