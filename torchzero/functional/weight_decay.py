r"""Weight decay as stateless multi-tensor functions.

The decay term of order $p$ is the gradient of $\frac{\lambda}{p}\sum_i |x_i|^p$:
$\lambda\,\operatorname{sign}(x)\,|x|^{p-1}$, which is $\lambda x$ for $p = 2$ (L2) and
$\lambda \operatorname{sign}(x)$ for $p = 1$ (L1). Scalars may be one value for all tensors or a
sequence with one value per tensor.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch
from torch import Tensor

__all__ = ["decay_term", "add_weight_decay_", "decay_params_"]

Scalar = Union[float, Sequence[float]]


def _uniform(x: Scalar) -> bool:
    return not isinstance(x, (list, tuple))


def _is_zero(x: Scalar) -> bool:
    """True for the number 0 (never inspects a tensor's value: no host sync)."""
    return isinstance(x, (int, float)) and x == 0


def decay_term(params: Sequence[Tensor], ord: float = 2) -> list[Tensor]:
    r"""New tensors $\operatorname{sign}(x)\,|x|^{p-1}$ for ``ord`` $= p \ge 1$ (``x`` for 2, ``sign(x)`` for 1)."""
    params = list(params)
    if ord == 2:
        return [p.clone() for p in params] if params else []
    if ord == 1:
        return list(torch._foreach_sign(params))
    out = torch._foreach_abs(params)
    torch._foreach_pow_(out, ord - 1)
    torch._foreach_mul_(out, torch._foreach_sign(params))
    return list(out)


def add_weight_decay_(tensors: Sequence[Tensor], params: Sequence[Tensor], weight_decay: Scalar, ord: float = 2) -> list[Tensor]:
    r"""$u \leftarrow u + \lambda\,\operatorname{sign}(x)|x|^{p-1}$ in place on ``tensors``; returns them.

    Args:
        tensors: the tensors to add the decay term to (usually the update), modified in place.
        params: the parameters $x$ (not modified).
        weight_decay: $\lambda$, one value or one per tensor.
        ord: $p \ge 1$, the same for all tensors (default: ``2``).
    """
    tensors, params = list(tensors), list(params)
    if not tensors or _is_zero(weight_decay):
        return tensors
    if ord == 2:  # no temporary: u += wd * x
        if isinstance(weight_decay, Tensor):
            torch._foreach_add_(tensors, torch._foreach_mul(params, weight_decay))
        elif _uniform(weight_decay):
            torch._foreach_add_(tensors, params, alpha=weight_decay)
        else:
            torch._foreach_add_(tensors, torch._foreach_mul(params, list(weight_decay)))
        return tensors
    term = decay_term(params, ord)
    torch._foreach_mul_(term, weight_decay if _uniform(weight_decay) else list(weight_decay))
    torch._foreach_add_(tensors, term)
    return tensors


def decay_params_(params: Sequence[Tensor], weight_decay: Scalar, ord: float = 2) -> None:
    r"""Decays the parameters in place: $x \leftarrow x - \lambda\,\operatorname{sign}(x)|x|^{p-1}$.

    For ``ord=2`` this is $x \leftarrow (1-\lambda)\,x$. Call under ``torch.no_grad()`` for leaf
    tensors that require grad.
    """
    params = list(params)
    if not params or _is_zero(weight_decay):
        return
    if ord == 2:
        torch._foreach_mul_(params, 1 - weight_decay if _uniform(weight_decay) else [1 - w for w in weight_decay])
        return
    term = decay_term(params, ord)
    torch._foreach_mul_(term, -weight_decay if _uniform(weight_decay) else [-w for w in weight_decay])
    torch._foreach_add_(params, term)
