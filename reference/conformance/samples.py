"""Every registry layer's samples, as the conformance cases and the fuzzer draw them.

A :class:`~manual.layers.Sample` holds a layer's options and inputs (batch first);
:func:`reference.conformance.layers.sample_case` wraps one in a one-node graph spec (its state and
parameters moved off their defaults, an ``l1`` loss for the fuzzer's network runs; the
conformance check hands every output a random upstream instead, through the layer driver).
Here every layer the registry knows is enumerated that way in both dtypes and both modes
(:func:`layer_cases`), and drawn for the fuzzer (:func:`layer_graphs`), with no code per
layer: a new layer with samples is checked in networks and fuzzed as soon as it is registered.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from hypothesis import strategies as st

import manual
from manual.layers import LAYERS, Sample
from manual.random import stream
from manual.spec import DTYPES, Spec
from reference.conformance.layers import sample_case

# A sample whose name ends so expects NaN in its output, as PyTorch gives (a fully masked
# attention row): the layer's own tests assert it; a network comparison cannot pass it.
EXPECTS_NAN = "_nan"


def layers_with_samples() -> list[str]:
    """The registry's layers that declare samples (activations are covered as ops)."""
    return sorted(name for name, info in LAYERS.items() if info.samples is not None)


def layer_samples(name: str, dtype: str, seed: int = 0) -> list[Sample]:
    """Layer ``name``'s samples in ``dtype`` that a network comparison can take: not those
    expecting NaN, nor those with a non-finite input (an additive mask of -inf), which a data
    file cannot hold."""
    samples = LAYERS[name].samples
    drawn = [] if samples is None else samples(stream(seed, "sample", name), dtype)
    return [s for s in drawn if not s.name.endswith(EXPECTS_NAN)
            and all(np.all(np.isfinite(a)) for a in s.inputs)]


def modes(name: str) -> tuple[str, ...]:
    return ("train", "eval") if LAYERS[name].behaviour.train_eval_differ else ("train",)


def layer_cases(dtypes: tuple[str, ...] = DTYPES
                ) -> Iterator[tuple[str, str, Sample, str, str]]:
    """``(id, layer, sample, dtype, mode)`` for every sample x dtype x mode of every layer."""
    for name in layers_with_samples():
        for dtype in dtypes:
            for index, sample in enumerate(layer_samples(name, dtype)):
                for mode in modes(name):
                    yield f"{name}-{sample.name or index}-{dtype}-{mode}", name, sample, \
                        dtype, mode


@st.composite
def layer_graphs(draw: st.DrawFn, dtypes: tuple[str, ...] = DTYPES,
                 layers: tuple[str, ...] | None = None) -> tuple[Spec, manual.Data]:
    """A fuzz case: a registry layer, one of its samples redrawn from a drawn seed, a dtype and
    a mode, as its one-node graph (Hypothesis shrinks toward the first layer and sample)."""
    name = draw(st.sampled_from(list(layers) if layers else layers_with_samples()))
    dtype = draw(st.sampled_from(list(dtypes)))
    seed = draw(st.integers(0, 2**16))
    samples = layer_samples(name, dtype, seed)
    sample = samples[draw(st.integers(0, len(samples) - 1))]
    case = sample_case(name, sample.options, sample.inputs, dtype,
                       mode=draw(st.sampled_from(modes(name))), seed=seed)
    return case.spec, case.data
