"""pytest for a user's suite: one test id per case x dtype x configuration x check.

::

    from reference.checks.pytest import LayerCase, parametrize_layers

    CASES = [LayerCase("conv", conv_forward, conv_backward, torch=torch_conv,
                       inputs={"x": (2, 3, "H", "H"), "w": (4, 3, 3, 3), "b": (4,)},
                       sweep={"H": [5, 6], "conv_param": [...]})]

    @parametrize_layers(CASES, xfail={"conv-*pad=0*-backward-x": "known: padding 0"})
    def test_layer(check, backprop_record):
        record = check()
        backprop_record(record)          # into --backprop-report DIR's HTML report
        assert record.passed, record.describe()

Each case runs once, whatever the number of its checks (forward, each gradient, hygiene,
state, eval). ``xfail`` maps test-id patterns (``fnmatch``) to reasons; they are strict, so a
fixed bug shows up as an unexpected pass. A case PyTorch itself rejects is skipped.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from reference.checks.layer import Skip
from reference.checks.suite import LayerCase
from reference.checks.sweep import Check
from reference.core.records import ComparisonRecord

__all__ = ["LayerCase", "PytestCheck", "parametrize_layers"]


class PytestCheck(Check):
    """A :class:`~reference.checks.sweep.Check` that skips the test when PyTorch rejects
    the case."""

    def __call__(self) -> ComparisonRecord:
        try:
            return super().__call__()
        except Skip as why:
            pytest.skip(str(why))


def test_id(case: LayerCase, label: str, part: str) -> str:
    return "-".join([case.name, *label.split(" "), *part.split(": ")])


def parametrize_layers(cases: Sequence[LayerCase], *, xfail: Mapping[str, str] | None = None,
                       split: bool = True, argname: str = "check") -> Callable[[Any], Any]:
    """``pytest.mark.parametrize`` over every check of every case (``split=False``: one test
    per case, the whole record)."""
    xfail = dict(xfail or {})
    params = []
    for layer_case in cases:
        layer = layer_case.layer()
        parts = layer_case.parts(layer) if split else [""]
        for case in layer_case.cases(layer):
            shared: dict[int, Any] = {}
            for part in parts:
                ident = test_id(layer_case, case.label(), part) if part else \
                    test_id(layer_case, case.label(), "")[:-1]
                reasons = [why for pattern, why in xfail.items()
                           if fnmatch.fnmatchcase(ident, pattern)]
                marks = [pytest.mark.xfail(reason=reasons[0], strict=True)] if reasons else []
                params.append(pytest.param(PytestCheck(layer, case, part, shared), id=ident,
                                           marks=marks))
    return pytest.mark.parametrize(argname, params)
