"""``NewtonCG``: inexact Newton, conjugate gradient on Hessian-vector products."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.module import Module
from ...core.var import Var
from ...functional.krylov import cg_solve, eisenstat_walker
from ...utils.validation import MAX_ITERATIONS, check_bool, check_choice, check_int, check_number
from ..quasi_newton.flat import flatten, layout, unflatten_, working_dtype
from .graph import check_params, hvp_operator

__all__ = ["NewtonCG"]

HVP_METHODS = ("autograd", "central", "forward")
FORCING = ("eisenstat-walker", "sqrt", "fixed")


class NewtonCG(Module):
    r"""Inexact Newton: the update $u$ (the gradient, or what earlier modules made of it)
    becomes an approximate solution of $(H + \lambda I)\, x = u$ by conjugate gradient, which
    needs only products $H v$, never $H$ itself (Nocedal & Wright, Algorithm 7.1).

    CG stops when $\lVert u - (H + \lambda I) x\rVert \le \eta_k \lVert u\rVert$, after
    ``maxiter`` products, or on negative curvature ($p^T H p \le 0$ for a search direction
    $p$): then it returns the iterate so far, and at its first iteration $u$ itself, so $x$ is
    always a descent direction. The forcing term $\eta_k$:

    - ``"eisenstat-walker"``: Eisenstat and Walker's choice 2, $0.9 (\lVert g_k\rVert/\lVert g_{k-1}\rVert)^2$
      with their safeguard, at most 0.9, and 0.5 at the first step
      (:func:`~torchzero.functional.krylov.eisenstat_walker`);
    - ``"sqrt"``: $\min(0.5, \sqrt{\lVert u\rVert})$ (Nocedal & Wright, Algorithm 7.1);
    - ``"fixed"``: ``tol``.

    Put a line search after it (``tz.m.StrongWolfe()`` or ``tz.m.Backtracking()``). The
    products come from ``hvp_method``:

    - ``"autograd"``: the loss is evaluated once more (``closure(False)``) for a
      differentiable gradient, then each product is one backward pass (double backward);
    - ``"central"`` / ``"forward"``: finite differences of gradients, two (one) gradient
      evaluations per product at a step $h / \lVert v\rVert$, for closures whose graph can't
      be differentiated twice.

    ``opt.stats()`` has ``"NewtonCG/hvps"`` (products this step), ``"NewtonCG/eta"`` and
    ``"NewtonCG/negative_curvature"`` (1 if CG stopped on it). Under data parallelism the
    products are averaged over the ranks. The state (the last gradient norm and forcing term,
    and with ``warm_start`` the last solution) is saved with the optimizer.

    Args:
        maxiter: products per step at most, ``None`` for the number of elements (default: ``None``).
        tol: $\eta$ of ``forcing="fixed"`` (default: ``1e-4``).
        reg: $\lambda \ge 0$, added to $H$ (default: ``0``).
        hvp_method: ``"autograd"``, ``"central"`` or ``"forward"`` (default: ``"autograd"``).
        h: the finite-difference step (default: ``1e-3``).
        warm_start: start CG from the last step's solution (default: ``False``).
        forcing: ``"eisenstat-walker"``, ``"sqrt"`` or ``"fixed"`` (default: ``"eisenstat-walker"``).

    Example:
        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))
        >>> opt = tz.Modular([x], tz.m.NewtonCG(), tz.m.StrongWolfe())
        >>> def closure(backward=True):
        ...     loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        ...     if backward:
        ...         opt.zero_grad()
        ...         loss.backward()
        ...     return loss
        >>> for _ in range(100):
        ...     _ = opt.step(closure)
        >>> x.detach()
        tensor([1., 1.], dtype=torch.float64)

    References:
        Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Algorithm 7.1.

        Eisenstat, S. C., & Walker, H. F. (1996). Choosing the forcing terms in an inexact
        Newton method. SIAM Journal on Scientific Computing, 17(1), 16-32.
    """

    #: differentiates the loss of ``closure(False)`` again (``tz.minimize`` keeps its graph)
    USES_LOSS_GRAPH = True

    def __init__(
        self,
        maxiter: int | None = None,
        tol: float = 1e-4,
        reg: float = 0.0,
        hvp_method: str = "autograd",
        h: float = 1e-3,
        warm_start: bool = False,
        forcing: str = "eisenstat-walker",
    ):
        super().__init__(dict(maxiter=maxiter, tol=tol, reg=reg, hvp_method=hvp_method, h=h, warm_start=warm_start, forcing=forcing))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "NewtonCG"
        if s.get("maxiter") is not None:
            check_int("maxiter", s["maxiter"], owner=o, min=1, max=MAX_ITERATIONS)
        if "tol" in s:
            check_number("tol", s["tol"], owner=o, min=0.0)
        if "reg" in s:
            check_number("reg", s["reg"], owner=o, min=0.0)
        if "h" in s:
            check_number("h", s["h"], owner=o, min=0.0, min_inclusive=False)
        if "hvp_method" in s:
            check_choice("hvp_method", s["hvp_method"], HVP_METHODS, owner=o)
        if "forcing" in s:
            check_choice("forcing", s["forcing"], FORCING, owner=o)
        if "warm_start" in s:
            check_bool("warm_start", s["warm_start"], owner=o)

    def step(self, var: Var) -> Var:
        if not var.params:
            return var
        s = self.settings_list(var.params).coupled(self.defaults, "NewtonCG")
        check_params("NewtonCG", var.params)
        params = var.params
        gs = self.global_state
        order = layout(self, params)
        if gs.get("layout") != order:  # other parameters than last step: what was kept doesn't apply
            gs.clear()
            gs["layout"] = order
        update = var.get_update()
        dtype = working_dtype(update)
        b = flatten(update, dtype)
        count = [0]
        matvec = hvp_operator("NewtonCG", var, s["hvp_method"], float(s["h"]), float(s["reg"]), dtype, count)
        g_norm = float(b.norm())
        eta = self._forcing(s, g_norm)
        x0 = gs.get("x") if s["warm_start"] and isinstance(gs.get("x"), Tensor) and gs["x"].shape == b.shape else None
        res = cg_solve(matvec, b, rtol=eta, maxiter=s["maxiter"], x0=x0)
        x = res.x if bool(torch.isfinite(res.x).all()) else b  # a non-finite product: the update itself
        gs.update(g_norm=g_norm, eta=eta)
        if s["warm_start"]:
            gs["x"] = x.clone()
        unflatten_(x, update)
        self.record_stats(
            hvps=torch.tensor(float(count[0])), eta=torch.tensor(eta, dtype=torch.float64), negative_curvature=torch.tensor(float(res.negative_curvature))
        )
        return var

    def _forcing(self, s: Mapping[str, Any], g_norm: float) -> float:
        kind = s["forcing"]
        if kind == "fixed":
            return float(s["tol"])
        if kind == "sqrt":
            return min(0.5, math.sqrt(g_norm))
        gs = self.global_state
        return eisenstat_walker(g_norm, gs.get("g_norm"), gs.get("eta"))
