"""``WeightDecay`` (added to the update: coupled or decoupled by its place in the chain) and
``DirectWeightDecay`` (applied to the parameters directly)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.capabilities import Capabilities
from ...core.module import Module

from ...core.transform import Context, Settings, States, Transform
from ...core.var import Var
from ...functional.weight_decay import add_weight_decay_, decay_params_
from ...utils.validation import check_number

__all__ = ["WeightDecay", "DirectWeightDecay"]


def check_weight_decay_settings(s: Mapping[str, Any], owner: str) -> None:
    """``weight_decay``: a finite number ``>= 0``; ``ord``: a finite number ``>= 1``."""
    if "weight_decay" in s:
        check_number("weight_decay", s["weight_decay"], owner=owner, min=0.0)
    if "ord" in s:
        if isinstance(s["ord"], torch.Tensor):
            raise TypeError(f"{owner}: ord must be a Python number (1, 2, ...), got a tensor")
        check_number("ord", s["ord"], owner=owner, min=1.0)


class WeightDecay(Transform):
    r"""Adds weight decay to the update: $u \leftarrow u + \lambda\, \operatorname{sign}(x)\,|x|^{p-1}$.

    $x$ is the parameter, $\lambda$ = ``weight_decay``, $p$ = ``ord``: $\lambda x$ for ``ord=2``
    (L2) and $\lambda \operatorname{sign}(x)$ for ``ord=1`` (L1); in general the gradient of
    $\frac{\lambda}{p}\sum_i |x_i|^p$.

    Where it goes in the chain decides what it is:

    - **before** the momentum or adaptive module it is a coupled L2 penalty, part of the gradient
      (``WeightDecay(wd), HeavyBall(m), LR(lr)`` is ``torch.optim.SGD(lr, momentum=m, weight_decay=wd)``);
    - **after** it, and before ``LR``, it is decoupled weight decay
      (``Adam(), WeightDecay(wd), LR(lr)`` is ``torch.optim.AdamW(lr, weight_decay=wd)``:
      the parameters shrink by ``lr * wd * x`` per step). That exact chain (``ord=2``) runs
      through torch's fused AdamW kernel when :class:`~torchzero.Modular` takes its fused path.

    Args:
        weight_decay: $\lambda$, a finite number ``>= 0``.
        ord: $p$, a number ``>= 1`` (default: ``2``).
        target: ``"update"`` (default) or ``"grad"`` (add it to the gradient, which later
            modules and ``p.grad`` then see).

    Example:
        AdamW:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Adam(), tz.m.WeightDecay(1e-2), tz.m.LR(1e-3))
        >>> model(torch.randn(8, 4)).pow(2).mean().backward(); opt.step()

        Adam with a coupled L2 penalty (``torch.optim.Adam(weight_decay=1e-2)``):

        >>> opt = tz.Modular(model.parameters(), tz.m.WeightDecay(1e-2), tz.m.Adam(), tz.m.LR(1e-3))

    References:
        Loshchilov, I., & Hutter, F. (2017). Decoupled weight decay regularization.
        https://arxiv.org/abs/1711.05101
    """

    #: Between ``Adam`` and a trailing ``LR`` it is AdamW's decay: the fused path may run it.
    CAPABILITIES = Capabilities(fused_role="decoupled_weight_decay", fused_options=frozenset({"weight_decay", "ord"}))

    def __init__(self, weight_decay: float, ord: float = 2, target: str = "update"):
        super().__init__(dict(weight_decay=weight_decay, ord=ord), target=target)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        check_weight_decay_settings(s, "WeightDecay")

    def fused_spec(self, s: Mapping[str, Any]) -> dict[str, Any] | None:
        """``{"weight_decay": wd}`` for torch's fused AdamW kernel; ``None`` (no fused form) unless
        ``ord=2``, ``target="update"`` and ``weight_decay`` is a Python number."""
        wd = s["weight_decay"]
        if s["ord"] != 2 or self.target != "update" or isinstance(wd, torch.Tensor):
            return None
        return {"weight_decay": float(wd)}

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        for (wd, ord), idx in settings.groups("weight_decay", "ord"):
            if len(idx) == len(tensors):
                add_weight_decay_(tensors, ctx.params, wd, ord)
            else:
                add_weight_decay_([tensors[i] for i in idx], [ctx.params[i] for i in idx], wd, ord)
        return tensors


class DirectWeightDecay(Module):
    r"""Decays the parameters directly, in place: $x \leftarrow x - \lambda\, \operatorname{sign}(x)\,|x|^{p-1}$.

    For ``ord=2`` that is $x \leftarrow (1-\lambda)\,x$. The update is not touched; the decay
    happens when the chain reaches this module, independent of what the rest of the chain does,
    and modules after it see the decayed parameters.

    The decay is **not** multiplied by the learning rate (as in torchzero 0.3.x): with
    ``LR(lr)`` in the chain, ``DirectWeightDecay(wd)`` shrinks the parameters by ``wd`` per step
    where ``AdamW(lr, weight_decay=wd)`` shrinks them by ``lr * wd``; use
    ``DirectWeightDecay(lr * wd)`` for the same decay, or :class:`WeightDecay` after the
    adaptive module to follow a learning-rate schedule.

    Args:
        weight_decay: $\lambda$, a finite number ``>= 0``.
        ord: $p$, a number ``>= 1`` (default: ``2``).

    Example:
        Adam with a fixed, lr-independent decay of 1e-4 per step:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.DirectWeightDecay(1e-4), tz.m.Adam(), tz.m.LR(1e-3))
        >>> model(torch.randn(8, 4)).pow(2).mean().backward(); opt.step()
    """

    def __init__(self, weight_decay: float, ord: float = 2):
        super().__init__(dict(weight_decay=weight_decay, ord=ord))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        check_weight_decay_settings(s, "DirectWeightDecay")

    def step(self, var: Var) -> Var:
        params = var.params
        if not params:
            return var
        settings = self.settings_list(params)
        with torch.no_grad():
            for (wd, ord), idx in settings.groups("weight_decay", "ord"):
                decay_params_(params if len(idx) == len(params) else [params[i] for i in idx], wd, ord)
        return var
