"""Linear warmup schedules, as plain functions of the step index (no tensors, no state)."""
from __future__ import annotations

__all__ = ["linear_warmup"]


def linear_warmup(step: int, steps: int, start: float, end: float) -> float:
    r"""The value of a linear ramp from ``start`` to ``end`` over ``steps`` steps at ``step``.

    $$
    v(k) = \text{start} + (\text{end} - \text{start})\,\frac{\min(k, n)}{n}
    $$

    with $k$ = ``step`` (0 on the first step) and $n$ = ``steps``: ``start`` at $k=0$, ``end``
    from $k = n$ on. With ``steps=0`` it is ``end`` for every step.

    Example:
        >>> [linear_warmup(k, 4, 0.0, 1.0) for k in range(6)]
        [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    """
    if steps <= 0 or step >= steps:
        return end
    return start + (end - start) * (step / steps)
