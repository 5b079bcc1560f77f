r"""Schedule-Free averaging (Defazio et al., 2024): the weights of the average and the step.

The method keeps three sequences per parameter: $z$ (plain steps on the direction $d$), $x$
(a weighted average of the $z$'s, the point to evaluate) and $y = (1-\beta) z + \beta x$ (the
point where the gradient is taken, held in the parameter while training). With
$c_{t+1} = w_{t+1} / \sum_{i \le t+1} w_i$:

$$
z_{t+1} = z_t - \gamma_t d_t, \qquad x_{t+1} = (1-c_{t+1})\, x_t + c_{t+1} z_{t+1},
\qquad y_{t+1} = (1-\beta) z_{t+1} + \beta x_{t+1},
$$

which in terms of $y$ alone is
$y_{t+1} = \operatorname{lerp}(y_t, z_t, c_{t+1}) + \gamma_t\,(\beta(1-c_{t+1}) - 1)\, d_t$.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["schedule_free_weight", "schedule_free_step", "to_eval_point_", "to_train_point_"]


def schedule_free_weight(
    k: int, lr: float, lr_max: float, weight_sum: float, warmup_steps: int, r: float, weight_lr_power: float
) -> tuple[float, float, float, float]:
    r"""The step size and averaging weight of step $k$ (counted from 0).

    $\gamma_k = \gamma \min(1, (k+1)/\text{warmup})$, $\gamma_{\max} = \max(\gamma_{\max}, \gamma_k)$,
    $w = (k+1)^r \gamma_{\max}^{p}$ with $p$ = ``weight_lr_power``, and $c = w / \sum w$ (0 while
    the sum is 0).

    Returns:
        ``(lr_k, lr_max, weight_sum, c)`` with ``lr_max`` and ``weight_sum`` updated.
    """
    lr_k = lr * ((k + 1) / warmup_steps if k < warmup_steps else 1.0)
    lr_max = max(lr_k, lr_max)
    weight = ((k + 1) ** r) * (lr_max**weight_lr_power)
    weight_sum = weight_sum + weight
    c = weight / weight_sum if weight_sum != 0 else 0.0
    return lr_k, lr_max, weight_sum, c


def schedule_free_step(
    y: Sequence[Tensor], z: Sequence[Tensor], d: Sequence[Tensor], c: float, lr: float, momentum: float
) -> list[Tensor]:
    r"""One Schedule-Free step on tensors that share $c$, $\gamma$ and $\beta$.

    Updates ``z`` in place ($z \leftarrow z - \gamma d$) and returns the update $u = y - y_{+}$
    with $y_{+} = \operatorname{lerp}(y, z, c) + \gamma(\beta(1-c) - 1)\, d$ (computed before $z$
    moves), so that $y - u$ is the new point. ``y`` and ``d`` are not modified.
    """
    y, z, d = list(y), list(z), list(d)
    if not y:
        return []
    y_next = torch._foreach_lerp(y, z, c)
    torch._foreach_add_(y_next, d, alpha=lr * (momentum * (1 - c) - 1))
    torch._foreach_sub_(z, d, alpha=lr)
    return torch._foreach_sub(y, y_next)


def to_eval_point_(params: Sequence[Tensor], z: Sequence[Tensor], momentum: float) -> None:
    r"""$y \to x = (y - (1-\beta) z)/\beta$, in place: ``lerp_(p, z, 1 - 1/momentum)``."""
    if params:
        torch._foreach_lerp_(list(params), list(z), 1 - 1 / momentum)


def to_train_point_(params: Sequence[Tensor], z: Sequence[Tensor], momentum: float) -> None:
    r"""$x \to y = (1-\beta) z + \beta x$, in place: ``lerp_(p, z, 1 - momentum)``."""
    if params:
        torch._foreach_lerp_(list(params), list(z), 1 - momentum)
