"""``NewtonCGSteihaug``: trust-region Newton-CG (Steihaug-Toint), scipy's ``trust-ncg``."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.var import Var
from ...functional.krylov import steihaug_cg
from ...utils.validation import MAX_ITERATIONS, check_choice, check_int, check_number
from ..second_order.graph import check_params, hvp_operator
from ..second_order.newton_cg import HVP_METHODS
from .trust_region import TrustRegion

__all__ = ["NewtonCGSteihaug"]


class NewtonCGSteihaug(TrustRegion):
    r"""Trust-region Newton-CG: the model's $B$ is the exact Hessian, used through products
    $H v$, and the subproblem is solved by Steihaug-Toint CG
    (:func:`~torchzero.functional.krylov.steihaug_cg`, Nocedal & Wright Algorithm 7.2): CG on
    $H d = u$ from 0, stopped at the boundary, on negative curvature (at the boundary point of
    lower model value), or at the relative residual $\min(0.5, \sqrt{\lVert u\rVert})$. The radius
    follows :class:`~torchzero.modules.trust_region.TrustRegion`. With the defaults, its iterates
    are those of ``scipy.optimize.minimize(method="trust-ncg")``.

    The products come from ``hvp_method`` as in :class:`~torchzero.modules.second_order.NewtonCG`:
    ``"autograd"`` evaluates the loss once more per step for a differentiable gradient, the
    finite differences ``"central"``/``"forward"`` need only gradients. Use it alone (it
    chooses the step length itself). ``opt.stats()["NewtonCGSteihaug/hvps"]`` counts the
    products of the step.

    Args:
        maxiter: CG iterations per subproblem, ``None`` for the number of elements (default: ``None``).
        eta: the least $\rho$ that takes the step, in ``[0, 0.25)`` (default: ``0.15``).
        nplus: the radius's growth factor, ``>= 1`` (default: ``2``).
        nminus: the radius's shrink factor, in ``(0, 1)`` (default: ``0.25``).
        init: the first radius (default: ``1``).
        max_radius: the largest radius (default: ``1000``).
        max_attempts: subproblems solved per step at most (default: ``10``).
        hvp_method: ``"autograd"``, ``"central"`` or ``"forward"`` (default: ``"autograd"``).
        h: the finite-difference step (default: ``1e-3``).

    Example:
        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))
        >>> opt = tz.Modular([x], tz.m.NewtonCGSteihaug())
        >>> def closure(backward=True):
        ...     loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        ...     if backward:
        ...         opt.zero_grad()
        ...         loss.backward()
        ...     return loss
        >>> for _ in range(40):
        ...     _ = opt.step(closure)
        >>> x.detach()
        tensor([1., 1.], dtype=torch.float64)

    References:
        Steihaug, T. (1983). The conjugate gradient method and trust regions in large scale
        optimization. SIAM Journal on Numerical Analysis, 20(3), 626-637.

        Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Algorithms 4.1
        and 7.2.
    """

    #: differentiates the loss of ``closure(False)`` again (``tz.minimize`` keeps its graph)
    USES_LOSS_GRAPH = True

    def __init__(
        self,
        maxiter: int | None = None,
        eta: float = 0.15,
        nplus: float = 2.0,
        nminus: float = 0.25,
        init: float = 1.0,
        max_radius: float = 1000.0,
        max_attempts: int = 10,
        hvp_method: str = "autograd",
        h: float = 1e-3,
    ):
        super().__init__(
            dict(maxiter=maxiter, eta=eta, nplus=nplus, nminus=nminus, init=init, max_radius=max_radius, max_attempts=max_attempts,
                 hvp_method=hvp_method, h=h)
        )

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        super().validate_settings(s)
        o = "NewtonCGSteihaug"
        if s.get("maxiter") is not None:
            check_int("maxiter", s["maxiter"], owner=o, min=1, max=MAX_ITERATIONS)
        if "hvp_method" in s:
            check_choice("hvp_method", s["hvp_method"], HVP_METHODS, owner=o)
        if "h" in s:
            check_number("h", s["h"], owner=o, min=0.0, min_inclusive=False)

    def step(self, var: Var) -> Var:
        check_params("NewtonCGSteihaug", var.params)
        self._count = [0]
        var = super().step(var)
        self.record_stats(**self._last_stats, hvps=torch.tensor(float(self._count[0])))
        return var

    def model(self, var: Var, settings: Mapping[str, Any], dtype: torch.dtype) -> Callable[[Tensor], Tensor]:
        return hvp_operator("NewtonCGSteihaug", var, settings["hvp_method"], float(settings["h"]), 0.0, dtype, self._count)

    def subproblem(
        self, g: Tensor, matvec: Callable[[Tensor], Tensor], radius: float, settings: Mapping[str, Any]
    ) -> tuple[Tensor, bool, float]:
        g_norm = float(g.norm())
        res = steihaug_cg(matvec, g, radius, rtol=min(0.5, math.sqrt(g_norm)), maxiter=settings["maxiter"])
        return res.x, res.hits_boundary, -res.model_change
