"""``RAdam``: Adam with the variance of its adaptive step rectified (Liu et al., 2020), as torch.optim.RAdam."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ...core.settings import as_list
from ...core.transform import Context, Settings, States, Transform
from ...functional.adam_variants import radam_direction
from ...utils.validation import check_number
from ._betas import check_betas

__all__ = ["RAdam"]


class RAdam(Transform):
    r"""RAdam: the bias-corrected first moment $\hat m$, scaled by Adam's adaptive
    $\sqrt{1-\beta_2^t}/(\sqrt v + \epsilon)$ and the rectification $r_t$ once the length of the
    approximated simple moving average $\rho_t$ exceeds 5; before that (the first steps) the
    update is $\hat m$ alone, SGD with momentum
    (:func:`~torchzero.functional.adam_variants.radam_direction`). Followed by ``LR(lr)`` it is
    ``torch.optim.RAdam(lr=lr, betas=betas, eps=eps)``; L2 weight decay is ``WeightDecay`` before
    it, ``decoupled_weight_decay=True`` is ``WeightDecay`` after it.

    Args:
        betas: $(\beta_1, \beta_2)$, each in ``[0, 1)`` (default: ``(0.9, 0.999)``).
        eps: added to the denominator, ``>= 0`` (default: ``1e-8``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.RAdam(), tz.m.LR(1e-3))

    References:
        Liu, L. et al. (2020). On the variance of the adaptive learning rate and beyond. ICLR.
    """

    STATE_KEYS = {"step": "step", "exp_avg": "like_param", "exp_avg_sq": "like_param"}

    def __init__(self, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(dict(betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        if "betas" in s:
            check_betas(s["betas"], "RAdam")
        if "eps" in s:
            check_number("eps", s["eps"], owner="RAdam", min=0.0)

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "exp_avg": torch.zeros_like(tensor, memory_format=torch.preserve_format),
            "exp_avg_sq": torch.zeros_like(tensor, memory_format=torch.preserve_format),
        }

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> Sequence[Tensor]:
        steps = as_list(ctx.step, len(tensors))
        out: list[Tensor] = list(tensors)
        for (betas, eps), idx in settings.groups("betas", "eps"):
            d = radam_direction(
                [tensors[i] for i in idx], [states[i]["exp_avg"] for i in idx], [states[i]["exp_avg_sq"] for i in idx],
                [steps[i] for i in idx], float(betas[0]), float(betas[1]), float(eps),
            )
            for i, t in zip(idx, d):
                out[i] = t
        return out
