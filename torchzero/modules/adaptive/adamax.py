"""``Adamax``: Adam with the infinity norm (Kingma & Ba, 2014), as torch.optim.Adamax."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ...core.settings import as_list
from ...core.transform import Context, Settings, States, Transform
from ...functional.adam_variants import adamax_direction
from ...utils.validation import check_number
from ._betas import check_betas

__all__ = ["Adamax"]


class Adamax(Transform):
    r"""Adamax: Adam with the second moment replaced by an exponentially weighted infinity norm,
    $u \leftarrow \max(\beta_2 u, |g| + \epsilon)$, and the update $\frac{m}{(1-\beta_1^t)\,u}$
    (:func:`~torchzero.functional.adam_variants.adamax_direction`). Followed by ``LR(lr)`` it is
    ``torch.optim.Adamax(lr=lr, betas=betas, eps=eps)``; weight decay is ``WeightDecay`` before it.

    Args:
        betas: $(\beta_1, \beta_2)$, each in ``[0, 1)`` (default: ``(0.9, 0.999)``).
        eps: added to $|g|$, ``>= 0`` (default: ``1e-8``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Adamax(), tz.m.LR(2e-3))

    References:
        Kingma, D. P., & Ba, J. (2014). Adam: A method for stochastic optimization, Section 7.1.
    """

    STATE_KEYS = {"step": "step", "exp_avg": "like_param", "exp_inf": "like_param"}

    def __init__(self, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(dict(betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        if "betas" in s:
            check_betas(s["betas"], "Adamax")
        if "eps" in s:
            check_number("eps", s["eps"], owner="Adamax", min=0.0)

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "exp_avg": torch.zeros_like(tensor, memory_format=torch.preserve_format),
            "exp_inf": torch.zeros_like(tensor, memory_format=torch.preserve_format),
        }

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> Sequence[Tensor]:
        steps = as_list(ctx.step, len(tensors))
        out: list[Tensor] = list(tensors)
        for (betas, eps), idx in settings.groups("betas", "eps"):
            d = adamax_direction(
                [tensors[i] for i in idx], [states[i]["exp_avg"] for i in idx], [states[i]["exp_inf"] for i in idx],
                [steps[i] for i in idx], float(betas[0]), float(betas[1]), float(eps),
            )
            for i, t in zip(idx, d):
                out[i] = t
        return out
