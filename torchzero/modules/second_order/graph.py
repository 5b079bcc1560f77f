"""What the second-order modules share: the loss re-evaluated with a differentiable gradient,
and the checks on the parameters they can work on."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...core.var import Var

__all__ = ["gradients_with_graph", "check_params"]


def check_params(owner: str, params: list[Tensor]) -> None:
    """Real floating-point parameters only: a Hessian of complex parameters is not defined here."""
    for p in params:
        base = p._base  # Modular hands modules the real view of a complex parameter
        if p.is_complex() or not p.is_floating_point() or (base is not None and base.is_complex()):
            raise TypeError(
                f"{owner}: parameters must be real floating point, got one of dtype {(base if base is not None and base.is_complex() else p).dtype} "
                f"and shape {tuple(p.shape)}; "
                "second-order modules work on real parameters (view complex ones as real pairs in the model)"
            )


def gradients_with_graph(owner: str, var: Var) -> tuple[Any, list[Tensor]]:
    r"""Calls ``closure(backward=False)`` with autograd on and differentiates the loss with
    ``create_graph=True``: the gradients whose products with a vector give $H v$. One more
    evaluation of the loss (counted in ``opt.stats()["nfev"]``); ``var.grad`` stays the one
    the step started with."""
    if var.closure is None:
        raise RuntimeError(
            f"{owner} differentiates the loss twice: pass a closure to opt.step(closure), written as "
            "`def closure(backward=True): ...` (see the Modular docstring)"
        )
    with torch.enable_grad():
        loss = var.closure(False)
        if not isinstance(loss, Tensor) or loss.numel() != 1 or not loss.requires_grad:
            raise RuntimeError(
                f"{owner}: closure(False) must return the loss as a one-element tensor attached to the graph of the "
                f"parameters (computed with autograd on), got {loss!r:.80}; or use hvp_method='central' (NewtonCG), "
                "which needs only gradients"
            )
        grads = torch.autograd.grad(loss.reshape(()), var.params, create_graph=True, allow_unused=True)
    out = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, var.params)]
    if var.loss is None:
        var.loss = loss.detach()
    return loss, out
