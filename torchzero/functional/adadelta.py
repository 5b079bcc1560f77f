r"""Adadelta's math (Zeiler, 2012) as a stateless function over lists of tensors."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["adadelta_direction"]


def adadelta_direction(grads: Sequence[Tensor], square_avg: Sequence[Tensor], acc_delta: Sequence[Tensor], rho: float, eps: float) -> list[Tensor]:
    r"""Adadelta: $E[g^2] \leftarrow \rho E[g^2] + (1-\rho) g^2$,
    $\Delta = \frac{\sqrt{E[\Delta^2] + \epsilon}}{\sqrt{E[g^2] + \epsilon}}\, g$,
    $E[\Delta^2] \leftarrow \rho E[\Delta^2] + (1-\rho)\Delta^2$; returns $\Delta$ (the
    parameters move by $-\text{lr}\,\Delta$; torch's default lr is 1). Both averages are updated
    in place."""
    torch._foreach_mul_(list(square_avg), rho)
    torch._foreach_addcmul_(list(square_avg), list(grads), list(grads), 1 - rho)
    std = torch._foreach_add(list(square_avg), eps)
    torch._foreach_sqrt_(std)
    delta = torch._foreach_add(list(acc_delta), eps)
    torch._foreach_sqrt_(delta)
    torch._foreach_div_(delta, std)
    torch._foreach_mul_(delta, list(grads))
    torch._foreach_mul_(list(acc_delta), rho)
    torch._foreach_addcmul_(list(acc_delta), delta, delta, 1 - rho)
    return delta
