"""Weight initializers with ``torch.nn.init``'s formulas and argument names, in NumPy.

Each initializer is ``name(shape, rng, **options) -> float64 array``: the caller passes
an explicit ``np.random.default_rng(seed)``, nothing is seeded globally. Values are not
bit-identical to PyTorch's (the generators differ); the distributions are the same:

.. math::
    \\text{xavier: } \\sigma = g\\sqrt{\\tfrac{2}{\\text{fan\\_in} + \\text{fan\\_out}}}, \\quad
    \\text{kaiming: } \\sigma = \\frac{g}{\\sqrt{\\text{fan\\_mode}}}, \\quad
    \\text{uniform bound} = \\sqrt{3}\\,\\sigma

with :math:`g` from :func:`calculate_gain`. For a ``(out_features, in_features)`` weight,
``fan_in = in_features`` and ``fan_out = out_features`` (trailing dimensions multiply both,
as for convolution kernels).

:data:`INITIALIZERS` declares each one's options so that a spec's ``init`` is validated
once, at load (:func:`check`), with messages that name the option.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from manual.options import Choice, Option, Real

Shape = tuple[int, ...]
Initializer = Callable[..., NDArray[np.float64]]

_LINEAR_FNS = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
               "conv_transpose3d")
#: Every nonlinearity that ``torch.nn.init.calculate_gain`` knows.
NONLINEARITIES = (*_LINEAR_FNS, "sigmoid", "tanh", "relu", "leaky_relu", "selu")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    r"""The recommended gain for ``nonlinearity`` (``torch.nn.init.calculate_gain``).

    ================= ==========================================
    linear, conv*     :math:`1`
    sigmoid           :math:`1`
    tanh              :math:`5/3`
    relu              :math:`\sqrt{2}`
    leaky_relu        :math:`\sqrt{2 / (1 + \text{negative\_slope}^2)}` (``param``, 0.01 by default)
    selu              :math:`3/4`
    ================= ==========================================
    """
    if nonlinearity in _LINEAR_FNS or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, int | float) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def calculate_fan_in_and_fan_out(shape: Shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of ``shape`` (at least two dimensions)."""
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 dimensions, "
                         f"got shape {tuple(shape)}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fan(shape: Shape, mode: str) -> int:
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    return fan_in if mode == "fan_in" else fan_out


def zeros(shape: Shape, rng: np.random.Generator | None = None) -> NDArray[np.float64]:
    """All zeros (``zeros_``)."""
    return np.zeros(shape)


def ones(shape: Shape, rng: np.random.Generator | None = None) -> NDArray[np.float64]:
    """All ones (``ones_``)."""
    return np.ones(shape)


def constant(shape: Shape, rng: np.random.Generator | None = None, val: float = 0.0
             ) -> NDArray[np.float64]:
    """Every entry ``val`` (``constant_``)."""
    return np.full(shape, float(val))


def normal(shape: Shape, rng: np.random.Generator, mean: float = 0.0, std: float = 1.0
           ) -> NDArray[np.float64]:
    r""":math:`\mathcal{N}(\text{mean}, \text{std}^2)` (``normal_``)."""
    return rng.normal(mean, std, size=shape)


def uniform(shape: Shape, rng: np.random.Generator, a: float = 0.0, b: float = 1.0
            ) -> NDArray[np.float64]:
    r""":math:`\mathcal{U}(a, b)` (``uniform_``)."""
    return rng.uniform(a, b, size=shape)


def trunc_normal(shape: Shape, rng: np.random.Generator, mean: float = 0.0, std: float = 1.0,
                 a: float = -2.0, b: float = 2.0) -> NDArray[np.float64]:
    r""":math:`\mathcal{N}(\text{mean}, \text{std}^2)` cut to :math:`[a, b]` (``trunc_normal_``).

    ``a`` and ``b`` are absolute cut-offs, not multiples of ``std``. As PyTorch does, values
    are drawn by rejection: from the normal when it puts more than 0.3 of its mass in
    :math:`[a, b]`, otherwise from :math:`\mathcal{U}(a, b)` accepted with probability
    :math:`e^{-(x-\text{mean})^2 / 2\text{std}^2}` relative to the interval's mode.
    """
    mass = _normal_cdf((b - mean) / std) - _normal_cdf((a - mean) / std)
    out = np.empty(shape)
    flat = out.reshape(-1)
    pending = np.arange(flat.size)
    if mass > 0.3:
        while pending.size:
            draw = rng.normal(mean, std, size=pending.size)
            keep = (draw >= a) & (draw <= b)
            flat[pending[keep]] = draw[keep]
            pending = pending[~keep]
    else:
        mode = max(a, min(mean, b))
        log_peak = -0.5 * ((mode - mean) / std) ** 2
        while pending.size:
            draw = rng.uniform(a, b, size=pending.size)
            log_pdf = -0.5 * ((draw - mean) / std) ** 2 - log_peak
            keep = np.log(rng.uniform(size=pending.size)) <= log_pdf
            flat[pending[keep]] = draw[keep]
            pending = pending[~keep]
    return out


