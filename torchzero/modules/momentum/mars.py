"""``MARSCorrection``: MARS's variance-reduced gradient (Yuan et al., 2024)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ...core.transform import Context, Settings, States, Transform
from ...utils.validation import check_beta, check_bool, check_number, check_optional_number

__all__ = ["MARSCorrection"]


def mars_correction_(
    tensors: Sequence[Tensor], prev: Sequence[Tensor], beta: float, scaling: float, max_norm: float | None, tensorwise: bool
) -> list[Tensor]:
    r"""$c = g + \gamma\frac{\beta}{1-\beta}(g - g_{\text{prev}})$, clipped to norm ``max_norm``
    (per tensor, or over all of them with ``tensorwise=False``); ``prev`` takes $g$ in place.
    Returns new tensors."""
    tensors, prev = list(tensors), list(prev)
    if not tensors:
        return []
    c = torch._foreach_sub(tensors, prev)
    torch._foreach_mul_(c, scaling * (beta / (1.0 - beta)))
    torch._foreach_add_(c, tensors)
    torch._foreach_copy_(prev, tensors)
    if max_norm is not None:
        norms = torch._foreach_norm(c)
        if tensorwise:
            for t, n in zip(c, norms):
                t.mul_(torch.where(n > max_norm, max_norm / n, torch.ones_like(n)))
        else:
            total = torch.linalg.vector_norm(torch.stack([n.to(torch.float64) for n in norms]))
            factor = torch.where(total > max_norm, max_norm / total, torch.ones_like(total))
            for t in c:
                t.mul_(factor.to(t.dtype))
    return c


class MARSCorrection(Transform):
    r"""MARS's variance reduction: the gradient corrected by its change since the last step,
    then clipped (MARS's approximate form, the authors' default):

    $$
    c_t = g_t + \gamma \frac{\beta}{1-\beta} (g_t - g_{t-1}), \qquad
    \tilde c_t = c_t \min\!\left(1, \frac{\tau}{\lVert c_t \rVert}\right)
    $$

    with $g_0 = 0$ and $\tau$ = ``max_norm``. Put the momentum method after it with the same $\beta$ as its first
    moment: ``MARSCorrection(beta=b1), Adam(b1, b2), WeightDecay(wd), LR(lr)`` is MARS-AdamW;
    ``MARSCorrection(beta), Lion(...)`` MARS-Lion. The norm is per tensor (``tensorwise``, as
    the authors' code does), or over all parameters together as the paper's algorithm box writes
    it; torchzero 0.3.x took the global norm only.

    Args:
        beta: $\beta$, the following momentum's, in ``[0, 1)`` (default: ``0.9``).
        scaling: $\gamma \ge 0$ (default: ``0.025``).
        max_norm: the clipping threshold, ``> 0``, or ``None`` for none (default: ``1.0``).
        tensorwise: one norm per tensor (default: ``True``).

    Example:
        MARS-AdamW:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(
        ...     model.parameters(),
        ...     tz.m.MARSCorrection(beta=0.95), tz.m.Adam(0.95, 0.99), tz.m.WeightDecay(1e-3), tz.m.LR(3e-3),
        ... )

    References:
        Yuan, H., Liu, Y., Wu, S., Zhou, X., & Gu, Q. (2024). MARS: Unleashing the power of
        variance reduction for training large models. https://arxiv.org/abs/2411.10438
    """

    STATE_KEYS = {"g_prev": "like_param"}

    def __init__(self, beta: float = 0.9, scaling: float = 0.025, max_norm: float | None = 1.0, tensorwise: bool = True):
        super().__init__(dict(beta=beta, scaling=scaling, max_norm=max_norm, tensorwise=tensorwise))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "MARSCorrection"
        if "beta" in s:
            check_beta("beta", s["beta"], owner=o)
        if "scaling" in s:
            check_number("scaling", s["scaling"], owner=o, min=0.0)
        if "max_norm" in s:
            check_optional_number("max_norm", s["max_norm"], owner=o, min=0.0, min_inclusive=False)
        if "tensorwise" in s:
            check_bool("tensorwise", s["tensorwise"], owner=o)

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        return {"g_prev": torch.zeros_like(tensor, memory_format=torch.preserve_format)}

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> Sequence[Tensor]:
        out: list[Tensor] = list(tensors)
        prev = states["g_prev"]
        for (beta, scaling, max_norm, tensorwise), idx in settings.groups("beta", "scaling", "max_norm", "tensorwise"):
            c = mars_correction_(
                [tensors[i] for i in idx], [prev[i] for i in idx], float(beta), float(scaling),
                None if max_norm is None else float(max_norm), bool(tensorwise),
            )
            for i, t in zip(idx, c):
                out[i] = t
        return out
