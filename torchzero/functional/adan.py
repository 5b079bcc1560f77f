r"""Adan's math as a stateless multi-tensor function."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .powers import add_eps_

from ._scalars import Scalar, collapse, is_value, smap

__all__ = ["adan_"]


def adan_(
    tensors: Sequence[Tensor],
    exp_avg: Sequence[Tensor],
    exp_avg_diff: Sequence[Tensor],
    exp_avg_sq: Sequence[Tensor],
    prev: Sequence[Tensor],
    step: int | Sequence[int],
    beta1: Scalar,
    beta2: Scalar,
    beta3: Scalar,
    eps: Scalar,
) -> list[Tensor]:
    r"""One Adan step; updates the state in place and returns the direction as new tensors.

    In the convention of the official implementation ($\beta$ weighs the old value):

    $$
    \begin{aligned}
    d_t &= u_t - u_{t-1} \\
    m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, u_t \\
    n_t &= \beta_2 n_{t-1} + (1-\beta_2)\, d_t \\
    v_t &= \beta_3 v_{t-1} + (1-\beta_3)\, (u_t + \beta_2 d_t)^2 \\
    \text{out} &= \frac{m_t / (1-\beta_1^t) + \beta_2\, n_t / (1-\beta_2^t)}{\sqrt{v_t / (1-\beta_3^t)} + \epsilon}
    \end{aligned}
    $$

    ``prev`` holds $u_{t-1}$ and is overwritten with $u_t$; on the first step it must hold
    $u_1$ itself (so $d_1 = 0$, as in the official code).
    """
    diff = list(torch._foreach_sub(tensors, prev))
    torch._foreach_copy_(prev, tensors)
    torch._foreach_lerp_(exp_avg, tensors, smap(lambda b: 1 - b, beta1))
    torch._foreach_lerp_(exp_avg_diff, diff, smap(lambda b: 1 - b, beta2))
    # diff <- u + beta2 * diff, the Nesterov-corrected update whose square is averaged
    torch._foreach_mul_(diff, beta2)
    torch._foreach_add_(diff, tensors)
    torch._foreach_mul_(exp_avg_sq, beta3)
    torch._foreach_addcmul_(exp_avg_sq, diff, diff, smap(lambda b: 1 - b, beta3))

    bc1 = collapse(smap(lambda b, t: 1 - b**t, beta1, step))
    bc2 = collapse(smap(lambda b, t: b / (1 - b**t), beta2, step))  # beta2 folded in
    bc3 = collapse(smap(lambda b, t: (1 - b**t) ** 0.5, beta3, step))
    denom = list(torch._foreach_sqrt(exp_avg_sq))
    torch._foreach_div_(denom, bc3)
    if not is_value(eps, 0):
        add_eps_(denom, eps)
    out = list(torch._foreach_div(exp_avg, bc1))
    torch._foreach_add_(out, torch._foreach_mul(exp_avg_diff, bc2))
    torch._foreach_div_(out, denom)
    return out
