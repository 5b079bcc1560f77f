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
from .state import values_of

__all__ = ["new_step", "as_step", "advance", "step_values", "step_list"]


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


class _Block:
    """The counters of one module's parameters packed as views of one buffer, so that a step
    adds 1 to all of them in one op and reads them in one copy (instead of one per parameter).
    ``ids`` are the views handed out, in order; any other list of counters takes the general way."""

    __slots__ = ("buf", "ids")

    def __init__(self, buf: Tensor, ids: tuple[int, ...]):
        self.buf, self.ids = buf, ids

    def holds(self, steps: Sequence[Any]) -> bool:
        return len(steps) == len(self.ids) and tuple(map(id, steps)) == self.ids and steps[0]._base is self.buf


def _block(owner: Any, steps: Sequence[Any]) -> _Block | None:
    block = getattr(owner, "_step_block", None)
    return block if block is not None and block.holds(steps) else None


def advance(states: Sequence[Any], key: str = "step", owner: Any = None) -> list[Tensor]:
    """Adds 1 to the counter ``key`` of each state (converting numbers first) and returns them.

    With ``owner`` (the module), the counters are packed into one buffer on the first call
    (each state then holds a 0-dim view of it) and advanced with one op while the same
    counters come back in the same order.
    """
    steps = values_of(states, key)
    compiling = torch.compiler.is_compiling()
    if owner is not None and not compiling:
        block = _block(owner, steps)
        if block is not None:
            block.buf.add_(1.0)
            return steps
    if not all([type(s) is Tensor for s in steps]):
        steps = [as_step(s) for s in steps]
        for st, s in zip(states, steps):
            st[key] = s
    if owner is None or compiling or len(steps) < 2 or len({(s.dtype, s.device) for s in steps}) != 1 or steps[0].is_meta:
        torch._foreach_add_(steps, 1.0)
        return steps
    buf = torch.stack(steps).add_(1.0)
    views = list(buf.unbind())
    for st, v in zip(states, views):
        st[key] = v
    owner._step_block = _Block(buf, tuple(map(id, views)))
    return views


def step_values(steps: Sequence[Tensor], owner: Any = None) -> Any:
    """The counters as numbers for host-side math: one float when all are equal, else a list.

    Under ``torch.compile`` they stay tensors (one per parameter), as ``torch.optim`` keeps
    them there, so the compiled graph doesn't specialise on the step.
    """
    if torch.compiler.is_compiling():
        return list(steps)
    if len(steps) == 1:
        return steps[0].item()
    block = _block(owner, steps) if owner is not None else None
    values = (block.buf if block is not None else torch.stack(list(steps))).tolist()
    return collapse(values)


def step_list(steps: Sequence[Tensor], owner: Any = None) -> list[Any]:
    """The counters as one number per counter (tensors under ``torch.compile``)."""
    if torch.compiler.is_compiling():
        return list(steps)
    if not steps:
        return []
    block = _block(owner, steps) if owner is not None else None
    return (block.buf if block is not None else torch.stack(list(steps))).tolist()
