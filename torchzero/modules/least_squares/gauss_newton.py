"""``GaussNewton``: Newton's method with the Gauss-Newton matrix $2 J^T J$ of a least-squares loss."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.capabilities import Capabilities
from ...core.module import Module
from ...core.residuals import ResidualClosure
from ...core.var import Var
from ...functional.hessian import all_reduce_mean_
from ...functional.krylov import cg_solve
from ...functional.newton import newton_solve
from ...utils.validation import MAX_ITERATIONS, check_bool, check_int, check_number
from ..quasi_newton.flat import flatten, split_like, unflatten_, working_dtype
from ..second_order.graph import check_params

__all__ = ["GaussNewton", "residual_closure"]


def residual_closure(owner: str, var: Var) -> ResidualClosure:
    """``var``'s closure as the least-squares wrapper ``Modular`` puts around a residual closure."""
    closure = var.closure
    if closure is None:
        raise RuntimeError(
            f"{owner} needs the residuals: pass a closure that returns them to opt.step(closure), "
            "`def closure(backward=True): return model(x) - y`"
        )
    if not isinstance(closure, ResidualClosure):
        raise RuntimeError(
            f"{owner}: the closure was not wrapped as a least-squares closure; use {owner} inside tz.Modular, "
            "which does so for chains with a least-squares module"
        )
    return closure