def _normal_cdf(x: float) -> float:
    return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0


def xavier_uniform(shape: Shape, rng: np.random.Generator, gain: float = 1.0
                   ) -> NDArray[np.float64]:
    r"""Glorot: :math:`\mathcal{U}(-a, a)`, :math:`a = g\sqrt{6 / (\text{fan\_in} +
    \text{fan\_out})}`."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape)


def xavier_normal(shape: Shape, rng: np.random.Generator, gain: float = 1.0
                  ) -> NDArray[np.float64]:
    r"""Glorot: :math:`\mathcal{N}(0, \sigma^2)`, :math:`\sigma = g\sqrt{2 / (\text{fan\_in} +
    \text{fan\_out})}`."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    return rng.normal(0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), size=shape)


def kaiming_uniform(shape: Shape, rng: np.random.Generator, a: float = 0.0,
                    mode: str = "fan_in", nonlinearity: str = "leaky_relu"
                    ) -> NDArray[np.float64]:
    r"""He: :math:`\mathcal{U}(-\beta, \beta)`, :math:`\beta = g\sqrt{3 / \text{fan\_mode}}`.

    :math:`g` = ``calculate_gain(nonlinearity, a)``.
    """
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(_fan(shape, mode))
    return rng.uniform(-bound, bound, size=shape)


def kaiming_normal(shape: Shape, rng: np.random.Generator, a: float = 0.0,
                   mode: str = "fan_in", nonlinearity: str = "leaky_relu"
                   ) -> NDArray[np.float64]:
    r"""He: :math:`\mathcal{N}(0, \sigma^2)`, :math:`\sigma = g / \sqrt{\text{fan\_mode}}`.

    ``nonlinearity="linear"`` gives LeCun's :math:`\sigma = 1/\sqrt{\text{fan\_in}}` (for SELU).
    """
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(shape, mode))
    return rng.normal(0.0, std, size=shape)


def orthogonal(shape: Shape, rng: np.random.Generator, gain: float = 1.0
               ) -> NDArray[np.float64]:
    r"""A (semi-)orthogonal matrix times ``gain`` (Saxe et al. 2013; ``orthogonal_``).

    The QR factor of a standard normal matrix, with column signs fixed by
    :math:`\operatorname{sign}(\operatorname{diag} R)` so that it is Haar-distributed.
    Rows are orthonormal when ``rows <= cols`` (:math:`W W^\top = g^2 I`), columns otherwise
    (:math:`W^\top W = g^2 I`); trailing dimensions are flattened into the columns.
    """
    if len(shape) < 2:
        raise ValueError(f"orthogonal needs a tensor with at least 2 dimensions, got shape "
                         f"{tuple(shape)}")
    rows = shape[0]
    cols = math.prod(shape) // rows if rows else 0
    if rows == 0 or cols == 0:
        return np.zeros(shape)
    flat = rng.standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape)


@dataclass(frozen=True)
class InitInfo:
    """One initializer: its function, its options, and whether it needs fans (>= 2 dims)."""

    name: str
    fn: Initializer
    options: Mapping[str, Option] = field(default_factory=dict)
    needs_fans: bool = False


_GAIN: Mapping[str, Option] = {"gain": Real(1.0)}
_KAIMING: Mapping[str, Option] = {"a": Real(0.0), "mode": Choice("fan_in", ("fan_in", "fan_out")),
            "nonlinearity": Choice("leaky_relu", NONLINEARITIES)}

