"""``LR``: multiplies the update by the learning rate."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.settings import as_scalars, is_uniform
from ...core.capabilities import Capabilities
from ...core.transform import Context, Settings, States, Transform
from ...utils.validation import check_number

__all__ = ["LR"]


class LR(Transform):
    r"""Multiplies the update by the learning rate: $u \leftarrow \text{lr} \cdot u$.

    ``lr`` is published into every param group of a :class:`~torchzero.Modular` as ``"lr"``, so
    ``torch.optim.lr_scheduler`` schedulers and per-group learning rates work as with
    ``torch.optim``. Every ``LR`` in a chain reads the group's ``"lr"``.

    Args:
        lr: learning rate, a number ``>= 0`` (default: ``1e-3``).

    Example:
        Adam with a cosine schedule:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Adam(), tz.m.LR(1e-3))
        >>> sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    """

    GROUP_KEYS = ("lr",)
    TENSOR_SETTINGS = ("lr",)
    CAPABILITIES = Capabilities(fused_role="lr", fused_options=frozenset({"lr"}))

    def __init__(self, lr: float = 1e-3):
        super().__init__({"lr": lr})

    def validate_settings(self, settings: Mapping[str, Any]) -> None:
        if "lr" in settings:
            check_number("lr", settings["lr"], owner="LR", min=0.0)

    def fused_spec(self, s: Mapping[str, Any]) -> dict[str, Any]:
        return {"lr": s["lr"]}

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        lr = as_scalars(settings["lr"])
        if is_uniform(lr) and torch.compiler.is_compiling():
            # ``t * lr`` lets inductor take lr as an input; a scalar argument of a foreach op
            # would be specialised, recompiling whenever a scheduler changes lr
            return [t * lr for t in tensors]
        if is_uniform(lr):
            if not (isinstance(lr, (int, float)) and lr == 1):
                torch._foreach_mul_(tensors, lr)
        else:
            torch._foreach_mul_(tensors, list(lr))
        return tensors

    def step_params(self, params: list[Tensor], update: list[Tensor]) -> None:
        """``p -= lr * u`` for each parameter, in one pass: what ``Modular`` does with the update
        when this module ends the chain (the multiplication folded into the parameter update,
        instead of :meth:`apply_tensors` followed by ``p -= u``)."""
        lr = as_scalars(self.settings_list(params)["lr"])
        if is_uniform(lr) and not isinstance(lr, Tensor):
            if torch.compiler.is_compiling():
                # ``u * lr`` lets inductor take lr as an input (see apply_tensors)
                torch._foreach_sub_(params, [u * lr for u in update])
            else:
                torch._foreach_add_(params, update, alpha=-lr)
        else:
            torch._foreach_sub_(params, torch._foreach_mul(update, lr if is_uniform(lr) else list(lr)))

    def step_params_each(self, params: list[Tensor], updates: Iterator[Tensor]) -> None:
        """:meth:`step_params` for updates made one at a time (a last module with a stream
        form): each parameter moves by ``lr * u`` as its update comes."""
        lr = as_scalars(self.settings_list(params)["lr"])
        # next() in the body, not a loop variable: that would hold each update while the next is made
        if is_uniform(lr) and not isinstance(lr, Tensor):
            for p in params:
                p.add_(next(updates), alpha=-lr)  # as step_params' foreach form, bit for bit
            return
        lrs = [lr] * len(params) if is_uniform(lr) else list(lr)
        for p, lr_i in zip(params, lrs):
            p.sub_(next(updates) * lr_i)
