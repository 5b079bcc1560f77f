"""``Lion``: the sign of an interpolation between momentum and the update (Chen et al., 2023)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.transform import Context, Settings, States, Transform
from ...functional.lion import lion_
from ...utils.validation import check_beta

__all__ = ["Lion"]


class Lion(Transform):
    r"""Lion (EvoLved Sign Momentum): the update is the sign of a momentum-interpolated update.

    Algorithm 2 of the paper, without its weight decay and learning rate:

    $$
    \begin{aligned}
    c_t &= \beta_1 m_{t-1} + (1-\beta_1)\, u_t \\
    m_t &= \beta_2 m_{t-1} + (1-\beta_2)\, u_t, \qquad m_0 = 0 \\
    u_t &\leftarrow \operatorname{sign}(c_t)
    \end{aligned}
    $$

    Every element of the output is $-1$, $0$ or $1$, so its norm is large: learning rates are
    typically 3-10 times smaller than Adam's. The paper's decoupled weight decay is
    ``WeightDecay`` placed after ``Lion`` and before ``LR``.

    Args:
        beta1: interpolation coefficient of the direction, in ``[0, 1)`` (default: ``0.9``).
        beta2: momentum coefficient, in ``[0, 1)`` (default: ``0.99``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Lion(), tz.m.LR(1e-4))

    References:
        Chen, X., Liang, C., Huang, D., Real, E., Wang, K., Liu, Y., Pham, H., Dong, X., Luong,
        T., Hsieh, C.-J., Lu, Y., & Le, Q. V. (2023). Symbolic discovery of optimization
        algorithms. https://arxiv.org/abs/2302.06675
    """

    STATE_KEYS = {"exp_avg": "like_param"}

    def __init__(self, beta1: float = 0.9, beta2: float = 0.99):
        super().__init__(dict(beta1=beta1, beta2=beta2))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        for key in ("beta1", "beta2"):
            if key in s:
                check_beta(key, s[key], owner="Lion")

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        return {"exp_avg": torch.zeros_like(tensor, memory_format=torch.preserve_format)}

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        return lion_(tensors, states["exp_avg"], *settings.values("beta1", "beta2"))
