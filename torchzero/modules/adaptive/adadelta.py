"""``Adadelta``: per-coordinate steps from running averages of squared gradients and updates (Zeiler, 2012)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ...core.transform import Context, Settings, States, Transform
from ...functional.adadelta import adadelta_direction
from ...utils.validation import check_beta, check_number

__all__ = ["Adadelta"]


class Adadelta(Transform):
    r"""Adadelta: $E[g^2] \leftarrow \rho E[g^2] + (1-\rho) g^2$, the update
    $\Delta = \frac{\sqrt{E[\Delta^2]+\epsilon}}{\sqrt{E[g^2]+\epsilon}}\, g$, and
    $E[\Delta^2] \leftarrow \rho E[\Delta^2] + (1-\rho)\Delta^2$
    (:func:`~torchzero.functional.adadelta.adadelta_direction`). Followed by ``LR(lr)`` it is
    ``torch.optim.Adadelta(lr=lr, rho=rho, eps=eps)`` (torch's default lr is 1.0); weight decay
    is ``WeightDecay`` before it.

    Args:
        rho: the averages' decay, in ``[0, 1)`` (default: ``0.9``).
        eps: inside both roots, ``>= 0`` (default: ``1e-6``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Adadelta(), tz.m.LR(1.0))

    References:
        Zeiler, M. D. (2012). ADADELTA: An adaptive learning rate method. arXiv:1212.5701.
    """

    STATE_KEYS = {"square_avg": "like_param", "acc_delta": "like_param"}

    def __init__(self, rho: float = 0.9, eps: float = 1e-6):
        super().__init__(dict(rho=rho, eps=eps))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        if "rho" in s:
            check_beta("rho", s["rho"], owner="Adadelta")
        if "eps" in s:
            check_number("eps", s["eps"], owner="Adadelta", min=0.0)

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "square_avg": torch.zeros_like(tensor, memory_format=torch.preserve_format),
            "acc_delta": torch.zeros_like(tensor, memory_format=torch.preserve_format),
        }

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> Sequence[Tensor]:
        out: list[Tensor] = list(tensors)
        for (rho, eps), idx in settings.groups("rho", "eps"):
            d = adadelta_direction([tensors[i] for i in idx], [states[i]["square_avg"] for i in idx], [states[i]["acc_delta"] for i in idx], float(rho), float(eps))
            for i, t in zip(idx, d):
                out[i] = t
        return out
