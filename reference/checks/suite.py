"""A user's declared cases: :class:`LayerCase` (a layer check, not yet run), for the
``backprop-harness check`` command and :func:`reference.checks.pytest.parametrize_layers`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from manual.spec import DTYPES
from reference.checks import cases as cs
from reference.checks.layer import LayerCheck
from reference.checks.result import LayerResult
from reference.checks.sweep import all_cases, check_layer, layer_check
from reference.core.names import TensorName


class LayerCase:
    """``LayerCase(name, forward, backward, **check_layer's keyword arguments)``."""

    def __init__(self, name: str, forward: Callable[..., Any], backward: Callable[..., Any],
                 **kwargs: Any) -> None:
        if not name:
            raise ValueError("LayerCase: give the case a name")
        self.name, self.forward, self.backward = name, forward, backward
        self.kwargs = {"name": name, **kwargs}

    def __repr__(self) -> str:
        return f"LayerCase({self.name!r})"

    def layer(self) -> LayerCheck:
        return layer_check(self.forward, self.backward, **self.kwargs)

    def cases(self, layer: LayerCheck | None = None) -> list[cs.Case]:
        layer = layer or self.layer()
        return all_cases(layer, self.kwargs.get("sweep"), self.kwargs.get("dtypes", DTYPES),
                         self.kwargs.get("special", True), self.kwargs.get("neighbours"),
                         self.kwargs.get("vary"))

    def parts(self, layer: LayerCheck | None = None) -> list[str]:
        """The checks of each case: forward, each gradient, hygiene, state, eval."""
        layer = layer or self.layer()
        grads = [n for n in layer.names if not _integer(layer, n)]
        return ["forward", *(str(TensorName("backward", n)) for n in grads), "hygiene",
                *(["state"] if layer.state else []),
                *(["eval"] if layer.then is not None else [])]

    def run(self) -> LayerResult:
        return check_layer(self.forward, self.backward, **self.kwargs)


def _integer(layer: LayerCheck, name: str) -> bool:
    spec = layer.inputs.get(name)
    if isinstance(spec, cs.Labels | cs.Target):
        return True
    return spec is not None and not isinstance(spec, tuple) and spec.dtype.kind != "f"
