"""reports.experiments.meanfield: quadrature, closed forms, fixed points and depth scales."""

from __future__ import annotations

import math

import numpy as np
import pytest

from manual.registry import ACTIVATIONS
from reports.experiments import meanfield as mf

ELEMENTWISE = mf.elementwise_activations()
SMOOTH = ["identity", "gelu", "sigmoid", "tanh", "softplus", "silu", "mish", "logsigmoid"]
# phi' jumps or is non-smooth: at 0 (elu, selu, celu, softsign) or at +-1, +-3 (hard*)
KINKED = ["elu", "selu", "celu", "hardtanh", "hardsigmoid", "hardswish", "softsign"]

# An independent reference: the trapezoid rule on a fine grid (error ~1e-9 here).
Z = np.linspace(-12.0, 12.0, 240001)
PDF = np.exp(-Z * Z / 2) / math.sqrt(2 * math.pi)


def reference(f: object, q: float) -> float:
    return float(np.trapezoid(f(math.sqrt(q) * Z) * PDF, Z))  # type: ignore[operator]


def test_every_elementwise_activation_is_covered() -> None:
    assert set(ELEMENTWISE) == set(ACTIVATIONS) - {"softmax", "log_softmax"}
    assert sorted(SMOOTH + KINKED + ["relu", "leaky_relu"]) == sorted(ELEMENTWISE)


@pytest.mark.parametrize("nodes", [20, 160])
def test_gauss_hermite_is_a_normal_expectation(nodes: int) -> None:
    z, w = mf.gauss_hermite(nodes)
    assert w.sum() == pytest.approx(1.0, abs=1e-14)
    for power, moment in ((2, 1.0), (4, 3.0), (6, 15.0), (1, 0.0), (3, 0.0)):
        assert w @ z**power == pytest.approx(moment, abs=1e-12)
    assert np.min(np.abs(z)) > 0  # even: no node on a kink at 0


@pytest.mark.parametrize("slope", [0.0, 0.01, 0.2])
@pytest.mark.parametrize("q", [1e-6, 0.5, 7.0])
def test_rectifiers_are_exact(slope: float, q: float) -> None:
    r"""For ReLU/leaky ReLU, :math:`\chi = \sigma_w^2 (1 + \alpha^2)/2` and
    :math:`\mathcal{V}(q) = \sigma_w^2 q (1 + \alpha^2)/2 + \sigma_b^2` at every q."""
    act = mf.Activation("relu") if slope == 0 else \
        mf.Activation("leaky_relu", {"negative_slope": slope})
    sigma_w, sigma_b = 1.3, 0.2
    factor = sigma_w**2 * (1 + slope**2) / 2
    assert mf.chi(act, q, sigma_w) == pytest.approx(factor, rel=1e-14)
    assert mf.length_map(act, q, sigma_w, sigma_b) == \
        pytest.approx(factor * q + sigma_b**2, rel=1e-13)


def test_an_odd_rule_gets_relu_chi_wrong() -> None:
    """An odd rule has a node at 0, ReLU's kink, where phi'(0) = 0 takes that node's weight."""
    act, sigma_w = mf.Activation("relu"), math.sqrt(2.0)
    z, w = mf.gauss_hermite(21)
    centre = float(w[np.argmin(np.abs(z))])
    odd = mf.chi(act, 1.0, sigma_w, nodes=21)
    assert odd == pytest.approx(sigma_w**2 * (1 - centre) / 2, rel=1e-12)
    assert abs(math.log(odd)) > 0.25  # vs the true ln chi_1 = 0: 25x the 0.01 target
    assert mf.chi(act, 1.0, sigma_w, nodes=20) == pytest.approx(1.0, rel=1e-14)


