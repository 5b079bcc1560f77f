"""Per-parameter step counters kept as ``torch.optim`` keeps them: 0-dim float tensors on the host.

``torch.optim.Adam`` stores ``state["step"]`` as a 0-dim tensor (float32, or float64 when
that is the default dtype) on the CPU; code that works with optimizer state (``.detach()`` on
every value, ``torch.distributed.checkpoint``, ``torch.compile``) relies on it. Modules that
count steps per parameter this way declare the key as ``"step"`` in their ``STATE_KEYS``; a
Python number found there (a state dict saved by an earlier version, a user's write) is
converted when it is loaded or next read.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..functional._scalars import collapse

__all__ = ["new_step", "as_step", "advance", "step_values"]


def _dtype() -> torch.dtype:
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def new_step(value: float = 0.0) -> Tensor:
    """A step counter holding ``value``."""
    return torch.tensor(float(value), dtype=_dtype())


def as_step(value: Any) -> Tensor:
    """``value`` (a number or a 1-element tensor) as a step counter; a counter is returned as is.

    Raises:
        TypeError: ``value`` is not a real number or a 1-element real tensor.
    """
    if type(value) is Tensor and value.ndim == 0 and value.is_floating_point() and not value.is_meta:
        return value
    if isinstance(value, Tensor):
        if value.numel() != 1 or value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"a step counter must be a number or a 1-element real tensor, got shape {tuple(value.shape)} {value.dtype}")
        if value.is_meta:
            return torch.zeros((), dtype=_dtype())
        return value.detach().reshape(()).to(device="cpu", dtype=value.dtype if value.is_floating_point() else _dtype())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"a step counter must be a number or a 1-element real tensor, got {type(value).__name__} {value!r:.50}")
    return new_step(value)


def advance(states: Sequence[Any], key: str = "step") -> list[Tensor]:
    """Adds 1 to the counter ``key`` of each state (converting numbers first) and returns them."""
    steps = [st[key] for st in states]
    if not all([type(s) is Tensor for s in steps]):
        steps = [as_step(s) for s in steps]
        for st, s in zip(states, steps):
            st[key] = s
    torch._foreach_add_(steps, 1.0)
    return steps


def step_values(steps: Sequence[Tensor]) -> Any:
    """The counters as numbers for host-side math: one float when all are equal, else a list.

    Under ``torch.compile`` they stay tensors (one per parameter), as ``torch.optim`` keeps
    them there, so the compiled graph doesn't specialise on the step.
    """
    if torch.compiler.is_compiling():
        return list(steps)
    if len(steps) == 1:
        return steps[0].item()
    return collapse(torch.stack(list(steps)).tolist())