INITIALIZERS: Mapping[str, InitInfo] = {info.name: info for info in [
    InitInfo("zeros", zeros),
    InitInfo("ones", ones),
    InitInfo("constant", constant, {"val": Real(0.0)}),
    InitInfo("normal", normal, {"mean": Real(0.0), "std": Real(1.0, low=0)}),
    InitInfo("uniform", uniform, {"a": Real(0.0), "b": Real(1.0)}),
    InitInfo("trunc_normal", trunc_normal, {"mean": Real(0.0),
                                            "std": Real(1.0, low=0, open_low=True),
                                            "a": Real(-2.0), "b": Real(2.0)}),
    InitInfo("xavier_uniform", xavier_uniform, _GAIN, needs_fans=True),
    InitInfo("xavier_normal", xavier_normal, _GAIN, needs_fans=True),
    InitInfo("kaiming_uniform", kaiming_uniform, _KAIMING, needs_fans=True),
    InitInfo("kaiming_normal", kaiming_normal, _KAIMING, needs_fans=True),
    InitInfo("orthogonal", orthogonal, _GAIN, needs_fans=True),
]}


def check(name: object, shape: Shape, options: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the problem if ``name(shape, **options)`` cannot be drawn."""
    if name not in INITIALIZERS:
        raise ValueError(f"unknown initializer {name!r} (known: {', '.join(INITIALIZERS)})")
    info = INITIALIZERS[str(name)]
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        known = ", ".join(info.options) or "none"
        raise ValueError(f"{name}: unknown option {unknown[0]!r} (known options: {known})")
    for key, value in options.items():
        problem = info.options[key].check(value)
        if problem:
            raise ValueError(f"{name}: {key} {problem}")
    if info.needs_fans and len(shape) < 2:
        raise ValueError(f"{name} needs a weight (fan in and fan out), not a tensor of shape "
                         f"{tuple(shape)}")
    bounds = {**{k: o.default for k, o in info.options.items()}, **options}
    if name == "uniform" and bounds["a"] > bounds["b"]:
        raise ValueError(f"uniform: needs a <= b, got a={bounds['a']!r}, b={bounds['b']!r}")
    if name == "trunc_normal" and bounds["a"] >= bounds["b"]:
        raise ValueError(f"trunc_normal: needs a < b, got a={bounds['a']!r}, "
                         f"b={bounds['b']!r}")


def initialize(name: str, shape: Shape, rng: np.random.Generator, **options: Any
               ) -> NDArray[np.float64]:
    """Draw an array of ``shape`` with the initializer ``name`` (validated first)."""
    check(name, shape, options)
    return INITIALIZERS[name].fn(tuple(shape), rng, **options)


def variance(name: str, shape: Shape, **options: Any) -> float:
    r"""The variance of one entry that ``name`` draws (the second central moment).

    Mean-field theory needs :math:`\sigma_w^2 = \text{fan\_in} \cdot \operatorname{Var}[W]`.
    ``orthogonal``'s entries have variance :math:`g^2 / \max(\text{rows}, \text{cols})`.
    """
    check(name, shape, options)
    o = {**{k: v.default for k, v in INITIALIZERS[name].options.items()}, **options}
    if name in ("zeros", "ones", "constant"):
        return 0.0
    if name == "normal":
        return float(o["std"]) ** 2
    if name == "uniform":
        return (o["b"] - o["a"]) ** 2 / 12
    if name == "trunc_normal":
        return _trunc_normal_variance(o["mean"], o["std"], o["a"], o["b"])
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    if name in ("xavier_uniform", "xavier_normal"):
        return float(o["gain"]) ** 2 * 2.0 / (fan_in + fan_out)
    if name in ("kaiming_uniform", "kaiming_normal"):
        fan = fan_in if o["mode"] == "fan_in" else fan_out
        return calculate_gain(o["nonlinearity"], o["a"]) ** 2 / fan
    return float(o["gain"]) ** 2 / max(shape[0], math.prod(shape) // shape[0])


def _trunc_normal_variance(mean: float, std: float, a: float, b: float) -> float:
    alpha, beta = (a - mean) / std, (b - mean) / std
    pdf = [math.exp(-0.5 * t * t) / math.sqrt(2 * math.pi) for t in (alpha, beta)]
    mass = _normal_cdf(beta) - _normal_cdf(alpha)
    first = (alpha * pdf[0] - beta * pdf[1]) / mass
    shift = (pdf[0] - pdf[1]) / mass
    return std * std * (1 + first - shift * shift)

