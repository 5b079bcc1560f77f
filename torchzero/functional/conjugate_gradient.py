r"""Nonlinear conjugate gradient: the $\beta$ of each method (stateless, multi-tensor).

All tensors are lists over the parameters, treated as one vector. With $g$ the gradient,
$g'$ the previous gradient, $y = g - g'$ and $p'$ the previous search direction (a descent
direction, $p = -g + \beta p'$), the methods' $\beta$ are, as in Nocedal & Wright (2nd ed.),
Section 5.2, and Hager & Zhang (2006):

| method | $\beta$ |
|---|---|
| Fletcher–Reeves | $g\cdot g \,/\, g'\cdot g'$ |
| Polak–Ribière | $g\cdot y \,/\, g'\cdot g'$ |
| Hestenes–Stiefel | $g\cdot y \,/\, p'\cdot y$ |
| Dai–Yuan | $g\cdot g \,/\, p'\cdot y$ |
| Liu–Storey | $g\cdot y \,/\, (-p'\cdot g')$ |
| Hager–Zhang | $\left(y - 2 p' \frac{y\cdot y}{p'\cdot y}\right)\cdot g \,/\, p'\cdot y$ |

A zero (or non-finite) denominator gives $\beta = 0$, a restart along $-g$. The values are 0-dim
tensors: no host sync.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["dot", "BETAS", "fletcher_reeves", "polak_ribiere", "hestenes_stiefel", "dai_yuan", "liu_storey", "hager_zhang"]


def dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    """$\\sum_i a_i \\cdot b_i$ over the lists, a 0-dim tensor (accumulated in float32 at least)."""
    products = torch._foreach_mul(list(a), list(b))
    parts = [p.sum(dtype=torch.float32) if p.dtype in (torch.float16, torch.bfloat16) else p.sum() for p in products]
    return torch.stack(parts).sum() if len(parts) > 1 else parts[0]


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    beta = num / den
    return torch.where(torch.isfinite(beta) & (den != 0), beta, torch.zeros_like(beta))


def _y(g: Sequence[Tensor], g_prev: Sequence[Tensor]) -> list[Tensor]:
    return list(torch._foreach_sub(list(g), list(g_prev)))


def fletcher_reeves(g: Sequence[Tensor], g_prev: Sequence[Tensor], p_prev: Sequence[Tensor]) -> Tensor:
    return _ratio(dot(g, g), dot(g_prev, g_prev))


def polak_ribiere(g: Sequence[Tensor], g_prev: Sequence[Tensor], p_prev: Sequence[Tensor]) -> Tensor:
    return _ratio(dot(g, _y(g, g_prev)), dot(g_prev, g_prev))


def hestenes_stiefel(g: Sequence[Tensor], g_prev: Sequence[Tensor], p_prev: Sequence[Tensor]) -> Tensor:
    y = _y(g, g_prev)
    return _ratio(dot(g, y), dot(p_prev, y))


def dai_yuan(g: Sequence[Tensor], g_prev: Sequence[Tensor], p_prev: Sequence[Tensor]) -> Tensor:
    return _ratio(dot(g, g), dot(p_prev, _y(g, g_prev)))


def liu_storey(g: Sequence[Tensor], g_prev: Sequence[Tensor], p_prev: Sequence[Tensor]) -> Tensor:
    return _ratio(dot(g, _y(g, g_prev)), -dot(p_prev, g_prev))


def hager_zhang(g: Sequence[Tensor], g_prev: Sequence[Tensor], p_prev: Sequence[Tensor]) -> Tensor:
    y = _y(g, g_prev)
    py = dot(p_prev, y)
    yy = dot(y, y)
    num = dot(y, g) - 2 * _ratio(yy, py) * dot(p_prev, g)
    return _ratio(num, py)


BETAS: dict[str, Callable[[Sequence[Tensor], Sequence[Tensor], Sequence[Tensor]], Tensor]] = {
    "fletcher_reeves": fletcher_reeves,
    "polak_ribiere": polak_ribiere,
    "hestenes_stiefel": hestenes_stiefel,
    "dai_yuan": dai_yuan,
    "liu_storey": liu_storey,
    "hager_zhang": hager_zhang,
}
