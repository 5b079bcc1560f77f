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
        terminate: set (with ``skip_update``) by a termination module: the optimization is
            over; ``Modular`` then sets ``terminated`` and runs no more steps.
        grad_probe: a 0-dim tensor, finite if and only if every gradient element is, reported
            by a first module's copy form (``Context.report_finite``); ``None`` if none was.
    """

    params: list[Tensor]
    closure: Callable[..., Any] | None = None
    grad: list[Tensor] | None = None
    update: list[Tensor] | None = None
    loss: Tensor | float | None = None
    skip_update: bool = False
    storage: dict[str, Any] = field(default_factory=dict)
    terminate: bool = False
    grad_probe: Tensor | None = None

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

    def child(self, update: list[Tensor] | None, idx: list[int] | None = None) -> Var:
        """A ``Var`` for modules run inside another: the same closure, loss and storage, the
        given update, and the parameters and gradients at positions ``idx`` (all by default)."""
        if idx is None:
            return Var(params=self.params, closure=self.closure, grad=self.grad, update=update, loss=self.loss, storage=self.storage)
        return Var(
            params=[self.params[i] for i in idx],
            closure=self.closure,
            grad=None if self.grad is None else [self.grad[i] for i in idx],
            update=update,
            loss=self.loss,
            storage=self.storage,
        )

    def absorb(self, child: Var, idx: list[int] | None = None, skip: bool = True) -> None:
        """Takes back what a ``child`` Var (from :meth:`child`) learned: a loss or gradients it
        evaluated through the closure (at positions ``idx``), and, with ``skip``, a request to
        skip the update. The one way results come back from modules run inside another."""
        if self.loss is None and child.loss is not None:
            self.loss = child.loss
        if child.grad is not None and child.grad is not self.grad:
            if idx is None:
                if self.grad is None:
                    self.grad = child.grad
            else:
                if self.grad is None:  # the child evaluated the closure: every p.grad is fresh
                    self.grad = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
                else:
                    self.grad = list(self.grad)
                for j, i in enumerate(idx):
                    self.grad[i] = child.grad[j]
        if skip:
            self.skip_update = self.skip_update or child.skip_update
