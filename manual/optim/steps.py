r"""Optimizer steps as pure functions, with ``torch.optim``'s argument names and defaults.

Each step takes one parameter, its gradient and its state (a mapping of buffers; empty
before the first step) and returns the new parameter and the new state; nothing is changed
in place. The arithmetic follows the order of ``torch.optim``'s single-tensor path
(``foreach=False``) operation by operation, so that both engines round alike:

- ``add(x, alpha=a)`` is :math:`x_0 + a\,x`; ``addcmul(a, b, value=v)`` is
  :math:`x_0 + (v a) b`; ``addcdiv(a, b, value=v)`` is :math:`x_0 + (v a) / b`;
- ``lerp(x, w)`` is :math:`x_0 + w (x - x_0)` for :math:`|w| < 0.5`, else
  :math:`x - (x - x_0)(1 - w)`;
- hyper-parameters and bias corrections are Python floats (float64), cast to the
  parameter's dtype only where they meet an array, as ATen casts a scalar operand.

PyTorch's vectorised CPU kernels fuse some multiply-adds (one rounding where NumPy has
two), so float64 agrees to within a few units in the last place per step, not bit for bit.

The step count is kept as torch keeps it, a float32 scalar (exact up to :math:`2^{24}`
steps), and read back as a Python float for the bias corrections.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from manual.numerics import Array

State = Mapping[str, Array]


def _lerp(start: Array, end: Array, weight: float) -> Array:
    """``torch.lerp(start, end, weight)`` with its two branches."""
    w = start.dtype.type(weight)
    if abs(weight) < 0.5:
        return start + w * (end - start)
    return end - (end - start) * (start.dtype.type(1) - w)


def _next_step(state: State) -> tuple[Array, float]:
    step = np.asarray(float(state.get("step", 0.0)) + 1, dtype=np.float32)
    return step, float(step)


def sgd(param: Array, grad: Array, state: State, *, lr: float = 1e-3, momentum: float = 0,
        dampening: float = 0, weight_decay: float = 0, nesterov: bool = False,
        maximize: bool = False) -> tuple[Array, dict[str, Array]]:
    r"""Stochastic gradient descent, with momentum and Nesterov's look-ahead.

    .. math::
        g_t &= \pm\nabla + \lambda \theta_{t-1} \\
        b_t &= \begin{cases} g_t & t = 1 \\ \mu b_{t-1} + (1 - \tau) g_t & t > 1 \end{cases} \\
        \theta_t &= \theta_{t-1} - \gamma \,(g_t + \mu b_t \text{ if nesterov else } b_t)

    The momentum buffer starts at the first gradient (not at zero, which would scale the
    first step by :math:`1 - \tau`). State: ``momentum_buffer`` (when ``momentum != 0``).
    """
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + param.dtype.type(weight_decay) * param
    new_state: dict[str, Array] = {}
    if momentum != 0:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = g.copy()
        else:
            buf = buf * param.dtype.type(momentum) + param.dtype.type(1 - dampening) * g
        new_state["momentum_buffer"] = buf
        g = g + param.dtype.type(momentum) * buf if nesterov else buf
    return param + param.dtype.type(-lr) * g, new_state


def adam(param: Array, grad: Array, state: State, *, lr: float = 1e-3,
         betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
         amsgrad: bool = False, maximize: bool = False, decoupled_weight_decay: bool = False
         ) -> tuple[Array, dict[str, Array]]:
    r"""Adam (Kingma & Ba), with L2 weight decay added to the gradient.

    .. math::
        g_t &= \pm\nabla + \lambda\theta_{t-1} \\
        m_t &= m_{t-1} + (1 - \beta_1)(g_t - m_{t-1}), \quad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \theta_t &= \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t}\,
        \frac{m_t}{\sqrt{v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    with :math:`\max(\hat v_{t-1}, v_t)` in place of :math:`v_t` under ``amsgrad``. With
    ``decoupled_weight_decay`` the decay is AdamW's :math:`\theta \leftarrow
    \theta (1 - \gamma\lambda)` before the moments, and the gradient is left alone.
    State: ``step``, ``exp_avg``, ``exp_avg_sq`` (and ``max_exp_avg_sq``).
    """
    dt = param.dtype.type
    beta1, beta2 = betas
    g = -grad if maximize else grad
    step_array, step = _next_step(state)
    if weight_decay != 0:
        if decoupled_weight_decay:
            param = param * dt(1 - lr * weight_decay)
        else:
            g = g + dt(weight_decay) * param
    exp_avg = _lerp(state.get("exp_avg", np.zeros_like(param)), g, 1 - beta1)
    exp_avg_sq = state.get("exp_avg_sq", np.zeros_like(param)) * dt(beta2)
    exp_avg_sq = exp_avg_sq + dt(1 - beta2) * g * g
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2**0.5
    new_state = {"step": step_array, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
    second = exp_avg_sq
    if amsgrad:
        second = np.maximum(state.get("max_exp_avg_sq", np.zeros_like(param)), exp_avg_sq)
        new_state["max_exp_avg_sq"] = second
    denom = np.sqrt(second) / dt(bias_correction2_sqrt) + dt(eps)
    return param + dt(-step_size) * exp_avg / denom, new_state


def adamw(param: Array, grad: Array, state: State, *, lr: float = 1e-3,
          betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
          weight_decay: float = 1e-2, amsgrad: bool = False, maximize: bool = False
          ) -> tuple[Array, dict[str, Array]]:
    r"""AdamW (Loshchilov & Hutter): :func:`adam` with the weight decay decoupled.

    .. math:: \theta \leftarrow \theta\,(1 - \gamma\lambda) \text{ before the Adam update}

    so the decay is not divided by :math:`\sqrt{\hat v}`. Its default ``weight_decay`` is
    ``1e-2`` (Adam's is 0). State as :func:`adam`'s.
    """
    return adam(param, grad, state, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=True)


def rmsprop(param: Array, grad: Array, state: State, *, lr: float = 1e-2, alpha: float = 0.99,
            eps: float = 1e-8, weight_decay: float = 0, momentum: float = 0,
            centered: bool = False, maximize: bool = False) -> tuple[Array, dict[str, Array]]:
    r"""RMSprop (Hinton), optionally centred and with momentum.

    .. math::
        v_t &= \alpha v_{t-1} + (1 - \alpha) g_t^2, \quad
        \bar g_t = \bar g_{t-1} + (1 - \alpha)(g_t - \bar g_{t-1}) \\
        d_t &= \sqrt{v_t - \bar g_t^2 \text{ if centered else } v_t} + \epsilon \\
        b_t &= \mu b_{t-1} + g_t / d_t, \quad
        \theta_t = \theta_{t-1} - \gamma\,(b_t \text{ if } \mu > 0 \text{ else } g_t / d_t)

    :math:`\epsilon` is added outside the square root. The buffers start at zero.
    State: ``step``, ``square_avg`` (and ``momentum_buffer``, ``grad_avg``).
    """
    dt = param.dtype.type
    g = -grad if maximize else grad
    step_array, _ = _next_step(state)
    if weight_decay != 0:
        g = g + dt(weight_decay) * param
    square_avg = state.get("square_avg", np.zeros_like(param)) * dt(alpha)
    square_avg = square_avg + dt(1 - alpha) * g * g
    new_state: dict[str, Array] = {"step": step_array, "square_avg": square_avg}
    if centered:
        grad_avg = _lerp(state.get("grad_avg", np.zeros_like(param)), g, 1 - alpha)
        new_state["grad_avg"] = grad_avg
        avg = np.sqrt(square_avg + dt(-1) * grad_avg * grad_avg)
    else:
        avg = np.sqrt(square_avg)
    avg = avg + dt(eps)
    if momentum > 0:
        buf = state.get("momentum_buffer", np.zeros_like(param)) * dt(momentum) + g / avg
        new_state["momentum_buffer"] = buf
        return param + dt(-lr) * buf, new_state
    return param + dt(-lr) * g / avg, new_state


def adagrad(param: Array, grad: Array, state: State, *, lr: float = 1e-2, lr_decay: float = 0,
            weight_decay: float = 0, initial_accumulator_value: float = 0, eps: float = 1e-10,
            maximize: bool = False) -> tuple[Array, dict[str, Array]]:
    r"""Adagrad (Duchi et al.): every coordinate's step shrinks with its summed squares.

    .. math::
        s_t = s_{t-1} + g_t^2, \quad
        \theta_t = \theta_{t-1} - \frac{\gamma}{1 + (t - 1)\,\eta}\,
        \frac{g_t}{\sqrt{s_t} + \epsilon}

    with :math:`s_0` = ``initial_accumulator_value`` and :math:`\eta` = ``lr_decay``.
    State: ``step``, ``sum``.
    """
    dt = param.dtype.type
    g = -grad if maximize else grad
    step_array, step = _next_step(state)
    if weight_decay != 0:
        g = g + dt(weight_decay) * param
    clr = lr / (1 + (step - 1) * lr_decay)
    total = state.get("sum", np.full_like(param, initial_accumulator_value))
    total = total + dt(1) * g * g
    std = np.sqrt(total) + dt(eps)
    return param + dt(-clr) * g / std, {"step": step_array, "sum": total}
