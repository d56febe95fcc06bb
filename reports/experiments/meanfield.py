r"""Mean-field signal propagation (Poole et al. 2016; Schoenholz et al. 2017), by quadrature.

For a wide network :math:`h_{l+1} = W_{l+1}\,\phi(h_l) + b_{l+1}` with
:math:`W_{ij} \sim \mathcal{N}(0, \sigma_w^2 / n)` and :math:`b_i \sim \mathcal{N}(0, \sigma_b^2)`,
the pre-activations of layer :math:`l` are Gaussian with variance :math:`q_l`, and

.. math::
    q_{l+1} = \mathcal{V}(q_l) = \sigma_w^2\, \mathbb{E}_z\big[\phi(\sqrt{q_l}\, z)^2\big]
    + \sigma_b^2, \qquad
    \chi(q) = \sigma_w^2\, \mathbb{E}_z\big[\phi'(\sqrt{q}\, z)^2\big],
    \qquad z \sim \mathcal{N}(0, 1).

Back-propagation multiplies the mean square of :math:`\partial L / \partial h` by
:math:`\chi(q_l)` per layer, so :math:`\ln \mathbb{E}[(\partial L/\partial h_l)^2]` changes by
:math:`\ln \chi(q_l)` per layer travelled backward; at the fixed point :math:`q^*` of the
length map that is :math:`\ln \chi_1`, :math:`\chi_1 = \chi(q^*)`. Depth scales:
:math:`\xi_q = -1/\ln \mathcal{V}'(q^*)` (how fast lengths settle),
:math:`\xi_c = -1/\ln \chi_c` (how fast correlations settle, :math:`\chi_c = \chi_1` when
:math:`c^* = 1`) and :math:`\xi_\nabla = -1/\ln \chi_1` (gradients, when :math:`\chi_1 < 1`).

Expectations use Gauss–Hermite quadrature with an **even** number of nodes: an odd rule
puts a node at :math:`z = 0`, exactly on ReLU's kink, where the engine's convention
:math:`\phi'(0) = 0` then takes that node's whole weight (about 0.17 of the mass for 21
nodes) and gives a wrong :math:`\chi_1`. With an even rule the nodes are symmetric and avoid
0, so for ReLU and leaky ReLU the expectations are exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
from numpy.polynomial.hermite import hermgauss
from numpy.typing import NDArray

from manual.registry import ACTIVATIONS, OpInfo

Vector = NDArray[np.float64]
NODES = 160  # hermgauss is finite up to ~360 nodes; twice this is the check rule
# q below this is the q* = 0 limit and above BIG the q* = infinity limit: chi is then
# evaluated at these values, where scale-free activations (ReLU) still give the limit.
TINY, BIG = 1e-30, 1e30


@cache
def gauss_hermite(nodes: int = NODES) -> tuple[Vector, Vector]:
    r"""Nodes and weights with :math:`\mathbb{E}_{z \sim \mathcal{N}(0,1)}[f(z)] \approx
    \sum_i w_i f(z_i)`.

    ``hermgauss`` integrates against :math:`e^{-x^2}`; :math:`z = \sqrt2\,x` and the weights
    are divided by :math:`\sqrt\pi` so that they sum to 1.
    """
    x, w = hermgauss(nodes)
    return math.sqrt(2.0) * x, w / math.sqrt(math.pi)


def is_elementwise(op: OpInfo) -> bool:
    """Whether ``op`` acts on each entry alone (softmax, for one, mixes a row)."""
    x = np.linspace(-2.0, 2.0, 12).reshape(4, 3)
    whole, _ = op.forward(x.copy())
    column, _ = op.forward(x[:, :1].copy())
    return bool(np.allclose(whole[:, :1], column, rtol=1e-12, atol=1e-12))


def elementwise_activations() -> list[str]:
    """Every registry activation that mean-field theory applies to."""
    return [name for name, op in ACTIVATIONS.items() if is_elementwise(op)]


@dataclass(frozen=True)
class Activation:
    """:math:`\\phi` and :math:`\\phi'` of a registry activation, on float64 arrays."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def phi(self, x: Vector) -> Vector:
        y, _ = ACTIVATIONS[self.name].forward(np.asarray(x, dtype=np.float64), **self.options)
        return np.asarray(y)

    def dphi(self, x: Vector) -> Vector:
        x = np.asarray(x, dtype=np.float64)
        op = ACTIVATIONS[self.name]
        _, saved = op.forward(x, **self.options)
        return np.asarray(op.backward(np.ones_like(x), saved))


