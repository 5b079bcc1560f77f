"""``ASGD``: averaged stochastic gradient descent (Polyak & Juditsky, 1992), as torch.optim.ASGD."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ...core.settings import as_list, host_numbers
from ...core.transform import Context, Settings, States, Transform
from ...functional._scalars import torch_scalar_dtype
from ...utils.validation import check_number

__all__ = ["ASGD"]


class ASGD(Transform):
    r"""Averaged SGD: the step $x \leftarrow x(1 - \lambda\eta_t) - \eta_t g$ with the decaying step
    size $\eta_{t+1} = \text{lr} / (1 + \lambda\,\text{lr}\, t)^{\alpha}$ ($\eta_1$ = ``lr``), and
    the running average $\bar x \leftarrow \bar x + \mu_t (x - \bar x)$ of the iterates, with
    $\mu_t = 1/\max(1, t - t_0)$ (so the average starts after $t_0$ steps). As torch.optim.ASGD,
    the parameters follow the SGD iterates; the average is in this module's state, ``"ax"`` per
    parameter (``module.state[p]["ax"]``, or under ``"<path>.ax"`` in ``opt.state[p]``), to copy
    into the model for evaluation. ``eta`` and ``mu`` are kept as 0-dim tensors in torch's scalar
    dtype, as torch keeps them.

    ``lr`` enters the rule non-linearly (the schedule of $\eta$), so this module takes ``lr``
    itself and the chain has no ``LR``: ``tz.Modular(p, tz.m.ASGD(lr=1e-2))`` is
    ``torch.optim.ASGD(p, lr=1e-2)``; ``weight_decay=wd`` is ``tz.m.WeightDecay(wd)`` before it,
    ``maximize=True`` is ``tz.m.Negate()`` first. The average assumes the parameters move by this
    module's update as it is (put no module after it).

    Args:
        lr: the initial step size $\eta_1$, ``>= 0`` (default: ``1e-2``).
        lambd: the decay term $\lambda \ge 0$ (default: ``1e-4``).
        alpha: the power of the step-size schedule (default: ``0.75``).
        t0: the step at which averaging starts (default: ``1e6``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.ASGD(lr=1e-2, t0=100))

    References:
        Polyak, B. T., & Juditsky, A. B. (1992). Acceleration of stochastic approximation by
        averaging. SIAM Journal on Control and Optimization 30(4), 838-855.
    """

    STATE_KEYS = {"step": "step", "eta": "count", "mu": "count", "ax": "like_param"}
    GROUP_KEYS = ("lr",)

    def __init__(self, lr: float = 1e-2, lambd: float = 1e-4, alpha: float = 0.75, t0: float = 1e6):
        super().__init__(dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "ASGD"
        if "lr" in s:
            check_number("lr", host_numbers(s["lr"]), owner=o, min=0.0)
        if "lambd" in s:
            check_number("lambd", s["lambd"], owner=o, min=0.0)
        for key in ("alpha", "t0"):
            if key in s:
                check_number(key, s[key], owner=o)

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        dtype = torch_scalar_dtype()
        return {
            "eta": torch.as_tensor(float(host_numbers(setting["lr"])), dtype=dtype).clone(),
            "mu": torch.ones((), dtype=dtype),
            "ax": torch.zeros_like(tensor, memory_format=torch.preserve_format),
        }

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> Sequence[Tensor]:
        steps = as_list(ctx.step, len(tensors))
        params = ctx.params
        out = []
        for g, p, st, s, t in zip(tensors, params, states, settings, steps):
            lr, lambd, alpha, t0 = float(host_numbers(s["lr"])), float(s["lambd"]), float(s["alpha"]), float(s["t0"])
            eta = float(st["eta"])
            # x (1 - lambd eta) - eta g as torch computes it, then the update u = x - that
            new = p.mul(1 - lambd * eta).add_(g, alpha=-eta)
            mu = st["mu"]
            if float(mu) != 1:
                st["ax"].add_(new.sub(st["ax"]).mul_(mu))
            else:
                st["ax"].copy_(new)
            step = float(t)
            st["eta"].copy_(torch.as_tensor(lr / ((1 + lambd * lr * step) ** alpha)))
            mu.copy_(torch.as_tensor(1 / max(1, step - t0)))
            out.append(p.sub(new))
        return out
