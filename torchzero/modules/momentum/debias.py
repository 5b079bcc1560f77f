"""``Debias``: Adam-style bias correction of moving averages computed earlier in the chain."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ...core.transform import Context, Settings, States, Transform
from ...functional.momentum import debias_
from ...utils.validation import check_beta, check_number

__all__ = ["Debias"]


class Debias(Transform):
    r"""Multiplies the update by the bias corrections of zero-initialised moving averages.

    $$
    u_t \leftarrow \alpha\, \frac{\left(1-\beta_2^t\right)^{1/p}}{1-\beta_1^t}\, u_t
    $$

    $\beta_1$ corrects a first moment in the numerator (e.g. :class:`EMA`), $\beta_2$ the
    $p$-th root of a $p$-th moment in the denominator (e.g. the one of ``Adam(debiased=False)``);
    ``None`` leaves the corresponding factor out. The step $t$ (1 on the first step) is counted
    per parameter in this module's state.

    Args:
        beta1: decay of the first moment to correct, in ``[0, 1)``, or ``None`` (default: ``None``).
        beta2: decay of the second moment to correct, in ``[0, 1)``, or ``None`` (default: ``None``).
        alpha: multiplier of the update, a finite number (default: ``1``).
        pow: the power $p$ of the second moment, ``> 0`` (default: ``2``).
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        ``EMA(0.9)`` followed by ``Debias(beta1=0.9)`` is ``EMA(0.9, debiased=True)``. Adam
        with the corrections folded into the step size (the "efficient version" of the paper,
        which also scales ``eps``):

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Adam(debiased=False), tz.m.Debias(0.9, 0.999), tz.m.LR(1e-3))
        >>> model(torch.randn(8, 4)).pow(2).mean().backward(); opt.step()

    References:
        Kingma, D. P., & Ba, J. (2014). Adam: A method for stochastic optimization (Section 3).
        https://arxiv.org/abs/1412.6980
    """

    STATE_KEYS = {"step": "step"}

    def __init__(
        self,
        beta1: float | None = None,
        beta2: float | None = None,
        alpha: float = 1,
        pow: float = 2,
        target: str = "update",
    ):
        super().__init__(dict(beta1=beta1, beta2=beta2, alpha=alpha, pow=pow), target=target)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        for name in ("beta1", "beta2"):
            if name in s and s[name] is not None:
                check_beta(name, s[name], owner="Debias")
        if "alpha" in s:
            check_number("alpha", s["alpha"], owner="Debias")
        if "pow" in s:
            check_number("pow", s["pow"], owner="Debias", min=0.0, min_inclusive=False)

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        beta1, beta2, alpha, pow_ = settings.values("beta1", "beta2", "alpha", "pow")
        return debias_(tensors, ctx.step, beta1, beta2, alpha, pow_)
