r"""Why GELU at :math:`\sigma_b = 0` measured a shallower gradient slope than mean-field theory.

Round 1's grid (width 256, depth 50, batch 32, 3 seeds) found GELU with kaiming or orthogonal
init (:math:`\sigma_w^2 = 2`, ReLU's gain) at -0.37 nats/layer against a prediction of -0.58,
while SiLU matched. This script separates the three candidate causes:

1. **quadrature**: the theory slope from the 160-node Gauss-Hermite rule against 320 nodes and
   against adaptive integration (``scipy.integrate.quad`` of :math:`\phi'(\sqrt q z)^2` and
   :math:`\phi(\sqrt q z)^2` against the normal density, on the same trajectory recomputed
   with quad);
2. **the theory itself**: the fixed point :math:`q^*`, :math:`\mathcal{V}'(0)`, and how the
   trajectory :math:`q_l` crosses from the ReLU-like regime (:math:`\mathcal{V}(q) \approx q`,
   :math:`\chi \approx 1`) to the linear one (:math:`\chi \to \sigma_w^2 \phi'(0)^2 = 1/2`);
3. **finite width**: the measured slope (manual engine, the experiment's own runner) at widths
   128 ... 1024, with the spread of the per-seed slopes and of :math:`\ln q_L`, and the
   forward :math:`\ln \overline{h_L^2}` against theory's :math:`\ln q_L`.

Run: ``OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/gelu_meanfield.py [--quick]``
(about a minute; single-threaded BLAS; OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

import numpy as np
from scipy import integrate

from reports.experiments import deepnet, meanfield, vanishing
from reports.experiments.deepnet import Size

SIGMA_W = math.sqrt(2.0)  # ReLU's gain: what kaiming / orthogonal give GELU and SiLU


def quad_expect(f: Callable[[np.ndarray], np.ndarray], q: float) -> float:
    """:math:`\\mathbb{E}_z[f(\\sqrt q z)]` by adaptive quadrature over the real line."""
    s = math.sqrt(q)

    def integrand(z: float) -> float:
        return float(f(np.array([s * z]))[0]) * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    value, _ = integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-15, epsrel=1e-13,
                              limit=400)
    return float(value)


def quad_theory_slope(act: meanfield.Activation, q1: float, depth: int) -> tuple[float, float]:
    """The theory slope with trajectory and chi both by adaptive quadrature; and q_L."""
    qs = [q1]
    for _ in range(depth - 1):
        qs.append(SIGMA_W**2 * quad_expect(lambda x: act.phi(x) ** 2, qs[-1]))
    curve = [0.0]
    for q in reversed(qs[:-1]):
        curve.append(curve[-1] + math.log(SIGMA_W**2 * quad_expect(lambda x: act.dphi(x) ** 2,
                                                                    q)))
    return deepnet.backward_slope(curve[::-1]), qs[-1]


def theory(name: str, depth: int) -> None:
    act = meanfield.Activation(name)
    qs = meanfield.trajectory(act, SIGMA_W**2, SIGMA_W, 0.0, depth)
    gh = {n: deepnet.backward_slope(meanfield.theory_log_curve(act, qs, SIGMA_W, n))
          for n in (160, 320)}
    adaptive, q_last = quad_theory_slope(act, SIGMA_W**2, depth)
    q_star = meanfield.fixed_point(act, SIGMA_W, 0.0)
    v0 = meanfield.length_map_slope(act, 1e-12, SIGMA_W)
    chis = [meanfield.chi(act, q, SIGMA_W) for q in qs]
    ratio = [meanfield.length_map(act, q, SIGMA_W, 0.0) / q for q in (2.0, 1.0, 0.5, 0.1)]
    # Conditioning: how much the prediction moves when the starting length moves by 1%.
    shifted = meanfield.trajectory(act, SIGMA_W**2 * math.exp(0.01), SIGMA_W, 0.0, depth)
    gain = (math.log(shifted[-1]) - math.log(qs[-1])) / 0.01
    moved = (deepnet.backward_slope(meanfield.theory_log_curve(act, shifted, SIGMA_W))
             - gh[160]) / 0.01
    print(f"{name:5s} depth {depth}: theory slope GH160 {gh[160]:+.5f}  GH320 {gh[320]:+.5f}"
          f"  adaptive {adaptive:+.5f};  q_L {qs[-1]:.3e} (adaptive {q_last:.3e});  q* {q_star}"
          f"  V'(0) {v0:.4f};  V(q)/q at q=2,1,.5,.1: {', '.join(f'{r:.3f}' for r in ratio)};"
          f"  chi(q_1) {chis[0]:.3f}  chi(q_L) {chis[-1]:.3f};  d ln q_L/d ln q_1 {gain:.2f},"
          f"  d slope/d ln q_1 {moved:.3f}")


def measured(name: str, init: str, size: Size) -> dict[str, float]:
    setting = vanishing.grid_setting(name, init, size)
    record = deepnet.run_setting(setting, engines=("manual",))
    slopes = np.array(record.seed_slopes)
    layers = record.layers["manual"]
    return {"theory": record.theory_slope, "measured": record.measured_slope["manual"],
            "seed_mean": float(np.mean(slopes)), "seed_sd": float(np.std(slopes, ddof=1)),
            "ln_hL2": math.log(layers[-1].preact_ms), "ln_qL": math.log(record.q_theory[-1])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="widths 128 and 256 only")
    args = parser.parse_args(argv)
    for name in ("gelu", "silu"):
        for depth in (30, 50):
            theory(name, depth)
    widths = (128, 256) if args.quick else (128, 256, 512, 1024)
    print("\nmeasured (manual engine), depth 50, batch 32; 'measured' is the experiment's slope"
          " (of ln of the seed-mean E[δ²]), 'seeds' the mean ± sd of per-seed slopes")
    for name in ("gelu", "silu"):
        for init in ("kaiming", "orthogonal"):
            fits = []
            for width in widths:
                seeds = 6 if width <= 256 else (4 if width == 512 else 2)
                if init == "orthogonal" and width == 1024:
                    seeds = 1
                m = measured(name, init, Size(width, 50, 32, seeds))
                fits.append((width, m["seed_mean"]))
                print(f"{name:5s} {init:10s} n={width:5d} ({seeds} seeds): theory "
                      f"{m['theory']:+.3f}  measured {m['measured']:+.3f}  seeds "
                      f"{m['seed_mean']:+.3f} ± {m['seed_sd']:.3f}   ln h_L² {m['ln_hL2']:+.2f}"
                      f" vs theory ln q_L {m['ln_qL']:+.2f}")
            n = np.array([w for w, _ in fits], dtype=float)
            y = np.array([s for _, s in fits])
            b, a = np.polyfit(1 / n, y, 1)
            print(f"    fit seed-mean slope = a + b/n: a (n -> inf) {a:+.3f}, b {b:+.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
