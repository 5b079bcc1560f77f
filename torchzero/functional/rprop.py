r"""Rprop's math as a stateless multi-tensor function."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._scalars import Scalar

__all__ = ["rprop_"]


def rprop_(
    tensors: Sequence[Tensor],
    prev: Sequence[Tensor],
    step_size: Sequence[Tensor],
    nplus: Scalar,
    nminus: Scalar,
    lb: Scalar,
    ub: Scalar,
    prev_update: Sequence[Tensor] | None = None,
) -> list[Tensor]:
    r"""One Rprop step; updates the state in place and returns the update as new tensors.

    With $s = \operatorname{sign}(u_t) \cdot p$, where $p$ (``prev``) is the sign of the previous
    update, or 0 where it was discarded:

    $$
    \begin{aligned}
    \Delta &\leftarrow \operatorname{clamp}(\Delta \cdot \eta,\ lb,\ ub), \quad
        \eta = \eta^+ \text{ where } s > 0,\ \eta^- \text{ where } s < 0,\ 1 \text{ where } s = 0 \\
    \text{out} &= \operatorname{sign}(u_t)\, \Delta \text{ where } s \ge 0; \quad
        0 \text{ (or, with } \mathtt{prev\_update}\text{, } -\mathtt{prev\_update}\text{) where } s < 0 \\
    p &\leftarrow \operatorname{sign}(u_t) \text{ where } s \ge 0, \quad 0 \text{ where } s < 0
    \end{aligned}
    $$

    ``step_size`` is $\Delta$; ``prev_update``, when given, holds the previous output and is
    overwritten with this one (weight backtracking). The factors are selected exactly (no
    rounding), with ``torch._foreach_*`` arithmetic on 0/1 masks.
    """
    sign = list(torch._foreach_sign(tensors))
    s = list(torch._foreach_mul(sign, prev))  # -1, 0 or 1
    same = list(torch._foreach_clamp_min(s, 0.0))  # 1 where the sign stayed
    flip = list(torch._foreach_clamp_max(s, 0.0))
    torch._foreach_neg_(flip)  # 1 where the sign flipped
    # factor = (1 - s^2) + same * nplus + flip * nminus: exactly one of the three terms is non-zero
    factor = s
    torch._foreach_mul_(factor, s)
    torch._foreach_neg_(factor)
    torch._foreach_add_(factor, 1.0)
    torch._foreach_mul_(same, nplus)
    torch._foreach_add_(factor, same)
    torch._foreach_add_(factor, torch._foreach_mul(flip, nminus))
    torch._foreach_mul_(step_size, factor)
    torch._foreach_clamp_min_(step_size, lb)
    torch._foreach_clamp_max_(step_size, ub)
    # where the sign flipped there is no step, and the update is forgotten (prev <- 0)
    keep = factor
    torch._foreach_copy_(keep, flip)
    torch._foreach_neg_(keep)
    torch._foreach_add_(keep, 1.0)
    torch._foreach_mul_(sign, keep)
    torch._foreach_copy_(prev, sign)
    out = list(torch._foreach_mul(sign, step_size))
    if prev_update is not None:
        # weight backtracking: where the sign flipped, undo the previous update instead
        torch._foreach_addcmul_(out, flip, prev_update, -1.0)
        torch._foreach_copy_(prev_update, out)
    return out