class GaussNewton(Module):
    r"""Gauss-Newton for a least-squares loss $f(x) = \lVert r(x)\rVert_2^2$: the update $u$ (the
    gradient $2 J^T r$, or what earlier modules made of it) becomes the solution $d$ of

    $$
    (2 J^T J + \lambda I)\, d = u
    $$

    with $J$ the Jacobian of the residuals $r$ by autograd and $\lambda$ = ``reg``, solved in
    float64 (by Cholesky, as :class:`~torchzero.modules.second_order.Newton` solves). When $u$ is
    the gradient, it is formed again from $J$ in the same precision, so that a rank-deficient
    $J$ (fewer residuals than parameters) gives the minimum-norm step. The closure
    returns the residual vector instead of a loss (``def closure(backward=True): return
    model(x) - y``; it needn't call ``backward()``): ``Modular`` then presents every module with
    the loss $\lVert r\rVert^2$ and its gradient
    (:class:`~torchzero.core.residuals.ResidualClosure`), so line searches and trust regions
    work as usual. As a trust region's model, ``tz.m.LevenbergMarquardt(tz.m.GaussNewton())``
    is Levenberg-Marquardt, and with ``more=True`` the algorithm of scipy's
    ``least_squares(method="lm")`` (MINPACK's ``lmder``, Moré 1978; what ``tz.least_squares``
    runs); alone, follow it with a line search (``tz.m.Backtracking()``).

    Each accepted point costs one evaluation of $r$ and one of $J$ (``m`` backward passes,
    batched into one with ``batched``), the gradient coming from $J$; a trial point of a line
    search or trust region costs one evaluation of $r$. With ``matrix_free`` $J$ is never
    formed: $d$ comes from conjugate gradient on products $2J^T(Jv)$ (two backward passes
    each), for problems with many parameters, and the step costs one more evaluation of $r$.
    Under data parallelism $J^T J$ and the gradient are averaged over the ranks. At most 10,000
    elements without ``matrix_free``.

    ``opt.stats()["nfev"]`` counts the evaluations of $r$ and ``["ngev"]`` the gradients and
    Jacobians of the last step.

    Args:
        reg: $\lambda \ge 0$ (default: ``1e-8``).
        batched: form $J$ in one batched backward pass (default: ``True``).
        matrix_free: solve by CG on products instead of forming $J$ (default: ``False``).
        maxiter: CG iterations at most with ``matrix_free`` (default: ``None``, the size).
        tol: CG's relative residual tolerance with ``matrix_free`` (default: ``1e-6``).

    Example:
        Fitting $y = a e^{-b t}$:

        >>> import torch, torchzero as tz
        >>> t = torch.linspace(0, 4, 20, dtype=torch.float64)
        >>> y = 2.5 * torch.exp(-1.3 * t)
        >>> ab = torch.nn.Parameter(torch.tensor([1.0, 0.5], dtype=torch.float64))
        >>> opt = tz.Modular([ab], tz.m.LevenbergMarquardt(tz.m.GaussNewton(), more=True))
        >>> closure = lambda backward=True: ab[0] * torch.exp(-ab[1] * t) - y
        >>> for _ in range(30):
        ...     loss = opt.step(closure)
        >>> ab.detach()
        tensor([2.5000, 1.3000], dtype=torch.float64)

    References:
        Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Section 10.3.
    """

    CAPABILITIES = Capabilities(residuals=True)

    def __init__(
        self,
        reg: float = 1e-8,
        batched: bool = True,
        matrix_free: bool = False,
        maxiter: int | None = None,
        tol: float = 1e-6,
    ):
        super().__init__(dict(reg=reg, batched=batched, matrix_free=matrix_free, maxiter=maxiter, tol=tol))
        # the dense step reads J at the accepted point (Modular keeps it from the gradient's evaluation)
        self.CAPABILITIES = Capabilities(residuals=True, uses_jacobian=not matrix_free)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "GaussNewton"
        if "reg" in s:
            check_number("reg", s["reg"], owner=o, min=0.0)
        if "tol" in s:
            check_number("tol", s["tol"], owner=o, min=0.0, min_inclusive=False)
        for key in ("batched", "matrix_free"):
            if key in s:
                check_bool(key, s[key], owner=o)
        if s.get("maxiter") is not None:
            check_int("maxiter", s["maxiter"], owner=o, min=1, max=MAX_ITERATIONS)

    def _coupled(self, var: Var) -> dict[str, Any]:
        s = self.settings_list(var.params).coupled(self.defaults, "GaussNewton")
        if bool(s["matrix_free"]) == self.CAPABILITIES.uses_jacobian:
            raise ValueError(
                "GaussNewton: matrix_free is fixed when the module is built (it decides whether Modular keeps the "
                "Jacobian); set it in GaussNewton(matrix_free=...), not in a param group"
            )
        return s

    def step(self, var: Var) -> Var:
        if not var.params:
            return var
        s = self._coupled(var)
        check_params("GaussNewton", var.params)
        from_grad = var.update is None  # the update is the gradient 2 J^T r: formed again below from J
        update = var.get_update()
        if s["matrix_free"]:
            dtype = working_dtype(update)
            matvec = self._products(var, dtype, float(s["reg"]))
            x: Tensor | None = cg_solve(matvec, flatten(update, dtype), rtol=float(s["tol"]), maxiter=s["maxiter"]).x
        else:
            # in float64: J^T J squares J's condition number, and with a rank-deficient J any part of
            # u outside J's range would be divided by reg; u = 2 J^T r in the same precision has none
            b = self.curvature(var, torch.float64)
            if from_grad:
                r, j = residual_closure("GaussNewton", var).jacobian()
                u = 2.0 * (j.to(torch.float64).T @ r.to(torch.float64))
                all_reduce_mean_([u])
            else:
                u = flatten(update, torch.float64)
            x, _ = newton_solve(b, u, float(s["reg"]))
        if x is not None:
            unflatten_(x, update)
        return var

    def curvature(self, var: Var, dtype: torch.dtype) -> Tensor:
        """$2 J^T J$ at ``var``'s parameters (averaged over ranks), as a trust region's
        ``hess_module`` asks for it."""
        s = self._coupled(var)
        n = sum(p.numel() for p in var.params)
        if n > 10_000:
            raise ValueError(
                f"GaussNewton forms the n x n matrix J^T J, and these parameters have n = {n:,} elements (at most "
                "10,000); use tz.m.GaussNewton(matrix_free=True) with a line search"
            )
        closure = residual_closure("GaussNewton", var)
        closure.batched = bool(s["batched"])
        _, j = closure.jacobian()
        j = j.to(dtype)
        b = 2.0 * (j.T @ j)
        all_reduce_mean_([b])
        return b

    @staticmethod
    def _products(var: Var, dtype: torch.dtype, reg: float) -> Callable[[Tensor], Tensor]:
        r"""$v \mapsto 2 J^T J v + \lambda v$ without $J$: $Jv$ by differentiating $J^T w$ in
        $w$, then $J^T (Jv)$, on one evaluation of $r$ with its graph."""
        params = var.params
        with torch.enable_grad():
            r = residual_closure("GaussNewton", var).residuals()
            if not r.requires_grad:
                raise RuntimeError("GaussNewton: the closure's residuals are not attached to the parameters' graph")
            w = torch.zeros_like(r, requires_grad=True)
            jt_w = torch.autograd.grad(r, params, w, create_graph=True, allow_unused=True)
        jt_w = tuple(torch.zeros_like(p) if g is None else g for g, p in zip(jt_w, params))

        def matvec(v: Tensor) -> Tensor:
            with torch.enable_grad():
                vs = split_like(v, params)
                used = [(g, t) for g, t in zip(jt_w, vs) if g.requires_grad]
                if used:
                    (jv,) = torch.autograd.grad([g for g, _ in used], w, [t.to(g.dtype) for g, t in used], retain_graph=True)
                else:
                    jv = torch.zeros_like(r)
                out = torch.autograd.grad(r, params, jv.detach(), retain_graph=True, allow_unused=True)
            prods = [torch.zeros_like(p) if g is None else g for g, p in zip(out, params)]
            all_reduce_mean_(prods)
            return flatten(prods, dtype).mul_(2.0).add_(v, alpha=reg)

        return matvec
