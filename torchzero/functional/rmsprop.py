r"""RMSprop's math as stateless multi-tensor functions.

Scalars may be one value for all tensors or a list with one value per tensor.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._scalars import Scalar, collapse, is_one, is_value, smap
from .powers import add_eps_, abs_pow, ema_pow_, root

__all__ = ["rmsprop_moments_", "rmsprop_second_moment", "rmsprop_denominator"]


def rmsprop_moments_(
    tensors: Sequence[Tensor],
    exp_avg_sq: Sequence[Tensor],
    smoothing: Scalar,
    pow: Scalar = 2,
    exp_avg: Sequence[Tensor] | None = None,
) -> None:
    r"""Updates RMSprop's moving averages in place.

    $v \leftarrow \beta v + (1-\beta)|u|^p$ and, if ``exp_avg`` is given (centered RMSprop),
    $m \leftarrow \beta m + (1-\beta) u$ (as ``lerp``, like ``torch.optim.RMSprop``).
    """
    ema_pow_(exp_avg_sq, tensors, smoothing, pow)
    if exp_avg is not None:
        torch._foreach_lerp_(exp_avg, tensors, smap(lambda b: 1 - b, smoothing))


def rmsprop_second_moment(
    exp_avg_sq: Sequence[Tensor],
    step: int | Sequence[int],
    smoothing: Scalar,
    pow: Scalar = 2,
    exp_avg: Sequence[Tensor] | None = None,
    debiased: bool | Sequence[bool] = False,
) -> list[Tensor]:
    r"""The (centered, debiased) second moment $D$ that RMSprop divides by the root of.

    $$
    \hat v = v / c, \quad \hat m = m / c, \quad c = 1 - \beta^t \text{ (debiased) else } 1, \qquad
    D = \max(\hat v - |\hat m|^p, 0) \text{ (centered) else } \hat v
    $$

    Returns new tensors, except that ``exp_avg_sq`` itself is returned when there is nothing to
    do (not centered, not debiased): do not modify the result in place.
    """
    bc = collapse(smap(lambda b, t, d: 1 - b**t if d else 1.0, smoothing, step, debiased))
    if exp_avg is None and is_value(bc, 1.0):
        return list(exp_avg_sq)
    if is_value(bc, 1.0):
        v, m = list(exp_avg_sq), exp_avg
    else:
        v = list(torch._foreach_div(exp_avg_sq, bc))
        m = None if exp_avg is None else list(torch._foreach_div(exp_avg, bc))
    if m is None:
        return v
    if is_value(pow, 2):
        d = list(torch._foreach_addcmul(v, m, m, -1.0))
    else:
        d = list(torch._foreach_sub(v, abs_pow(m, pow)))
    # exact arithmetic keeps D >= 0; rounding can make it slightly negative, whose root is NaN
    torch._foreach_clamp_min_(d, 0.0)
    return d


def rmsprop_denominator(second_moment: Sequence[Tensor], eps: Scalar, pow: Scalar = 2, inplace: bool = False) -> list[Tensor]:
    r"""Returns $D^{1/p} + \epsilon$: new tensors, or ``second_moment`` itself modified with ``inplace``."""
    if inplace:
        denom = list(second_moment)
        if is_value(pow, 2):
            torch._foreach_sqrt_(denom)
        else:
            torch._foreach_pow_(denom, smap(lambda p: 1 / p, pow))
    else:
        denom = root(second_moment, pow)
    if not (is_one(eps) and eps == 0):
        add_eps_(denom, eps)
    return denom
