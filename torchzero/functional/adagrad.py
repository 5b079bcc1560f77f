r"""Adagrad's math as stateless multi-tensor functions.

Scalars may be one value for all tensors or a list with one value per tensor.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._scalars import Scalar, collapse, is_one, is_value, smap
from .powers import add_eps_, accumulate_pow_, ema_pow_, root

__all__ = ["adagrad_accumulate_", "adagrad_denominator", "adagrad_step_size"]


def adagrad_accumulate_(
    acc: Sequence[Tensor],
    tensors: Sequence[Tensor],
    pow: Scalar = 2,
    beta: Scalar | None = None,
    decay: Scalar | None = None,
) -> None:
    r"""Updates Adagrad's accumulator in place.

    $G \leftarrow G + |u|^p$, or with ``beta`` the moving average
    $G \leftarrow \beta G + (1-\beta)|u|^p$; then, with ``decay``, $G \leftarrow (1-\text{decay})\,G$.
    """
    if beta is None:
        accumulate_pow_(acc, tensors, pow)
    else:
        ema_pow_(acc, tensors, beta, pow)
    if decay is not None:
        torch._foreach_mul_(acc, smap(lambda d: 1 - d, decay))


def adagrad_denominator(
    acc: Sequence[Tensor],
    eps: Scalar,
    pow: Scalar = 2,
    use_sqrt: bool = True,
    step: int | Sequence[int] | None = None,
) -> list[Tensor]:
    r"""Returns $\left(G / t\right)^{1/p} + \epsilon$ as new tensors.

    The division by the step $t$ happens only when ``step`` is given (Adagrad's ``divide``);
    without ``use_sqrt`` the root is not taken: $G/t + \epsilon$.
    """
    acc = list(acc)
    if step is not None:
        step = collapse(step)
        acc = list(torch._foreach_div(acc, step if is_one(step) else [float(t) for t in step]))
    if use_sqrt:
        if step is None:
            denom = root(acc, pow)
        else:  # acc is already a temporary: take the root in place
            denom = acc
            if is_value(pow, 2):
                torch._foreach_sqrt_(denom)
            else:
                torch._foreach_pow_(denom, smap(lambda p: 1 / p, pow))
        if not is_value(eps, 0):
            add_eps_(denom, eps)
        return denom
    if step is not None:  # acc is already a new list
        add_eps_(acc, eps)
        return acc
    acc = [a.clone() for a in acc]
    add_eps_(acc, eps)
    return acc


def adagrad_step_size(alpha: Scalar, lr_decay: Scalar, step: int | Sequence[int]) -> Scalar:
    r"""$\alpha / (1 + (t - 1)\,\mathtt{lr\_decay})$, torch's ``clr`` (one value or one per tensor)."""
    return collapse(smap(lambda a, d, t: a / (1 + (t - 1) * d), alpha, lr_decay, step))
