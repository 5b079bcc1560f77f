r"""The math of torch.optim's Adam variants, as stateless functions over lists of tensors:
NAdam, RAdam and Adamax (Adadelta, whose state is not Adam's, is in
:mod:`torchzero.functional.adadelta`).

Each updates its moments in place and returns the direction $d$ as new tensors, such that the
parameters move by $-\text{lr}\cdot d$; per-tensor numbers (step counts, NAdam's $\mu$
products) are lists with one value per tensor, in the tensors' order. The operations are
torch.optim's single-tensor ones, in the same order; half-precision tensors are computed in
float32 (their states stored back in their dtype), where torch's would divide 0 by an ``eps``
rounded to 0.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["nadam_mu", "nadam_direction", "radam_direction", "adamax_direction"]


_HALF = (torch.float16, torch.bfloat16)


def _wide(*tensors: Tensor) -> tuple[Tensor, ...]:
    """Float32 copies of half-precision tensors (the others as they are): an ``eps`` of 1e-8
    is 0 in float16, and ``0 / 0`` would follow a zero gradient; the results are copied back."""
    return tuple(t.float() if t.dtype in _HALF else t for t in tensors)


def _back(pairs: Sequence[tuple[Tensor, Tensor]]) -> None:
    for state, wide in pairs:
        if wide is not state:
            state.copy_(wide)


def _moments_(g: Tensor, m: Tensor, v: Tensor, beta1: float, beta2: float) -> None:
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)


def nadam_mu(beta1: float, step: float, momentum_decay: float) -> float:
    r"""NAdam's momentum coefficient at step $t$: $\mu_t = \beta_1 (1 - \tfrac12 \cdot 0.96^{t\psi})$
    with $\psi$ = ``momentum_decay`` (Dozat, 2016, as torch.optim.NAdam schedules it)."""
    return beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))


def nadam_direction(
    grads: Sequence[Tensor],
    exp_avg: Sequence[Tensor],
    exp_avg_sq: Sequence[Tensor],
    mu_product: Sequence[Tensor],
    steps: Sequence[float],
    beta1: float,
    beta2: float,
    eps: float,
    momentum_decay: float,
) -> list[Tensor]:
    r"""NAdam (Dozat, 2016): with $\mu_t$ from :func:`nadam_mu` and $\Pi_t = \prod_{i\le t}\mu_i$
    (``mu_product``: 0-dim tensors, updated in place; torch keeps them in its scalar dtype,
    float32 unless the default dtype is float64, and so does the module),

    $$
    d = \frac{1-\mu_t}{1-\Pi_t}\,\frac{g}{\sqrt{v/(1-\beta_2^t)}+\epsilon}
      + \frac{\mu_{t+1}}{1-\Pi_t\mu_{t+1}}\,\frac{m}{\sqrt{v/(1-\beta_2^t)}+\epsilon}
    $$

    after $m \leftarrow \beta_1 m + (1-\beta_1) g$ and $v \leftarrow \beta_2 v + (1-\beta_2) g^2$.
    """
    out = []
    for i, (g0, m0, v0, t) in enumerate(zip(grads, exp_avg, exp_avg_sq, steps)):
        g, m, v = _wide(g0, m0, v0)
        _moments_(g, m, v, beta1, beta2)
        t = float(t)
        mu, mu_next = nadam_mu(beta1, t, momentum_decay), nadam_mu(beta1, t + 1, momentum_decay)
        mu_product[i].mul_(mu)
        prod = float(mu_product[i])
        denom = v.div(1 - beta2**t).sqrt_().add_(eps)
        d = g.div(denom).mul_((1.0 - mu) / (1.0 - prod))
        d.addcdiv_(m, denom, value=mu_next / (1.0 - prod * mu_next))
        _back([(m0, m), (v0, v)])
        out.append(d.to(g0.dtype))
    return out


def radam_direction(
    grads: Sequence[Tensor],
    exp_avg: Sequence[Tensor],
    exp_avg_sq: Sequence[Tensor],
    steps: Sequence[float],
    beta1: float,
    beta2: float,
    eps: float,
) -> list[Tensor]:
    r"""RAdam (Liu et al., 2020): with $\rho_\infty = 2/(1-\beta_2) - 1$ and
    $\rho_t = \rho_\infty - 2t\beta_2^t/(1-\beta_2^t)$, the direction is the bias-corrected first
    moment $\hat m = m / (1-\beta_1^t)$, times, once $\rho_t > 5$ (the variance of the adaptive
    step is then tractable), the rectification
    $r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}}$
    and $\sqrt{1-\beta_2^t} / (\sqrt v + \epsilon)$.
    """
    rho_inf = 2 / (1 - beta2) - 1
    out = []
    for g0, m0, v0, t in zip(grads, exp_avg, exp_avg_sq, steps):
        g, m, v = _wide(g0, m0, v0)
        _moments_(g, m, v, beta1, beta2)
        t = float(t)
        bc1, bc2 = 1 - beta1**t, 1 - beta2**t
        d = m / bc1
        rho_t = rho_inf - 2 * t * (beta2**t) / bc2
        if rho_t > 5.0:
            rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            adaptive = (bc2**0.5) / v.sqrt().add_(eps)
            d = d * adaptive * rect
        _back([(m0, m), (v0, v)])
        out.append(d.to(g0.dtype))
    return out


def adamax_direction(
    grads: Sequence[Tensor], exp_avg: Sequence[Tensor], exp_inf: Sequence[Tensor], steps: Sequence[float], beta1: float, beta2: float, eps: float
) -> list[Tensor]:
    r"""Adamax (Kingma & Ba, 2014, Section 7.1): $m \leftarrow \beta_1 m + (1-\beta_1) g$,
    $u \leftarrow \max(\beta_2 u, |g| + \epsilon)$, and $d = \frac{m}{(1-\beta_1^t)\, u}$."""
    out = []
    for g0, m0, u0, t in zip(grads, exp_avg, exp_inf, steps):
        g, m, u = _wide(g0, m0, u0)
        m.lerp_(g, 1 - beta1)
        torch.maximum(u.mul_(beta2), g.abs().add_(eps), out=u)
        d = m.div(u).mul_(1.0 / (1 - beta1 ** float(t)))
        _back([(m0, m), (u0, u)])
        out.append(d.to(g0.dtype))
    return out
