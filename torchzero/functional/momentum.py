"""Momentum math as stateless multi-tensor functions: EMA / heavy-ball buffers, Nesterov's
look-ahead, bias correction and the cautious mask.

Scalars may be one value for all tensors or a sequence with one value per tensor. Functions
whose name ends in ``_`` modify their first argument(s) in place; none of them makes a host sync.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import torch
from torch import Tensor

from ._scalars import Scalar
from ._scalars import is_one as _one
from ._scalars import smap as _map

__all__ = [
    "CAUTIOUS_MODES",
    "ema_weight",
    "ema_",
    "nesterov_",
    "bias_correction_factor",
    "debias_",
    "cautious_mask",
    "cautious_",
]

Flag = Union[bool, Sequence[bool]]

CAUTIOUS_MODES = ("zero", "grad", "backtrack")
"""What :func:`cautious_` does with elements whose sign disagrees with the gradient."""


def _is(x: Any, value: float) -> bool:
    """True if ``x`` is the single number ``value`` (not a list, not a tensor)."""
    return _one(x) and isinstance(x, (int, float)) and x == value


def _add_scaled_(tensors: list[Tensor], other: Sequence[Tensor], alpha: Scalar) -> None:
    """``tensors += alpha * other`` with ``alpha`` one number or one per tensor."""
    if _is(alpha, 0):
        return
    if isinstance(alpha, Tensor):
        torch._foreach_add_(tensors, torch._foreach_mul(list(other), alpha))
    elif _one(alpha):
        torch._foreach_add_(tensors, other, alpha=alpha)
    else:
        torch._foreach_add_(tensors, torch._foreach_mul(other, list(alpha)))


def _mul_(tensors: list[Tensor], value: Scalar) -> None:
    if _is(value, 1):
        return
    torch._foreach_mul_(tensors, value if _one(value) else list(value))


def ema_weight(momentum: Scalar, dampening: Scalar = 0.0, lerp: Flag = False) -> Scalar:
    r"""The weight $w$ of the new tensor in :func:`ema_`: $(1-\mu)(1-d)$ with ``lerp``, else $1-d$."""
    return _map(lambda m, d, l: (1 - m) * (1 - d) if l else 1 - d, momentum, dampening, lerp)


def ema_(
    tensors: Sequence[Tensor],
    buffers: Sequence[Tensor],
    momentum: Scalar,
    dampening: Scalar = 0.0,
    lerp: Flag = False,
) -> None:
    r"""Updates momentum buffers in place: $b \leftarrow \mu b + w\,u$.

    $w = (1-d)$ (heavy ball, ``torch.optim.SGD``'s ``buf.mul_(momentum).add_(grad, alpha=1 - dampening)``)
    or, with ``lerp``, $w = (1-\mu)(1-d)$ (an exponential moving average).

    Args:
        tensors: the new values $u$ (not modified).
        buffers: the buffers $b$, modified in place.
        momentum: $\mu$, one value or one per tensor.
        dampening: $d$, one value or one per tensor (default: ``0``).
        lerp: use the EMA weight $(1-\mu)(1-d)$, one flag or one per tensor (default: ``False``).
    """
    buffers = list(buffers)
    if not buffers:
        return
    _mul_(buffers, momentum)
    _add_scaled_(buffers, list(tensors), ema_weight(momentum, dampening, lerp))


def nesterov_(tensors: Sequence[Tensor], buffers: Sequence[Tensor], momentum: Scalar, lerp: Flag = False) -> list[Tensor]:
    r"""Nesterov's look-ahead, in place on ``tensors``: $u \leftarrow c\,u + \mu b$.

    $c = 1$, or $c = 1-\mu$ with ``lerp``: the buffer $b$ (already updated with $u$ by
    :func:`ema_`) advanced once more by the same $u$, without dampening. With $c = 1$ this is
    ``torch.optim.SGD(nesterov=True)``'s ``grad.add(buf, alpha=momentum)``.

    Returns:
        ``tensors``.
    """
    tensors = list(tensors)
    if not tensors:
        return tensors
    _mul_(tensors, _map(lambda m, l: 1 - m if l else 1.0, momentum, lerp))
    _add_scaled_(tensors, list(buffers), momentum)
    return tensors


def bias_correction_factor(
    step: int | Sequence[int],
    beta1: float | None | Sequence[float | None] = None,
    beta2: float | None | Sequence[float | None] = None,
    alpha: Scalar = 1.0,
    pow: Scalar = 2,
) -> Scalar:
    r"""$\alpha\,(1-\beta_2^t)^{1/p} / (1-\beta_1^t)$; a ``None`` beta contributes a factor of 1.

    ``step`` ($t \ge 1$) and every other argument may be one value or one per tensor; the result
    is a float, or a list of floats when any argument is a list.
    """

    def f(t: int, b1: float | None, b2: float | None, a: float, p: float) -> float:
        num = 1.0 if b2 is None else (1 - b2**t) ** (1 / p)
        den = 1.0 if b1 is None else 1 - b1**t
        return a * num / den

    return _map(f, step, beta1, beta2, alpha, pow)


def debias_(
    tensors: Sequence[Tensor],
    step: int | Sequence[int],
    beta1: float | None | Sequence[float | None] = None,
    beta2: float | None | Sequence[float | None] = None,
    alpha: Scalar = 1.0,
    pow: Scalar = 2,
) -> list[Tensor]:
    r"""Multiplies ``tensors`` in place by :func:`bias_correction_factor` and returns them."""
    tensors = list(tensors)
    if tensors:
        _mul_(tensors, bias_correction_factor(step, beta1, beta2, alpha, pow))
    return tensors


def cautious_mask(tensors: Sequence[Tensor], grads: Sequence[Tensor]) -> list[Tensor]:
    r"""New tensors $\phi = \mathbb{1}[u \odot g > 0]$ (1 where the signs agree, 0 elsewhere).

    Computed as $\max(\operatorname{sign}(u)\operatorname{sign}(g), 0)$, so it cannot overflow
    or underflow in low precision. An element where $u$ or $g$ is 0 counts as disagreeing.
    """
    mask = torch._foreach_sign(list(tensors))
    torch._foreach_mul_(mask, torch._foreach_sign(list(grads)))
    torch._foreach_clamp_min_(mask, 0.0)
    return list(mask)


def cautious_(
    tensors: Sequence[Tensor],
    grads: Sequence[Tensor],
    normalize: Flag = False,
    eps: Scalar = 1e-6,
    mode: str = "zero",
) -> list[Tensor]:
    r"""The cautious update (Liang et al., 2024), in place on ``tensors``.

    With $\phi = \mathbb{1}[u \odot g > 0]$ (see :func:`cautious_mask`):

    - ``"zero"``: $u \leftarrow u \odot \phi$; with ``normalize``,
      $u \leftarrow u \odot \phi / \max(\bar\phi, \epsilon)$ where $\bar\phi$ is the fraction of
      elements of the tensor that were kept (its mean of $\phi$);
    - ``"grad"``: $u \leftarrow u \odot \phi + g \odot (1-\phi)$;
    - ``"backtrack"``: $u \leftarrow u \odot (2\phi - 1)$ (disagreeing elements are negated).

    ``normalize`` and ``eps`` (one value or one per tensor) only apply to ``"zero"``.

    Returns:
        ``tensors``.
    """
    tensors = list(tensors)
    if not tensors:
        return tensors
    if mode not in CAUTIOUS_MODES:
        raise ValueError(f"cautious_: mode must be one of {', '.join(map(repr, CAUTIOUS_MODES))}, got {mode!r}")
    grads = list(grads)
    mask = cautious_mask(tensors, grads)
    if mode == "backtrack":
        torch._foreach_mul_(mask, 2.0)
        torch._foreach_sub_(mask, 1.0)
        torch._foreach_mul_(tensors, mask)
        return tensors
    if mode == "grad":
        torch._foreach_mul_(tensors, mask)
        torch._foreach_neg_(mask)
        torch._foreach_add_(mask, 1.0)
        torch._foreach_addcmul_(tensors, grads, mask)
        return tensors
    norm_flags = _map(bool, normalize)
    idx = [i for i in range(len(tensors)) if (norm_flags if _one(norm_flags) else norm_flags[i])]
    if idx:
        sub = [mask[i] for i in idx]
        acc = [torch.float32 if m.dtype in (torch.float16, torch.bfloat16) else m.dtype for m in sub]
        if len(set(acc)) == 1:
            kept = list(torch._foreach_norm(sub, 1, dtype=acc[0]))
        else:
            kept = [torch.linalg.vector_norm(m, 1, dtype=a) for m, a in zip(sub, acc)]
        torch._foreach_div_(kept, [float(max(m.numel(), 1)) for m in sub])  # fraction kept
        e = eps if _one(eps) else [eps[i] for i in idx]
        torch._foreach_clamp_min_(kept, e if _one(e) else list(e))
        torch._foreach_reciprocal_(kept)
        torch._foreach_mul_(sub, kept)
    torch._foreach_mul_(tensors, mask)
    return tensors
