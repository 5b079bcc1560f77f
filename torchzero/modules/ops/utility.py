"""``Identity`` (does nothing) and ``Grad`` (restarts the update from the gradient)."""
from __future__ import annotations

from ...core.module import Module
from ...core.var import Var

__all__ = ["Identity", "Grad"]


class Identity(Module):
    """Passes the update through unchanged (a placeholder, e.g. for a branch of ``Split``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Identity(), tz.m.LR(1e-2))
    """

    def __init__(self) -> None:
        super().__init__()

    def step(self, var: Var) -> Var:
        return var


class Grad(Module):
    r"""Restarts the update from the gradient: $u \leftarrow g$ (a copy).

    Whatever earlier modules made of the update is discarded; the gradient is the one of this step
    as earlier modules left it (those with ``target="grad"`` transform it). The closure is
    evaluated if the gradient is not known yet.

    Example:
        Inside an operand, ``Grad`` gives a chain access to the raw gradient: here the update is
        Adam's direction plus a small multiple of the gradient.

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Adam(), tz.m.Add(tz.m.Grad(), alpha=0.1), tz.m.LR(1e-3))
    """

    def __init__(self) -> None:
        super().__init__()

    def step(self, var: Var) -> Var:
        if var.params:
            var.update = [g.clone() for g in var.get_grad()]
        return var
