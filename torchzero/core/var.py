"""``Var``: the data of one optimizer step as it flows down a chain of modules.

It holds data only, no algorithm: the parameters that have gradients this step, their
gradients, the update being built, the loss and the closure.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = ["Var"]


@dataclass(eq=False)
class Var:
    """What one step passes from module to module.

    Attributes:
        params: the parameters updated this step (those whose ``.grad`` is not None), in order.
        closure: the user's closure, called as ``closure(backward=True)``; ``None`` if not given.
        grad: the gradients of ``params`` (``p.grad`` tensors themselves), or ``None`` if not
            evaluated yet.
        update: the update being built; ``params`` move by ``-update`` at the end of the step.
            ``None`` until a module forms it (from the gradient, see :meth:`get_update`).
        loss: the loss returned by the closure, if any.
        skip_update: set by a module to leave the parameters unchanged this step.
        storage: free-form per-step storage for modules that cooperate within one step.
    """

    params: list[Tensor]
    closure: Callable[..., Any] | None = None
    grad: list[Tensor] | None = None
    update: list[Tensor] | None = None
    loss: Tensor | float | None = None
    skip_update: bool = False
    storage: dict[str, Any] = field(default_factory=dict)

    def get_loss(self, backward: bool) -> Tensor | float:
        """Evaluates the closure if the loss is not known yet (and, with ``backward``, the gradients)."""
        if self.loss is None or (backward and self.grad is None):
            if self.closure is None:
                raise RuntimeError("this module needs the loss: pass a closure to `step(closure)`")
            with torch.enable_grad():
                self.loss = self.closure(backward)
            if backward:
                self.grad = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        return self.loss  # type: ignore[return-value]

    def get_grad(self) -> list[Tensor]:
        """The gradients, evaluating the closure if they were not computed yet."""
        if self.grad is None:
            self.get_loss(backward=True)
        assert self.grad is not None
        return self.grad

    def get_update(self) -> list[Tensor]:
        """The update; if no module has formed it yet, it is formed as a copy of the gradient.

        The copy means modules may modify the update in place without touching ``p.grad``.
        """
        if self.update is None:
            self.update = [g.clone() for g in self.get_grad()]
        return self.update

    def absorb(self, child: Var) -> None:
        """Takes back what a child ``Var`` learned: a loss or gradients it evaluated, and a skip."""
        if self.loss is None:
            self.loss = child.loss
        if self.grad is None:
            self.grad = child.grad
        self.skip_update = self.skip_update or child.skip_update

    def child(self, update: list[Tensor]) -> Var:
        """A ``Var`` for inner modules: same params, gradients and loss, the given update."""
        return Var(params=self.params, closure=self.closure, grad=self.grad, update=update, loss=self.loss, storage=self.storage)