def expect(f: Callable[[Vector], Vector], q: float, nodes: int = NODES) -> float:
    r""":math:`\mathbb{E}_z[f(\sqrt{q}\, z)]` by ``nodes``-point Gauss–Hermite quadrature."""
    z, w = gauss_hermite(nodes)
    return float(w @ f(math.sqrt(q) * z))


def length_map(act: Activation, q: float, sigma_w: float, sigma_b: float,
               nodes: int = NODES) -> float:
    r""":math:`\mathcal{V}(q) = \sigma_w^2 \mathbb{E}[\phi(\sqrt q z)^2] + \sigma_b^2`."""
    return sigma_w**2 * expect(lambda x: act.phi(x) ** 2, q, nodes) + sigma_b**2


def chi(act: Activation, q: float, sigma_w: float, nodes: int = NODES) -> float:
    r""":math:`\chi(q) = \sigma_w^2 \mathbb{E}[\phi'(\sqrt q z)^2]`: the gradient's factor."""
    q = min(max(q, TINY), BIG)
    return sigma_w**2 * expect(lambda x: act.dphi(x) ** 2, q, nodes)


def length_map_slope(act: Activation, q: float, sigma_w: float, nodes: int = NODES) -> float:
    r""":math:`\mathcal{V}'(q) = \sigma_w^2 \mathbb{E}[\phi(\sqrt q z)\phi'(\sqrt q z) z]/\sqrt q`.

    (By Stein's lemma this is :math:`\sigma_w^2 \mathbb{E}[\phi'^2 + \phi\phi'']`, without
    needing :math:`\phi''`.)
    """
    q = min(max(q, TINY), BIG)
    z, w = gauss_hermite(nodes)
    x = math.sqrt(q) * z
    return float(sigma_w**2 * (w @ (act.phi(x) * act.dphi(x) * z)) / math.sqrt(q))


def trajectory(act: Activation, q1: float, sigma_w: float, sigma_b: float, depth: int,
               nodes: int = NODES) -> list[float]:
    """:math:`q_1, \\ldots, q_L`: the pre-activation variances layer by layer."""
    qs = [q1]
    for _ in range(depth - 1):
        qs.append(length_map(act, min(qs[-1], BIG), sigma_w, sigma_b, nodes))
    return qs


def fixed_point(act: Activation, sigma_w: float, sigma_b: float, q0: float = 1.0,
                nodes: int = NODES, rtol: float = 1e-13, max_iter: int = 20000) -> float:
    """:math:`q^*` by iterating the length map from ``q0``; 0 or ``inf`` when it runs away.

    Where every :math:`q` is a fixed point (ReLU with :math:`\\sigma_w^2 = 2`,
    :math:`\\sigma_b = 0`) this returns ``q0``.
    """
    q = q0
    for _ in range(max_iter):
        new = length_map(act, q, sigma_w, sigma_b, nodes)
        if not math.isfinite(new) or new > BIG:
            return math.inf
        if new < TINY:
            return 0.0
        if abs(new - q) <= rtol * max(new, TINY):
            return new
        q = new
    # Not settled after max_iter steps: a slow drift (identity with sigma_b > 0) runs away.
    return math.inf if new > q0 else q


