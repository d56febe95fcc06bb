"""The through-time experiment: Pascanu et al.'s bound holds step by step in both engines,
the engines measure the same curve, and the forget-gate bias slows the LSTM's decay."""

from __future__ import annotations

import numpy as np
import pytest

from reports.experiments.bptt import decay_rate, gradient_through_time


@pytest.mark.parametrize("rho", [0.5, 0.9, 1.2])
@pytest.mark.parametrize("engine", ["manual", "torch"])
def test_rnn_gradient_obeys_the_spectral_bound_every_step(rho, engine):
    # ||x̄_t|| <= rho ||x̄_{t+1}|| per sample (|tanh'| <= 1, every singular value of W_hh is rho).
    result = gradient_through_time("rnn", engine=engine, spectral_norm=rho, length=30)
    norms = np.array(result.norms)
    assert np.all(norms[:-1] <= rho * norms[1:] * (1 + 1e-12))
    assert result.rate <= rho
    if rho < 1:
        assert norms[0] <= rho ** (len(norms) - 1) * norms[-1] * (1 + 1e-9)


def test_small_inputs_decay_at_nearly_the_bound():
    # Near h = 0, tanh' is close to 1, so the measured rate is within 2% of rho.
    result = gradient_through_time("rnn", engine="manual", spectral_norm=0.5, input_scale=0.05)
    assert result.rate == pytest.approx(0.5, rel=0.02)


@pytest.mark.parametrize(("layer", "options"), [("rnn", {"spectral_norm": 0.9}),
                                                ("lstm", {}), ("gru", {}),
                                                ("lstm", {"forget_bias": 3.0})])
def test_engines_measure_the_same_curve(layer, options):
    manual = gradient_through_time(layer, engine="manual", length=20, **options)
    torch_ = gradient_through_time(layer, engine="torch", length=20, **options)
    np.testing.assert_allclose(manual.norms, torch_.norms, rtol=1e-10)


def test_forget_gate_bias_slows_the_lstm_decay():
    rates = [gradient_through_time("lstm", engine="manual", forget_bias=b).rate
             for b in (0.0, 1.0, 3.0)]
    assert rates[0] < 0.7 < rates[1] < 0.9 < rates[2]


def test_decay_rate_recovers_a_geometric_series():
    assert decay_rate(3.0 * 0.8 ** np.arange(10)[::-1]) == pytest.approx(0.8, rel=1e-12)


def test_bad_layer_and_missing_norm_are_refused():
    with pytest.raises(ValueError, match="layer must be rnn, lstm or gru, got 'cnn'"):
        gradient_through_time("cnn", engine="manual")
    with pytest.raises(ValueError, match="rnn needs a spectral_norm"):
        gradient_through_time("rnn", engine="manual")
