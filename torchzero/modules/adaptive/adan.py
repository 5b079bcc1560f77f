"""``Adan``: adaptive Nesterov momentum (Xie et al., 2022)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.transform import Context, Settings, States, Transform
from ...functional.adan import adan_
from ...utils.validation import check_beta, check_number

__all__ = ["Adan"]


class Adan(Transform):
    r"""Adan: Adam-like moments of the update and of its difference between steps (Nesterov).

    With $d_t = u_t - u_{t-1}$ ($d_1 = 0$) and step $t$ counted per parameter:

    $$
    \begin{aligned}
    m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, u_t \\
    n_t &= \beta_2 n_{t-1} + (1-\beta_2)\, d_t \\
    v_t &= \beta_3 v_{t-1} + (1-\beta_3)\, (u_t + \beta_2 d_t)^2 \\
    u_t &\leftarrow \frac{m_t / (1-\beta_1^t) + \beta_2\, n_t / (1-\beta_2^t)}{\sqrt{v_t / (1-\beta_3^t)} + \epsilon}
    \end{aligned}
    $$

    **Convention.** The paper's Algorithm 1 writes the averages as
    $m_k = (1-\beta_1^{\text{paper}}) m_{k-1} + \beta_1^{\text{paper}} g_k$, so its
    $\beta^{\text{paper}}$ weighs the *new* value. Here, as in the official implementation
    (github.com/sail-sg/Adan), each $\beta$ weighs the *old* value:
    $\beta_i = 1 - \beta_i^{\text{paper}}$; the defaults ``(0.98, 0.92, 0.99)`` are the paper's
    recommended $(0.02, 0.08, 0.01)$. Like the official code (and unlike Algorithm 1) the three
    averages are bias-corrected, and $d_1 = 0$.

    Followed by ``LR(lr)`` this is the official ``Adan(lr=lr, betas=(beta1, beta2, beta3),
    eps=eps, weight_decay=0)``; its decoupled weight decay is ``WeightDecay`` placed after
    ``Adan`` and before ``LR`` (the ``no_prox=True`` form).

    Args:
        beta1: first-moment coefficient, in ``[0, 1)`` (default: ``0.98``).
        beta2: coefficient of the moving average of update differences, in ``[0, 1)``
            (default: ``0.92``).
        beta3: second-moment coefficient, in ``[0, 1)`` (default: ``0.99``).
        eps: added to the denominator, ``>= 0`` (default: ``1e-8``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Adan(), tz.m.LR(1e-3))

    References:
        Xie, X., Zhou, P., Li, H., Lin, Z., & Yan, S. (2022). Adan: Adaptive Nesterov momentum
        algorithm for faster optimizing deep models. https://arxiv.org/abs/2208.06677
    """

    STATE_KEYS = {"step": "step", "exp_avg": "like_param", "exp_avg_diff": "like_param", "exp_avg_sq": "like_param", "prev": "like_param"}

    def __init__(self, beta1: float = 0.98, beta2: float = 0.92, beta3: float = 0.99, eps: float = 1e-8):
        super().__init__(dict(beta1=beta1, beta2=beta2, beta3=beta3, eps=eps))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        for key in ("beta1", "beta2", "beta3"):
            if key in s:
                check_beta(key, s[key], owner="Adan")
        if "eps" in s:
            check_number("eps", s["eps"], owner="Adan", min=0.0)

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        zeros = lambda: torch.zeros_like(tensor, memory_format=torch.preserve_format)  # noqa: E731
        return {"exp_avg": zeros(), "exp_avg_diff": zeros(), "exp_avg_sq": zeros(), "prev": tensor.clone()}

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        m, diff, v, prev = states["exp_avg"], states["exp_avg_diff"], states["exp_avg_sq"], states["prev"]
        return adan_(tensors, m, diff, v, prev, ctx.step, *settings.values("beta1", "beta2", "beta3", "eps"))