def correlation_fixed_point(act: Activation, q_star: float, sigma_w: float, sigma_b: float,
                            nodes: int = 64, max_iter: int = 2000) -> tuple[float, float]:
    r"""``(c*, chi_c)`` of the correlation map at :math:`q^*`, by 2-D quadrature.

    .. math::
        c_{l+1} = \frac{\sigma_w^2 \mathbb{E}[\phi(u_1)\phi(u_2)] + \sigma_b^2}{q^*},\quad
        \chi_c = \sigma_w^2 \mathbb{E}[\phi'(u_1)\phi'(u_2)],

    with :math:`u_1 = \sqrt{q^*} z_1`, :math:`u_2 = \sqrt{q^*}(c z_1 + \sqrt{1-c^2} z_2)`,
    iterated from :math:`c = 0.5`.
    """
    z, w = gauss_hermite(nodes)
    z1, z2 = np.meshgrid(z, z, indexing="ij")
    ww = np.outer(w, w)
    s = math.sqrt(q_star)
    u1 = s * z1
    phi1, dphi1 = act.phi(u1), act.dphi(u1)
    c = 0.5
    for _ in range(max_iter):
        u2 = s * (c * z1 + math.sqrt(max(1 - c * c, 0.0)) * z2)
        new = (sigma_w**2 * float(np.sum(ww * phi1 * act.phi(u2))) + sigma_b**2) / q_star
        new = min(max(new, -1.0), 1.0)
        if abs(new - c) < 1e-12:
            c = new
            break
        c = new
    u2 = s * (c * z1 + math.sqrt(max(1 - c * c, 0.0)) * z2)
    return c, sigma_w**2 * float(np.sum(ww * dphi1 * act.dphi(u2)))


def _depth_scale(factor: float) -> float:
    """:math:`-1/\\ln f`: finite for :math:`0 < f < 1`, infinite at or above 1."""
    if factor <= 0:
        return 0.0
    return -1.0 / math.log(factor) if factor < 1 else math.inf


@dataclass
class MeanFieldRecord:
    """Mean-field quantities of one activation at one :math:`(\\sigma_w, \\sigma_b)`."""

    activation: str
    options: dict[str, Any]
    sigma_w: float
    sigma_b: float
    nodes: int
    q_star: float
    chi_1: float
    log_chi_1: float
    length_slope: float
    xi_q: float
    c_star: float | None
    chi_c: float | None
    xi_c: float | None
    xi_grad: float


def analyze(name: str, sigma_w: float, sigma_b: float, options: dict[str, Any] | None = None,
            nodes: int = NODES) -> MeanFieldRecord:
    """:math:`q^*`, :math:`\\chi_1` and the depth scales of ``name`` at ``(sigma_w, sigma_b)``."""
    act = Activation(name, dict(options or {}))
    q_star = fixed_point(act, sigma_w, sigma_b, nodes=nodes)
    chi_1 = chi(act, q_star, sigma_w, nodes)
    slope = length_map_slope(act, q_star, sigma_w, nodes)
    c_star = chi_c = xi_c = None
    if 0 < q_star < math.inf:
        c_star, chi_c = correlation_fixed_point(act, q_star, sigma_w, sigma_b)
        xi_c = _depth_scale(chi_c)
    return MeanFieldRecord(
        activation=name, options=act.options, sigma_w=sigma_w, sigma_b=sigma_b, nodes=nodes,
        q_star=q_star, chi_1=chi_1, log_chi_1=math.log(chi_1) if chi_1 > 0 else -math.inf,
        length_slope=slope, xi_q=_depth_scale(slope), c_star=c_star, chi_c=chi_c, xi_c=xi_c,
        xi_grad=_depth_scale(chi_1),
    )


def theory_log_curve(act: Activation, qs: list[float], sigma_w: float,
                     nodes: int = NODES) -> list[float]:
    r"""The predicted :math:`\ln \mathbb{E}[\delta_l^2]` relative to the top layer.

    .. math::
        \ln \mathbb{E}[\delta_l^2] - \ln \mathbb{E}[\delta_L^2] = \sum_{k=l}^{L-1} \ln\chi(q_k),
        \qquad \delta_l = \partial L / \partial h_l

    ``qs`` is the trajectory :math:`q_1, \ldots, q_L`; the last entry is 0 (the anchor).
    """
    curve = [0.0]
    for q in reversed(qs[:-1]):
        curve.append(curve[-1] + math.log(chi(act, q, sigma_w, nodes)))
    return curve[::-1]
