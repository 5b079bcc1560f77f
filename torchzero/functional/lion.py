r"""Lion's math as a stateless multi-tensor function."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._scalars import Scalar, smap

__all__ = ["lion_"]


def lion_(tensors: Sequence[Tensor], exp_avg: Sequence[Tensor], beta1: Scalar, beta2: Scalar) -> list[Tensor]:
    r"""One Lion step: returns $\operatorname{sign}(\beta_1 m + (1-\beta_1) u)$ as new tensors and
    updates $m \leftarrow \beta_2 m + (1-\beta_2) u$ in place.

    The interpolations are ``lerp`` (as in ``torch.optim``'s moving averages).
    """
    direction = list(torch._foreach_lerp(exp_avg, tensors, smap(lambda b: 1 - b, beta1)))
    torch._foreach_sign_(direction)
    torch._foreach_lerp_(exp_avg, tensors, smap(lambda b: 1 - b, beta2))
    return direction
