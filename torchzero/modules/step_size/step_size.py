"""``StepSize``: multiplies the update by a step size read from its own param-group key."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.settings import is_uniform
from ...core.transform import Context, Settings, States, Transform
from ...utils.validation import check_number

__all__ = ["StepSize"]


def _check_key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"StepSize: key must be a string naming a param-group key, got {key!r} of type {type(key).__name__}")
    if not key or key == "params" or key == "param_names":
        raise ValueError(f"StepSize: key must be a non-empty string other than 'params' and 'param_names', got {key!r}")
    return key


class StepSize(Transform):
    r"""Multiplies the update by a step size: $u \leftarrow \eta\, u$.

    The same as :class:`LR`, except that the value is read from the setting named ``key``
    (``"step_size"`` by default) instead of ``"lr"``, so it does not share its value with ``LR``
    modules or ``torch.optim.lr_scheduler`` schedulers. A param group (or
    :meth:`~torchzero.Module.set_param_groups`) that has the key ``key`` overrides the value for
    its parameters; the value is not published into the param groups (unlike ``LR``'s ``"lr"``),
    so several ``StepSize`` modules with the same key keep their own values unless a param group
    sets that key, which then applies to all of them.

    Args:
        step_size: $\eta$, a finite number ``>= 0``.
        key: the name of the setting, a string (default: ``"step_size"``).

    Example:
        A fixed multiplier before Adam that a scheduler on ``"lr"`` does not touch, and a
        different value for the biases:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> groups = [{"params": [model.weight]}, {"params": [model.bias], "grad_scale": 0.1}]
        >>> opt = tz.Modular(groups, tz.m.StepSize(0.5, key="grad_scale"), tz.m.Adam(), tz.m.LR(1e-3))
        >>> model(torch.randn(8, 4)).pow(2).mean().backward(); opt.step()
    """

    def __init__(self, step_size: float, key: str = "step_size"):
        self.key = _check_key(key)
        super().__init__({key: step_size})

    def validate_settings(self, settings: Mapping[str, Any]) -> None:
        if self.key in settings:
            name = "step_size" if self.key == "step_size" else f"step_size (key {self.key!r})"
            check_number(name, settings[self.key], owner="StepSize", min=0.0)

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        (step_size,) = settings.values(self.key)
        if is_uniform(step_size):
            if not (isinstance(step_size, (int, float)) and step_size == 1):
                torch._foreach_mul_(tensors, step_size)
        else:
            torch._foreach_mul_(tensors, list(step_size))
        return tensors

    def extra_repr(self) -> str:
        return f"step_size={self.defaults[self.key]!r}, key={self.key!r}"
