"""What the second-order modules share: the loss re-evaluated with a differentiable gradient,
and the checks on the parameters they can work on."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ...core.var import Var
from ...functional.hessian import all_reduce_mean_, fd_hvp, hvp
from ..quasi_newton.flat import flatten, split_like

__all__ = ["gradients_with_graph", "check_params", "hvp_operator"]


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


def hvp_operator(
    owner: str, var: Var, method: str, h: float, reg: float, dtype: torch.dtype, count: list[int]
) -> Callable[[Tensor], Tensor]:
    r"""$v \mapsto (H + \text{reg}\, I) v$ on flat vectors of ``dtype``, for the loss of ``var``'s
    closure at its parameters; ``count[0]`` counts the products.

    ``method``: ``"autograd"`` (the loss evaluated once more with a differentiable gradient, on
    the first product; then one backward pass per product), ``"central"`` or ``"forward"``
    (finite differences of gradients: two or one gradient evaluations per product). Under data
    parallelism each product is averaged over the ranks."""
    params = var.params
    if method == "autograd":
        graph: list[list[Tensor]] = []
        versions: list[int] = []

        def products(v: list[Tensor]) -> list[Tensor]:
            now = [p._version for p in params]
            if not graph or versions != now:  # the first product, or the parameters were moved since
                graph[:] = [gradients_with_graph(owner, var)[1]]
                versions[:] = [p._version for p in params]
            return hvp(graph[0], params, v)
    else:
        closure = var.closure
        if closure is None:
            raise RuntimeError(f"{owner}(hvp_method={method!r}) evaluates gradients: pass a closure to opt.step(closure)")
        g0 = var.get_grad()

        def grad_at() -> list[Tensor]:
            with torch.enable_grad():
                closure(True)
            return [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]

        def products(v: list[Tensor]) -> list[Tensor]:
            return fd_hvp(grad_at, params, v, h=h, formula=method, g0=g0)

    def matvec(vec: Tensor) -> Tensor:
        out = products(split_like(vec, params))
        all_reduce_mean_(out)
        count[0] += 1
        hv = flatten(out, dtype)
        return hv if reg == 0 else hv.add_(vec, alpha=reg)

    return matvec
