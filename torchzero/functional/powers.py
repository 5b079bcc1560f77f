r"""Accumulating powers of tensors and taking roots, the building blocks of second-moment methods.

All functions are multi-tensor (``torch._foreach_*``). Scalars may be one value for every tensor
or a list with one value per tensor. ``pow == 2`` takes a fast path ($u \cdot u$ and ``sqrt``)
that is bitwise what ``torch.optim`` computes.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ._scalars import Scalar, is_value, smap

__all__ = ["abs_pow", "accumulate_pow_", "ema_pow_", "root"]


def abs_pow(tensors: Sequence[Tensor], pow: Scalar = 2) -> list[Tensor]:
    r"""Returns $|u|^p$ as new tensors."""
    if is_value(pow, 2):
        return list(torch._foreach_mul(tensors, tensors))
    return list(torch._foreach_pow(torch._foreach_abs(tensors), pow))


def accumulate_pow_(acc: Sequence[Tensor], tensors: Sequence[Tensor], pow: Scalar = 2, weight: Scalar = 1.0) -> None:
    r"""$a \leftarrow a + w\,|u|^p$, in place (Adagrad's accumulator)."""
    if is_value(pow, 2):
        torch._foreach_addcmul_(acc, tensors, tensors, weight)
        return
    powered = abs_pow(tensors, pow)
    if not is_value(weight, 1.0):
        torch._foreach_mul_(powered, weight)
    torch._foreach_add_(acc, powered)


def ema_pow_(ema: Sequence[Tensor], tensors: Sequence[Tensor], beta: Scalar, pow: Scalar = 2) -> None:
    r"""$v \leftarrow \beta v + (1-\beta)|u|^p$, in place (the second moment of RMSprop and Adam)."""
    torch._foreach_mul_(ema, beta)
    accumulate_pow_(ema, tensors, pow, smap(lambda b: 1 - b, beta))


def root(tensors: Sequence[Tensor], pow: Scalar = 2) -> list[Tensor]:
    r"""Returns $v^{1/p}$ as new tensors (``sqrt`` for ``pow == 2``)."""
    if is_value(pow, 2):
        return list(torch._foreach_sqrt(tensors))
    return list(torch._foreach_pow(tensors, smap(lambda p: 1 / p, pow)))


_HALF_TINY = 2.0**-24  # the smallest float16 subnormal


def add_eps_(denom: Sequence[Tensor], eps: Any) -> None:
    """``denom += eps`` in place, where float16 tensors get at least the smallest float16 value.

    An ``eps`` such as 1e-8 rounds to 0 in float16, which would turn an all-zero update into
    0/0 = NaN; rounding it up to the smallest representable value keeps it an epsilon.
    """
    torch._foreach_add_(denom, eps)
    half = [d for d in denom if d.dtype == torch.float16]
    if half:
        torch._foreach_clamp_min_(half, _HALF_TINY)
