"""Adam's math as stateless multi-tensor functions.

Scalars may be one value for all tensors or a list with one value per tensor.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ._scalars import Scalar
from ._scalars import is_one as _one
from ._scalars import smap as _map

from .powers import add_eps_

__all__ = ["ema_moments_", "adam_direction"]



def ema_moments_(
    tensors: Sequence[Tensor],
    exp_avg: Sequence[Tensor],
    exp_avg_sq: Sequence[Tensor],
    beta1: Scalar,
    beta2: Scalar,
    pow: Scalar = 2,
    max_exp_avg_sq: Sequence[Tensor] | None = None,
) -> None:
    r"""Updates Adam's moments in place.

    $m \leftarrow \beta_1 m + (1-\beta_1) u$, $v \leftarrow \beta_2 v + (1-\beta_2)|u|^p$ and, if
    ``max_exp_avg_sq`` is given, $\hat v \leftarrow \max(\hat v, v)$ (for those tensors).
    """
    torch._foreach_lerp_(exp_avg, tensors, _map(lambda b: 1 - b, beta1))
    torch._foreach_mul_(exp_avg_sq, beta2)
    w2 = _map(lambda b: 1 - b, beta2)
    if _one(pow) and pow == 2:
        torch._foreach_addcmul_(exp_avg_sq, tensors, tensors, w2)
    else:
        powered = torch._foreach_pow(torch._foreach_abs(tensors), pow)
        torch._foreach_mul_(powered, w2)
        torch._foreach_add_(exp_avg_sq, powered)
    if max_exp_avg_sq is not None:
        torch._foreach_maximum_(max_exp_avg_sq, exp_avg_sq)


def adam_direction(
    numerator: Sequence[Tensor],
    exp_avg_sq: Sequence[Tensor],
    step: Any,
    beta1: Scalar,
    beta2: Scalar,
    eps: Scalar,
    alpha: Scalar = 1.0,
    pow: Scalar = 2,
    debiased: bool | Sequence[bool] = True,
) -> list[Tensor]:
    r"""Returns $\alpha \frac{n / (1-\beta_1^t)}{(v / (1-\beta_2^t))^{1/p} + \epsilon}$ as new tensors.

    ``numerator`` is usually the first moment; without ``debiased`` the corrections are 1.
    ``step`` is one number, one per tensor, or (under ``torch.compile``) one 0-dim tensor per
    tensor. Half-precision tensors (float16, bfloat16) are computed in float32, as torch's
    fused Adam computes them, and the result is returned in their dtype: ``eps=1e-8`` would
    round to 0 in float16. Where the denominator is 0 (``eps=0`` and a second moment of 0) the
    result is 0, not ``0/0``.
    """
    half = [i for i, n in enumerate(numerator) if n.dtype in (torch.float16, torch.bfloat16)]
    if half:
        num32 = [n.float() if i in half else n for i, n in enumerate(numerator)]
        v32 = [v.float() if i in half else v for i, v in enumerate(exp_avg_sq)]
        out = adam_direction(num32, v32, step, beta1, beta2, eps, alpha, pow, debiased)
        return [o.to(numerator[i].dtype) if i in half else o for i, o in enumerate(out)]
    bc1 = _map(lambda b, t, d: 1 - b**t if d else 1.0, beta1, step, debiased)
    bc2 = _map(lambda b, t, p, d: (1 - b**t) ** (1 / p) if d else 1.0, beta2, step, pow, debiased)
    if _one(pow) and pow == 2:
        denom = torch._foreach_sqrt(exp_avg_sq)
    else:
        denom = torch._foreach_pow(exp_avg_sq, _map(lambda p: 1 / p, pow))
    if not (_one(bc2) and isinstance(bc2, float) and bc2 == 1.0):
        torch._foreach_div_(denom, bc2)
    add_eps_(denom, eps)
    zero_eps = [i for i, e in enumerate(eps if not _one(eps) else [eps] * len(denom)) if e == 0]
    zero = [denom[i] == 0 for i in zero_eps]  # eps=0: where the denominator is 0 the result is 0
    torch._foreach_div_(denom, numerator)  # denom <- denom / n, then invert: n / denom
    torch._foreach_reciprocal_(denom)
    scale = _map(lambda a, b: a / b, alpha, bc1)
    if not (_one(scale) and isinstance(scale, float) and scale == 1):
        torch._foreach_mul_(denom, scale)
    for i, z in zip(zero_eps, zero):
        denom[i].masked_fill_(z, 0.0)
    return list(denom)
