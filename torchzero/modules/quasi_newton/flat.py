"""All parameters as one vector, for the methods whose curvature couples them."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["flatten", "flat_view", "split_like", "unflatten_", "working_dtype", "layout"]

_LOW = (torch.float16, torch.bfloat16)


def flatten(tensors: Sequence[Tensor], dtype: torch.dtype) -> Tensor:
    """The tensors concatenated into one new vector of ``dtype``."""
    return torch.cat([t.reshape(-1).to(dtype) for t in tensors]) if tensors else torch.zeros(0, dtype=dtype)


def flat_view(tensors: Sequence[Tensor], dtype: torch.dtype) -> tuple[Tensor, bool]:
    """The tensors as one vector of ``dtype``, and whether it is a view of the one tensor
    (contiguous, of ``dtype``: no copy) rather than a new vector as :func:`flatten` makes."""
    if len(tensors) == 1 and tensors[0].dtype == dtype and tensors[0].is_contiguous():
        return tensors[0].view(-1), True
    return flatten(tensors, dtype), False


def split_like(vec: Tensor, tensors: Sequence[Tensor]) -> list[Tensor]:
    """``vec`` as one piece per tensor, shaped and typed like it (views where the dtype agrees):
    the inverse of :func:`flatten` without copying into ``tensors``."""
    out, i = [], 0
    for t in tensors:
        n = t.numel()
        out.append(vec[i : i + n].view_as(t).to(t.dtype))
        i += n
    return out


def unflatten_(vec: Tensor, tensors: Sequence[Tensor]) -> None:
    """Copies ``vec`` into ``tensors`` (in order, cast to their dtypes); nothing to do when
    ``vec`` is a view of the one tensor."""
    if len(tensors) == 1 and vec.data_ptr() == tensors[0].data_ptr() and vec.dtype == tensors[0].dtype:
        return
    i = 0
    for t in tensors:
        n = t.numel()
        t.copy_(vec[i : i + n].view_as(t))
        i += n


def working_dtype(tensors: Sequence[Tensor]) -> torch.dtype:
    """The widest dtype of the tensors, float32 for half precision."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return torch.float32 if dtype in _LOW else dtype


def layout(module: Any, params: Sequence[Tensor]) -> list[int]:
    """The positions of ``params`` among the parameters ``module`` knows (saved with its state,
    unlike object ids): a history built on one layout doesn't apply to another."""
    index = {id(p): i for i, p in enumerate(module._params)}
    return [index.get(id(p), -1) for p in params]
