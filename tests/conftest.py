"""Shared test helpers."""
from __future__ import annotations

import torch


def make_params(shapes, seed: int = 0, dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    """Leaf tensors of the given shapes with seeded random values."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=dtype).requires_grad_() for s in shapes]


def set_grads(params, seed: int) -> None:
    """Fills ``p.grad`` with seeded random values."""
    g = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