@pytest.mark.parametrize("q", [0.3, 3.0])
@pytest.mark.parametrize("name", SMOOTH)
def test_smooth_activations_match_an_independent_integral(name: str, q: float) -> None:
    """160 nodes reach ~1e-6 for tanh at q = 3 (sech's poles at i*pi/2 limit convergence)."""
    act = mf.Activation(name)
    assert mf.chi(act, q, 1.0) == pytest.approx(reference(lambda x: act.dphi(x) ** 2, q),
                                                rel=1e-5)
    assert mf.length_map(act, q, 1.0, 0.0) == \
        pytest.approx(reference(lambda x: act.phi(x) ** 2, q), rel=1e-5)
    slope = reference(lambda x: act.phi(x) * act.dphi(x) * x / q, q)  # d/dq of E[phi^2]
    assert mf.length_map_slope(act, q, 1.0) == pytest.approx(slope, rel=1e-5)


@pytest.mark.parametrize("q", [0.3, 3.0])
@pytest.mark.parametrize("name", KINKED)
def test_kinked_activations_error_is_bounded_by_the_rule_comparison(name: str, q: float
                                                                    ) -> None:
    """Where phi' has a kink, quadrature converges slowly (error ~1/nodes); the difference
    between the 160- and 320-node rules, which the experiment reports, bounds the error."""
    act = mf.Activation(name)
    coarse, fine = mf.chi(act, q, 1.0, 160), mf.chi(act, q, 1.0, 320)
    error = abs(coarse - reference(lambda x: act.dphi(x) ** 2, q))
    assert error <= 6 * abs(coarse - fine) + 1e-7


@pytest.mark.parametrize("sigma_w", [0.8, 1.0, 1.2, 1.5])
def test_tanh_fixed_point(sigma_w: float) -> None:
    act = mf.Activation("tanh")
    q_star = mf.fixed_point(act, sigma_w, 0.05)
    assert mf.length_map(act, q_star, sigma_w, 0.05) == pytest.approx(q_star, rel=1e-12)
    assert q_star == pytest.approx(
        sigma_w**2 * reference(lambda x: np.tanh(x) ** 2, q_star) + 0.05**2, rel=1e-9)


def test_relu_fixed_points_at_the_edges() -> None:
    act = mf.Activation("relu")
    assert mf.fixed_point(act, math.sqrt(1.5), 0.0) == 0.0
    assert mf.fixed_point(act, math.sqrt(2.5), 0.0) == math.inf
    assert mf.fixed_point(act, math.sqrt(2.0), 0.0, q0=3.0) == pytest.approx(3.0)
    assert mf.fixed_point(mf.Activation("identity"), 1.0, 0.1) == math.inf


def test_ordered_and_chaotic_phases() -> None:
    """chi_1 < 1: correlations go to c* = 1 and xi_c = xi_grad; chi_1 > 1: c* < 1."""
    ordered = mf.analyze("tanh", 1.0, 0.05)
    assert ordered.chi_1 < 1 and ordered.c_star == pytest.approx(1.0, abs=1e-6)
    assert ordered.xi_grad == pytest.approx(-1 / math.log(ordered.chi_1))
    assert ordered.chi_c == pytest.approx(ordered.chi_1, rel=1e-6)
    chaotic = mf.analyze("tanh", 1.5, 0.05)
    assert chaotic.chi_1 > 1 and chaotic.c_star is not None and chaotic.c_star < 0.9
    assert chaotic.xi_grad == math.inf
    assert chaotic.xi_c is not None and math.isfinite(chaotic.xi_c)


def test_theory_curve_sums_log_chi_backward() -> None:
    act = mf.Activation("relu")
    qs = mf.trajectory(act, 1.0, math.sqrt(1.5), 0.0, 6)
    assert qs == pytest.approx([0.75**k for k in range(6)], rel=1e-12)
    curve = mf.theory_log_curve(act, qs, math.sqrt(1.5))
    assert curve == pytest.approx([(5 - k) * math.log(0.75) for k in range(6)], rel=1e-12)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_analyze_every_elementwise_activation(name: str) -> None:
    record = mf.analyze(name, 1.2, 0.1)
    assert record.chi_1 > 0 and math.isfinite(record.log_chi_1)
    assert record.q_star >= 0
