r"""AdEMAMix (Pagliardini et al., 2024): Adam with a second, slow EMA of the gradient mixed in.

$$
m_1 \leftarrow \beta_1 m_1 + (1-\beta_1) g, \quad m_2 \leftarrow \beta_3 m_2 + (1-\beta_3) g,
\quad v \leftarrow \beta_2 v + (1-\beta_2) g^2, \qquad
d = \frac{m_1/(1-\beta_1^t) + \alpha\, m_2}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}
$$

with $\alpha$ and $\beta_3$ optionally warmed up: $\alpha$ linearly from 0, $\beta_3$ linearly in
half-life $\ln\tfrac12/\ln\beta - 1$ from $\beta_1$.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["ademamix_alpha", "ademamix_beta3", "ademamix_direction"]


def ademamix_alpha(step: int, alpha: float, warmup: int | None) -> float:
    r"""$\alpha_t = \alpha \cdot t/T_\alpha$ for $t < T_\alpha$ (``warmup``), then $\alpha$."""
    if warmup is None or step >= warmup:
        return alpha
    a = step / float(warmup)
    return a * alpha


def _half_life(beta: float) -> float:
    return math.log(0.5) / math.log(beta + 1e-8) - 1


def ademamix_beta3(step: int, beta3: float, beta1: float, warmup: int | None) -> float:
    r"""$\beta_{3,t}$: for $t < T_{\beta_3}$ (``warmup``) the $\beta$ whose half-life
    $h(\beta) = \ln\tfrac12 / \ln(\beta + 10^{-8}) - 1$ interpolates linearly between
    $h(\beta_1)$ and $h(\beta_3)$; then $\beta_3$."""
    if warmup is None or step >= warmup:
        return beta3
    a = step / float(warmup)
    h = (1.0 - a) * _half_life(beta1) + a * _half_life(beta3)
    return math.pow(0.5, 1 / (h + 1))


def ademamix_direction(
    grads: Sequence[Tensor],
    exp_avg_fast: Sequence[Tensor] | None,
    exp_avg_slow: Sequence[Tensor],
    exp_avg_sq: Sequence[Tensor],
    step: int,
    beta1: float,
    beta2: float,
    beta3: float,
    alpha: float,
    eps: float,
) -> list[Tensor]:
    r"""Updates the three moments in place (for tensors that share ``step`` and the settings;
    ``exp_avg_fast`` is ``None`` when $\beta_1 = 0$: $m_1 = g$) and returns $d$ as new tensors.
    ``beta3`` and ``alpha`` are this step's (after their warm-up)."""
    grads = list(grads)
    if not grads:
        return []
    bc1 = 1 - beta1**step
    bc2 = 1 - beta2**step
    if exp_avg_fast is not None:
        fast = list(exp_avg_fast)
        torch._foreach_mul_(fast, beta1)
        torch._foreach_add_(fast, grads, alpha=1 - beta1)
    else:
        fast = grads
    slow = list(exp_avg_slow)
    torch._foreach_mul_(slow, beta3)
    torch._foreach_add_(slow, grads, alpha=1 - beta3)
    sq = list(exp_avg_sq)
    torch._foreach_mul_(sq, beta2)
    torch._foreach_addcmul_(sq, grads, grads, value=1 - beta2)
    denom = torch._foreach_sqrt(sq)
    torch._foreach_div_(denom, math.sqrt(bc2))
    torch._foreach_add_(denom, eps)
    num = torch._foreach_div(fast, bc1)
    torch._foreach_add_(num, torch._foreach_mul(slow, alpha))
    torch._foreach_div_(num, denom)
    return num
