"""``ResidualClosure``: a least-squares closure, which returns residuals, seen by every module as
the closure of the loss $\\lVert r\\rVert^2$.

``Modular`` wraps the user's closure in it when a module of the chain declares
``Capabilities(residuals=True)`` (``tz.m.GaussNewton``, ``tz.m.SumOfSquares``). The modules
that only need a loss and a gradient (line searches, trust regions, L-BFGS, Adam) then work
unchanged; the Gauss-Newton ones ask it for $r$ and the Jacobian $J$ as well.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..functional.hessian import all_reduce_mean_

__all__ = ["ResidualClosure", "jacobian"]


def jacobian(r: Tensor, params: list[Tensor], batched: bool = True) -> Tensor:
    """The Jacobian $J_{ij} = \\partial r_i / \\partial x_j$ of a residual vector ``r`` (attached
    to its graph, which is kept) with respect to ``params`` flattened and concatenated: an
    ``(m, n)`` tensor in ``r``'s dtype. One batched backward pass (``batched``) or ``m`` passes."""
    m = r.numel()
    n = sum(p.numel() for p in params)
    if m == 0 or n == 0:
        return r.new_zeros(m, n)
    if batched:
        eye = torch.eye(m, dtype=r.dtype, device=r.device)
        try:
            grads = torch.autograd.grad(r.reshape(-1), params, eye, is_grads_batched=True, retain_graph=True, allow_unused=True)
            return torch.cat(
                [(r.new_zeros(m, p.numel()) if g is None else g.reshape(m, -1).to(r.dtype)) for g, p in zip(grads, params)], 1
            )
        except RuntimeError:  # an op without a batching rule: one row at a time
            pass
    flat = r.reshape(-1)
    out = r.new_zeros(m, n)
    for i in range(m):
        grads = torch.autograd.grad(flat[i], params, retain_graph=True, allow_unused=True)
        out[i] = torch.cat([(r.new_zeros(p.numel()) if g is None else g.reshape(-1).to(r.dtype)) for g, p in zip(grads, params)])
    return out


class ResidualClosure:
    r"""The closure of $f(x) = \lVert r(x)\rVert_2^2 = \sum_i r_i(x)^2$ for a user closure that
    returns the residuals $r(x)$ (a tensor of any shape, attached to the parameters' graph).

    ``closure(backward=True)`` evaluates $r$ once (the user's closure is called with
    ``backward=False``: it must not call ``backward()`` itself), returns $f$ and sets each
    parameter's ``.grad`` to $\nabla f = 2 J^T r$. With ``keep_jacobian`` (a Gauss-Newton module
    is in the chain) the gradient comes from the Jacobian, which is kept with $r$ for
    :meth:`jacobian` at the same point: one evaluation of $r$ and one of $J$ per accepted point,
    as MINPACK's ``lmder`` counts them. Under data parallelism (an initialized default process
    group) gradients and Jacobian products are averaged over the ranks, as DDP averages
    gradients.

    Counting: the wrapped closure counts each call of the user's closure in ``nfev`` and each
    gradient or Jacobian in ``ngev``.
    """

    def __init__(self, evaluations: Any, params: list[Tensor], keep_jacobian: bool, batched: bool = True):
        self.evaluations, self.params, self.keep_jacobian, self.batched = evaluations, params, keep_jacobian, batched
        # the last evaluation: (the point, its versions, r with its graph, J or None)
        self._last: tuple[list[Tensor], list[int], Tensor, Tensor | None] | None = None

    # ----------------------------------------------------------------- evaluation
    def _at_last(self) -> bool:
        """Whether the parameters are where ``r`` was last evaluated and what it needs is kept:
        untouched since (its graph still applies), or moved and put back with its Jacobian
        already formed (autograd refuses a graph whose inputs were changed in place)."""
        last = self._last
        if last is None:
            return False
        if [p._version for p in self.params] == last[1]:
            return True
        return last[3] is not None and all(torch.equal(a, p) for a, p in zip(last[0], self.params))

    def residuals(self) -> Tensor:
        """$r$ at the parameters, attached to its graph (evaluated once per point when
        ``keep_jacobian``)."""
        if self.keep_jacobian and self._at_last():
            assert self._last is not None
            return self._last[2]
        return self._evaluate()

    def _evaluate(self) -> Tensor:
        with torch.enable_grad():
            r = self.evaluations(False)
        if not isinstance(r, Tensor) or not r.is_floating_point():
            raise TypeError(
                "a least-squares module (GaussNewton, SumOfSquares) is in the chain, so the closure must return the "
                f"residuals as a floating-point tensor (the loss is their sum of squares), got {r!r:.80}"
            )
        if r.is_complex():
            raise TypeError(f"the closure's residuals must be real, got dtype {r.dtype}")
        r = r.reshape(-1)
        if self.keep_jacobian:
            self._last = ([p.detach().clone() for p in self.params], [p._version for p in self.params], r, None)
        return r

    def jacobian(self) -> tuple[Tensor, Tensor]:
        """``(r, J)`` at the parameters: $r$ detached (``m``) and $J$ (``m x n``), one Jacobian
        evaluation unless the point's is kept."""
        r = self.residuals()
        last = self._last
        if last is not None and last[2] is r and last[3] is not None:
            return r.detach(), last[3]
        if not r.requires_grad:
            raise RuntimeError(
                "GaussNewton: the closure's residuals are not attached to the parameters' graph; compute them with "
                "autograd on (don't detach them or wrap them in torch.no_grad())"
            )
        j = jacobian(r, self.params, self.batched)
        self.evaluations.ngev += 1
        if last is not None and last[2] is r:
            self._last = (last[0], last[1], r, j)
        return r.detach(), j

    def __call__(self, backward: bool = True) -> Tensor:
        r = self.residuals()
        value = (r.detach() * r.detach()).sum()
        if backward:
            if self.keep_jacobian:
                rr, j = self.jacobian()
                flat = 2.0 * (j.T @ rr)
                grads, start = [], 0
                for p in self.params:
                    grads.append(flat[start : start + p.numel()].view_as(p).to(p.dtype))
                    start += p.numel()
            else:
                if not r.requires_grad:
                    raise RuntimeError(
                        "SumOfSquares: the closure's residuals are not attached to the parameters' graph; compute them "
                        "with autograd on (don't detach them or wrap them in torch.no_grad())"
                    )
                with torch.enable_grad():
                    out = torch.autograd.grad((r * r).sum(), self.params, allow_unused=True)
                grads = [torch.zeros_like(p) if g is None else g for g, p in zip(out, self.params)]
                self.evaluations.ngev += 1
            all_reduce_mean_(grads)
            for p, g in zip(self.params, grads):
                p.grad = g.detach()
        return value
