"""``NAdam``: Adam with Nesterov momentum (Dozat, 2016), as torch.optim.NAdam."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ...core.settings import as_list
from ...core.transform import Context, Settings, States, Transform
from ...functional._scalars import torch_scalar_dtype
from ...functional.adam_variants import nadam_direction
from ...utils.validation import check_number
from ._betas import check_betas

__all__ = ["NAdam"]


class NAdam(Transform):
    r"""NAdam: Adam whose first moment is applied with Nesterov's look-ahead, with the momentum
    coefficient warmed up by ``momentum_decay`` (:func:`~torchzero.functional.adam_variants.nadam_direction`):

    $$
    u \leftarrow \frac{1-\mu_t}{1-\Pi_t}\,\frac{g}{\sqrt{\hat v}+\epsilon}
      + \frac{\mu_{t+1}}{1-\Pi_{t+1}}\,\frac{m}{\sqrt{\hat v}+\epsilon},
    \qquad \mu_t = \beta_1\left(1 - \tfrac12\, 0.96^{t\psi}\right),\ \Pi_t = \prod_{i \le t} \mu_i
    $$

    with $\hat v = v / (1-\beta_2^t)$. Followed by ``LR(lr)`` it is
    ``torch.optim.NAdam(lr=lr, betas=betas, eps=eps, momentum_decay=momentum_decay)``; L2
    weight decay is ``WeightDecay(wd)`` before it, ``decoupled_weight_decay=True`` is
    ``WeightDecay(wd)`` after it (as for Adam and AdamW).

    Args:
        betas: $(\beta_1, \beta_2)$, each in ``[0, 1)`` (default: ``(0.9, 0.999)``).
        eps: added to the denominator, ``>= 0`` (default: ``1e-8``).
        momentum_decay: $\psi \ge 0$ (default: ``4e-3``).

    Example:
        ``torch.optim.NAdam(params, lr=2e-3, weight_decay=1e-2, decoupled_weight_decay=True)``:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.NAdam(), tz.m.WeightDecay(1e-2), tz.m.LR(2e-3))

    References:
        Dozat, T. (2016). Incorporating Nesterov momentum into Adam. ICLR workshop.
    """

    STATE_KEYS = {"step": "step", "exp_avg": "like_param", "exp_avg_sq": "like_param", "mu_product": "count"}

    def __init__(self, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, momentum_decay: float = 4e-3):
        super().__init__(dict(betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps, momentum_decay=momentum_decay))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        if "betas" in s:
            check_betas(s["betas"], "NAdam")
        if "eps" in s:
            check_number("eps", s["eps"], owner="NAdam", min=0.0)
        if "momentum_decay" in s:
            check_number("momentum_decay", s["momentum_decay"], owner="NAdam", min=0.0)

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "exp_avg": torch.zeros_like(tensor, memory_format=torch.preserve_format),
            "exp_avg_sq": torch.zeros_like(tensor, memory_format=torch.preserve_format),
            "mu_product": torch.ones((), dtype=torch_scalar_dtype()),
        }

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> Sequence[Tensor]:
        steps = as_list(ctx.step, len(tensors))
        out: list[Tensor] = list(tensors)
        for (betas, eps, decay), idx in settings.groups("betas", "eps", "momentum_decay"):
            d = nadam_direction(
                [tensors[i] for i in idx], [states[i]["exp_avg"] for i in idx], [states[i]["exp_avg_sq"] for i in idx],
                [states[i]["mu_product"] for i in idx], [steps[i] for i in idx], float(betas[0]), float(betas[1]), float(eps), float(decay),
            )
            for i, t in zip(idx, d):
                out[i] = t
        return out
