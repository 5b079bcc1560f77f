"""Functional entry point: apply a module or chain to any list of tensors, without ``Modular``."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor

from .chain import Chainable, as_module
from .var import Var

__all__ = ["apply_transform"]


def apply_transform(
    module: Chainable,
    tensors: Iterable[Tensor],
    params: Iterable[Tensor] | None = None,
    grads: Iterable[Tensor] | None = None,
    loss: Any = None,
) -> list[Tensor]:
    """Applies ``module`` (or a list of modules) to ``tensors`` and returns the result.

    The inputs are not modified. Stateful modules keep their state keyed by ``params``: pass the
    same ``params`` on every call (they default to ``tensors`` themselves).

    Args:
        module: a module or a list of modules.
        tensors: the tensors to transform (what a module sees as the update).
        params: the parameters the tensors belong to (state keys, and read by modules that use
            parameter values). Defaults to ``tensors``.
        grads: the gradients, for modules that read them. Defaults to ``tensors``.
        loss: the loss, for modules that read it.

    Returns:
        The transformed tensors, a new list.

    Example:
        >>> import torch, torchzero as tz
        >>> out = tz.apply_transform(tz.m.ClipNorm(1.0), [torch.tensor([3.0, 4.0])])
        >>> out[0]
        tensor([0.6000, 0.8000])
    """
    module = as_module(module, owner="apply_transform")
    update = [t.clone() for t in tensors]
    params = update if params is None else list(params)
    if len(params) != len(update):
        raise ValueError(f"apply_transform: got {len(update)} tensors but {len(params)} params; pass one param per tensor")
    new = [p for p in params if p not in module._settings]
    if new:
        module._bind_group({"params": new})
    grad_list = update if grads is None else list(grads)
    var = Var(params=list(params), grad=grad_list, update=update, loss=loss)
    var = module.step(var)
    return list(var.update if var.update is not None else var.get_grad())
