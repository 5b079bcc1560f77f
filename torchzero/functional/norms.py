"""Norms and norm groups: which elements a norm is taken over, and the norm itself.

Everything here is stateless and works on lists of tensors. Norms of float16/bfloat16
tensors are accumulated in float32.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Literal, Union

import torch
from torch import Tensor

__all__ = [
    "Ord",
    "Dim",
    "ORD_NAMES",
    "parse_ord",
    "reduce_dims",
    "tensor_norm",
    "tensor_norms",
    "global_norm",
]

Ord = Union[float, Literal["mad", "std", "var", "sum", "l0", "l1", "l2", "l3", "l4", "linf"]]
"""A norm: a number ``p`` as in ``torch.linalg.vector_norm`` (``inf`` is max |x|, ``-inf`` min |x|,
``0`` counts nonzeros) or one of :data:`ORD_NAMES`."""

Dim = Union[int, Sequence[int], Literal["global"], None]
"""Which dims a norm is taken over: ``None`` (all), ints (those the tensor has), or ``"global"``."""

_ALIASES: dict[str, float] = {"l0": 0.0, "l1": 1.0, "l2": 2.0, "l3": 3.0, "l4": 4.0, "linf": math.inf}
_STATS = ("mad", "std", "var", "sum")
ORD_NAMES: tuple[str, ...] = tuple(_ALIASES) + _STATS
"""String values accepted for ``ord``."""

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def parse_ord(ord: object, owner: str | None = None) -> float | str:
    """Validates ``ord`` and returns a float ``p`` or one of ``"mad" "std" "var" "sum"``.

    Raises:
        ValueError: an unknown string or NaN.
        TypeError: anything that is not a number or a string.
    """
    where = f"{owner}: " if owner else ""
    if isinstance(ord, str):
        if ord in _ALIASES:
            return _ALIASES[ord]
        if ord in _STATS:
            return ord
        raise ValueError(f"{where}ord must be a number >= 0 or one of {', '.join(map(repr, ORD_NAMES))}, got {ord!r}")
    if isinstance(ord, Tensor) and ord.numel() == 1:
        ord = ord.item()
    if isinstance(ord, bool) or not isinstance(ord, (int, float)):
        raise TypeError(f"{where}ord must be a number or a string, got {ord!r} of type {type(ord).__name__}")
    p = float(ord)
    if math.isnan(p):
        raise ValueError(f"{where}ord must be a number (torch.linalg.vector_norm's ord) or one of {', '.join(map(repr, ORD_NAMES))}, got {ord!r}")
    return p


def reduce_dims(
    shape: Sequence[int], dim: int | Sequence[int] | None, inverse_dims: bool, min_size: int
) -> tuple[int, ...] | None:
    """The dims of a tensor of ``shape`` that a per-tensor norm group reduces over.

    A 0-dim tensor counts as shape ``(1,)``. ``dim=None`` selects all dims; ints select the dims
    the tensor has (negative ints count from the end; dims it lacks are ignored);
    ``inverse_dims`` takes the complement. Returns ``None`` when the tensor must be left
    unchanged: no dims left, or the product of the reduced sizes is below ``min_size``.
    The result depends only on this tensor's shape.
    """
    shape = tuple(shape) or (1,)
    ndim = len(shape)
    if dim is None:
        dims = set(range(ndim))
    else:
        wanted = (dim,) if isinstance(dim, int) else tuple(dim)
        dims = {d + ndim if d < 0 else d for d in wanted}
        dims = {d for d in dims if 0 <= d < ndim}
    if inverse_dims:
        dims = set(range(ndim)) - dims
    if not dims:
        return None
    size = 1
    for d in dims:
        size *= shape[d]
    if size < min_size:
        return None
    return tuple(sorted(dims))


def _acc_dtype(t: Tensor) -> torch.dtype | None:
    return torch.float32 if t.dtype in _LOW_PRECISION else None


def tensor_norm(t: Tensor, ord: float | str, dims: tuple[int, ...] | None = None, keepdim: bool = True) -> Tensor:
    """Norm of ``t`` over ``dims`` (all dims if ``None``); ``ord`` as returned by :func:`parse_ord`."""
    if t.ndim == 0:
        t = t.reshape(1)
    if t.numel() == 0:  # no elements: norm 0 (vector_norm has no identity for inf)
        shape = [1 if (dims is None or d in dims) else n for d, n in enumerate(t.shape)] if keepdim else []
        if not keepdim and dims is not None:
            shape = [n for d, n in enumerate(t.shape) if d not in dims]
        return torch.zeros(shape, dtype=_acc_dtype(t) or t.dtype, device=t.device)
    acc = _acc_dtype(t)
    if acc is not None and isinstance(ord, str):
        t = t.to(acc)
    if ord == "mad":
        return t.abs().mean(dim=dims, keepdim=keepdim)
    if ord == "std":
        return t.std(dim=dims, keepdim=keepdim)
    if ord == "var":
        return t.var(dim=dims, keepdim=keepdim)
    if ord == "sum":
        return t.sum(dim=dims, keepdim=keepdim)
    return torch.linalg.vector_norm(t, ord, dim=dims, keepdim=keepdim, dtype=acc)


def tensor_norms(tensors: Sequence[Tensor], ord: float | str) -> list[Tensor]:
    """One 0-dim norm per tensor, over all of its elements, in a few multi-tensor kernels."""
    tensors = list(tensors)
    if isinstance(ord, str) or any(t.numel() == 0 for t in tensors):
        return [tensor_norm(t, ord, keepdim=False) for t in tensors]
    low = [i for i, t in enumerate(tensors) if t.dtype in _LOW_PRECISION]
    if not low:
        return list(torch._foreach_norm(tensors, ord))
    if len(low) == len(tensors):
        return list(torch._foreach_norm(tensors, ord, dtype=torch.float32))
    out: list[Tensor] = [None] * len(tensors)  # type: ignore[list-item]
    high = [i for i, t in enumerate(tensors) if t.dtype not in _LOW_PRECISION]
    for idx, kw in ((low, {"dtype": torch.float32}), (high, {})):
        for i, n in zip(idx, torch._foreach_norm([tensors[i] for i in idx], ord, **kw)):
            out[i] = n
    return out


def global_norm(tensors: Sequence[Tensor], ord: float | str) -> Tensor:
    """Norm of all ``tensors`` concatenated into one vector, as a 0-dim tensor (no host sync)."""
    tensors = [t for t in tensors if t.numel() > 0]
    if not tensors:
        return torch.zeros(())
    if ord == "sum":
        return torch.stack([tensor_norm(t, "sum", keepdim=False) for t in tensors]).sum()
    if ord == "mad":
        total = sum(t.numel() for t in tensors)
        return torch.stack([tensor_norm(t, 1.0, keepdim=False) for t in tensors]).sum() / total
    if ord in ("std", "var"):
        flat = torch.cat([t.reshape(-1).to(torch.float32 if t.dtype in _LOW_PRECISION else t.dtype) for t in tensors])
        return flat.std() if ord == "std" else flat.var()
    norms = tensor_norms(tensors, ord)
    dtypes = {n.dtype for n in norms}
    if len(dtypes) > 1:
        dtype = functools.reduce(torch.promote_types, dtypes)
        norms = [n.to(dtype) for n in norms]
    stacked = torch.stack(norms)
    if ord == 0:
        return stacked.sum()
    return torch.linalg.vector_norm(stacked, ord)
