"""Every registry layer inside a network, in both dtypes and (where they differ) both modes:
each sample as a one-node graph, compared tensor by tensor with its state, after the pair's
own protocol (reference.conformance.layers)."""

from __future__ import annotations

import numpy as np
import pytest

from manual.layers import LAYERS
from reference.conformance.layers import check_sample
from reference.conformance.samples import layer_cases, layers_with_samples

CASES = list(layer_cases())


@pytest.mark.parametrize(("name", "sample", "dtype", "mode"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_layer_in_a_network_matches_torch(name, sample, dtype, mode, backprop_record) -> None:
    with np.errstate(all="ignore"):  # extreme samples overflow in unused branches, as torch
        result = check_sample(name, sample.options, sample.inputs, dtype, (mode == "train",))
    backprop_record(result.record)
    assert result.passed, result.failures


def test_every_layer_with_samples_is_covered_in_both_dtypes_and_modes() -> None:
    covered = {(name, dtype, mode) for _, name, _, dtype, mode in CASES}
    for name in layers_with_samples():
        modes = ("train", "eval") if LAYERS[name].behaviour.train_eval_differ else ("train",)
        assert {(name, d, m) for d in ("float32", "float64") for m in modes} <= covered, name
