"""Trust regions whose model matrix is dense: the exact Hessian, or a quasi-Newton module's
approximation (``hess_module``)."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.var import Var
from ...functional.krylov import steihaug_cg
from ...functional.trust_region import cubic_step, dogleg_step, exact_step
from ..second_order.newton import MAX_NEWTON, Newton
from ...utils.validation import check_bool
from ..quasi_newton.flat import flatten
from .trust_region import Trial, TrustRegion

__all__ = ["DenseTrustRegion", "Dogleg", "LevenbergMarquardt", "TrustCG", "CubicRegularization"]

class DenseTrustRegion(TrustRegion):
    r"""A trust region with a dense $B$ from ``hess_module`` (by default ``tz.m.Newton()``, the
    exact Hessian; a dense quasi-Newton module gives $B = H^{-1}$). During a step $B$ is
    :attr:`model_matrix`; subclasses implement :meth:`subproblem` with it. The other arguments
    are those of :class:`~torchzero.modules.trust_region.Dogleg`.

    Example:
        A trust region that always takes the Cauchy point (the steepest-descent step that
        minimizes the model within the radius):

        >>> import torch, torchzero as tz
        >>> from torchzero.functional.trust_region import cauchy_point, predicted_reduction
        >>> class CauchyPoint(tz.m.DenseTrustRegion):
        ...     def subproblem(self, g, matvec, radius, settings):
        ...         d = cauchy_point(g, self.model_matrix, radius)
        ...         return d, bool(abs(float(d.norm()) - radius) < 1e-12 * radius), predicted_reduction(g, self.model_matrix, d)
        >>> x = torch.nn.Parameter(torch.tensor([2.0, 1.0], dtype=torch.float64))
        >>> opt = tz.Modular([x], CauchyPoint())
        >>> def closure(backward=True):
        ...     loss = x[0] ** 2 + 10 * x[1] ** 2
        ...     if backward:
        ...         opt.zero_grad()
        ...         loss.backward()
        ...     return loss
        >>> for _ in range(200):
        ...     _ = opt.step(closure)
        >>> bool(closure(False) < 1e-12)
        True
    """

    model_matrix: Tensor | None = None

    def __init__(
        self,
        hess_module: Any = None,
        eta: float = 0.15,
        nplus: float = 2.0,
        nminus: float = 0.25,
        init: float = 1.0,
        max_radius: float = 1000.0,
        max_attempts: int = 10,
        **settings: Any,
    ):
        super().__init__(dict(eta=eta, nplus=nplus, nminus=nminus, init=init, max_radius=max_radius, max_attempts=max_attempts, **settings))
        hess_module = Newton() if hess_module is None else hess_module
        if not callable(getattr(hess_module, "curvature", None)):
            raise TypeError(
                f"{type(self).__name__}: hess_module must give a model matrix (tz.m.Newton(), or a dense quasi-Newton "
                f"module such as tz.m.BFGS() or tz.m.SR1()), got {hess_module!r:.80}"
            )
        self.set_child("hess_module", hess_module)

    def model(self, var: Var, settings: Mapping[str, Any], dtype: torch.dtype) -> Callable[[Tensor], Tensor]:
        n = sum(p.numel() for p in var.params)
        if n > MAX_NEWTON:
            raise ValueError(
                f"{type(self).__name__} keeps a dense n x n model matrix, and these parameters have n = {n:,} elements (at "
                f"most {MAX_NEWTON:,}); use tz.m.NewtonCGSteihaug(), which needs only Hessian-vector products"
            )
        b = self.children["hess_module"].curvature(var, dtype)
        self.model_matrix = b
        return lambda v: b @ v

    def step(self, var: Var) -> Var:
        try:
            return super().step(var)
        finally:
            self.model_matrix = None  # not kept between steps (nor saved): it is made again each step


class Dogleg(DenseTrustRegion):
    r"""Trust region with the dogleg step
    (:func:`~torchzero.functional.trust_region.dogleg_step`, Nocedal & Wright Section 4.1): the
    Newton step $B^{-1}u$ inside the region, else the path from the steepest-descent minimizer
    to it, cut at the boundary; the Cauchy point when $B$ is not positive definite (scipy's
    ``dogleg`` stops with an error there). With the exact Hessian its iterates are those of
    ``scipy.optimize.minimize(method="dogleg")`` where scipy's runs.

    The model matrix $B$ comes from ``hess_module``: by default ``tz.m.Newton()`` (the exact
    Hessian by autograd); a dense quasi-Newton module (``tz.m.BFGS()``, ``tz.m.SR1()``, ...)
    gives $B = H^{-1}$ of its approximation $H$, updated each step (torchzero 0.3.x's
    ``Dogleg(BFGS())``). At most 10,000 elements. The radius follows
    :class:`~torchzero.modules.trust_region.TrustRegion`; use it without a line search.

    Args:
        hess_module: the module that gives $B$ (default: ``None``, ``Newton()``).
        eta: the least $\rho$ that takes the step, in ``[0, 0.25)`` (default: ``0.15``).
        nplus: the radius's growth factor, ``>= 1`` (default: ``2``).
        nminus: the radius's shrink factor, in ``(0, 1)`` (default: ``0.25``).
        init: the first radius (default: ``1``).
        max_radius: the largest radius (default: ``1000``).
        max_attempts: subproblems solved per step at most (default: ``10``).

    Example:
        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))
        >>> opt = tz.Modular([x], tz.m.Dogleg())
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
        Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Section 4.1.
    """

    def subproblem(self, g: Tensor, matvec: Callable[[Tensor], Tensor], radius: float, settings: Mapping[str, Any]) -> tuple[Tensor, bool, float]:
        return dogleg_step(g, self.model_matrix, radius)


class LevenbergMarquardt(DenseTrustRegion):
    r"""Levenberg-Marquardt as a trust region (Moré, 1978): the step is
    $(B + \lambda I)^{-1} u$ with the $\lambda \ge 0$ that puts it on the boundary when the
    Newton step is outside (or $B$ not positive definite), the exact solution of the
    subproblem (:func:`~torchzero.functional.trust_region.exact_step`, Nocedal & Wright
    Algorithm 4.3 with the hard case), the step of scipy's ``trust-exact``. With
    ``hess_module=tz.m.GaussNewton()`` it is the classical least-squares method.
    ``opt.stats()["LevenbergMarquardt/radius"]`` is the radius.

    With ``more=True`` it is Moré's (1978) algorithm as MINPACK's ``lmder`` implements it (scipy's
    ``least_squares(method="lm")`` with ``hess_module=tz.m.GaussNewton()``): the region is
    $\lVert D d\rVert \le \Delta$ with $D_i = \max_k \sqrt{(B_k)_{ii}/2}$ (the norms of
    $J$'s columns), $\Delta_0 = 100 \lVert D x_0\rVert$, at most the first step's length; a
    step is taken when $\rho \ge 10^{-4}$; after $\rho \le 0.25$ the radius becomes
    $t \min(\Delta, 10\lVert Dd\rVert)$ with $t \in [0.1, 0.5]$ from a parabola through the
    losses, and after $\rho \ge 0.75$ (or a step inside the region) $2\lVert Dd\rVert$.
    ``eta``, ``nplus``, ``nminus``, ``init`` and ``max_radius`` are then not used.

    The model matrix $B$ comes from ``hess_module``: by default ``tz.m.Newton()`` (the exact
    Hessian by autograd); a dense quasi-Newton module (``tz.m.BFGS()``, ``tz.m.SR1()``, ...)
    gives $B = H^{-1}$ of its approximation $H$, updated each step (torchzero 0.3.x's
    ``Dogleg(BFGS())``). At most 10,000 elements. The radius follows
    :class:`~torchzero.modules.trust_region.TrustRegion`; use it without a line search.

    Args:
        hess_module: the module that gives $B$ (default: ``None``, ``Newton()``).
        eta: the least $\rho$ that takes the step, in ``[0, 0.25)`` (default: ``0.15``).
        nplus: the radius's growth factor, ``>= 1`` (default: ``2``).
        nminus: the radius's shrink factor, in ``(0, 1)`` (default: ``0.25``).
        init: the first radius (default: ``1``).
        max_radius: the largest radius (default: ``1000``).
        max_attempts: subproblems solved per step at most (default: ``10``).
        more: Moré's scaling and radius rules (MINPACK's), see above (default: ``False``).

    Example:
        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))
        >>> opt = tz.Modular([x], tz.m.LevenbergMarquardt())
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
        Moré, J. J. (1978). The Levenberg-Marquardt algorithm: implementation and theory.
        Lecture Notes in Mathematics 630, 105-116.

        Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Section 4.3.
    """

    def __init__(
        self,
        hess_module: Any = None,
        eta: float = 0.15,
        nplus: float = 2.0,
        nminus: float = 0.25,
        init: float = 1.0,
        max_radius: float = 1000.0,
        max_attempts: int = 10,
        more: bool = False,
    ):
        super().__init__(hess_module, eta, nplus, nminus, init, max_radius, max_attempts, more=more)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        super().validate_settings(s)
        if "more" in s:
            check_bool("more", s["more"], owner=type(self).__name__)

    def model(self, var: Var, settings: Mapping[str, Any], dtype: torch.dtype) -> Callable[[Tensor], Tensor]:
        matvec = super().model(var, settings, dtype)
        if settings["more"]:
            self._scale(var, dtype)
        return matvec

    def _scale(self, var: Var, dtype: torch.dtype) -> None:
        r"""Moré's $D$: $D_i = \max(D_i, \sqrt{B_{ii}/2})$ over the steps (for $B = 2J^TJ$ the
        norms of $J$'s columns), 1 where that is 0; at the first step $\Delta_0 = 100 \lVert D x_0\rVert$
        (100 if that is 0)."""
        gs = self.global_state
        b = self.model_matrix
        assert b is not None
        column = torch.sqrt(torch.diagonal(b).clamp(min=0) / 2)
        scale = gs.get("scale")
        if not isinstance(scale, Tensor) or scale.shape != column.shape:
            scale = None
        scale = column if scale is None else torch.maximum(scale.to(column), column)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        if "scale" not in gs:
            x_norm = float((scale * flatten([p.detach() for p in var.params], dtype)).norm())
            gs["radius"] = 100.0 * x_norm if x_norm > 0 else 100.0
            gs["first"] = True
        gs["scale"] = scale

    def subproblem(self, g: Tensor, matvec: Callable[[Tensor], Tensor], radius: float, settings: Mapping[str, Any]) -> tuple[Tensor, bool, float]:
        b = self.model_matrix
        assert b is not None
        if not settings["more"]:
            return exact_step(g, b, radius)
        scale = self.global_state["scale"]  # the region ||D d|| <= radius: q = D d in the unit region
        q, on_boundary, predicted = exact_step(g / scale, b / (scale[:, None] * scale[None, :]), radius)
        return q / scale, on_boundary, predicted

    def next_radius(self, radius: float, rho: float, d: Tensor, on_boundary: bool, settings: Mapping[str, Any], trial: Trial) -> float:
        if not settings["more"]:
            return super().next_radius(radius, rho, d, on_boundary, settings, trial)
        gs = self.global_state
        pnorm = float((gs["scale"] * d).norm())
        if gs.pop("first", False):  # MINPACK: the first bound is at most the first step's length
            radius = min(radius, pnorm)
        if rho <= 0.25:
            f0, f1 = trial.f0, trial.f1
            grown = not (math.isfinite(f1) and f1 < 100.0 * f0)  # MINPACK's 0.1 * ||r1|| >= ||r||
            if not grown and f1 <= f0:
                temp = 0.5
            else:  # the minimizer of the parabola through f0, its slope -g.d and f1
                gd = float(trial.g @ d)
                temp = 0.5 * gd / (gd + f1 - f0) if math.isfinite(f1) and gd + f1 - f0 > 0 else 0.1
            if grown or temp < 0.1:
                temp = 0.1
            return temp * min(radius, pnorm / 0.1)
        if not on_boundary or rho >= 0.75:
            return pnorm / 0.5
        return radius

    def least_rho(self, settings: Mapping[str, Any]) -> float:
        return 1e-4 if settings["more"] else super().least_rho(settings)


class TrustCG(DenseTrustRegion):
    r"""Trust region with Steihaug-Toint CG on the model matrix
    (:func:`~torchzero.functional.krylov.steihaug_cg`), to the relative residual
    $\min(0.5, \sqrt{\lVert u\rVert})$: with the exact Hessian, the step of
    :class:`~torchzero.modules.trust_region.NewtonCGSteihaug`; with a quasi-Newton
    ``hess_module`` (``tz.m.SR1()``, whose $B$ may be indefinite) a quasi-Newton trust region.

    The model matrix $B$ comes from ``hess_module``: by default ``tz.m.Newton()`` (the exact
    Hessian by autograd); a dense quasi-Newton module (``tz.m.BFGS()``, ``tz.m.SR1()``, ...)
    gives $B = H^{-1}$ of its approximation $H$, updated each step (torchzero 0.3.x's
    ``Dogleg(BFGS())``). At most 10,000 elements. The radius follows
    :class:`~torchzero.modules.trust_region.TrustRegion`; use it without a line search.

    Args:
        hess_module: the module that gives $B$ (default: ``None``, ``Newton()``).
        eta: the least $\rho$ that takes the step, in ``[0, 0.25)`` (default: ``0.15``).
        nplus: the radius's growth factor, ``>= 1`` (default: ``2``).
        nminus: the radius's shrink factor, in ``(0, 1)`` (default: ``0.25``).
        init: the first radius (default: ``1``).
        max_radius: the largest radius (default: ``1000``).
        max_attempts: subproblems solved per step at most (default: ``10``).

    Example:
        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))
        >>> opt = tz.Modular([x], tz.m.TrustCG(tz.m.SR1()))
        >>> def closure(backward=True):
        ...     loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        ...     if backward:
        ...         opt.zero_grad()
        ...         loss.backward()
        ...     return loss
        >>> for _ in range(100):
        ...     _ = opt.step(closure)
        >>> bool(closure(False) < 1e-10)
        True

    References:
        Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Algorithm 7.2
        and Section 6.2 (SR1 with a trust region).
    """

    def subproblem(self, g: Tensor, matvec: Callable[[Tensor], Tensor], radius: float, settings: Mapping[str, Any]) -> tuple[Tensor, bool, float]:
        res = steihaug_cg(matvec, g, radius, rtol=min(0.5, math.sqrt(float(g.norm()))))
        return res.x, res.hits_boundary, -res.model_change


class CubicRegularization(DenseTrustRegion):
    r"""Adaptive cubic regularization (ARC): the step is the global minimizer of

    $$
    m(d) = f - u\cdot d + \tfrac12 d^T B d + \tfrac{\sigma}{3}\lVert d\rVert^3
    $$

    (:func:`~torchzero.functional.trust_region.cubic_step`), checked as a trust region's step:
    $\rho$ is the actual over the predicted reduction $m(0) - m(d)$. The regularization plays
    the radius's part inverted, $\sigma = 1/\Delta$: the rules of
    :class:`~torchzero.modules.trust_region.TrustRegion` apply to $\Delta$ with every step
    counted as on the boundary, so $\sigma$ doubles after a poor step ($\rho < 0.25$) and halves
    after a very good one ($\rho > 0.75$), and never goes below $1/$``max_radius``.
    ``opt.stats()["CubicRegularization/radius"]`` is $1/\sigma$.

    The model matrix $B$ comes from ``hess_module``: by default ``tz.m.Newton()`` (the exact
    Hessian by autograd), or a dense quasi-Newton module's $H^{-1}$. At most 10,000 elements.
    Use it without a line search.

    Args:
        hess_module: the module that gives $B$ (default: ``None``, ``Newton()``).
        eta: the least $\rho$ that takes the step, in ``[0, 0.25)`` (default: ``0.1``).
        nplus: the factor $\sigma$ is divided by after a very good step, ``>= 1`` (default: ``2``).
        nminus: after a poor step $\sigma$ becomes $\sigma/$``nminus``, in ``(0, 1)`` (default: ``0.5``).
        init: $1/\sigma$ at the start (default: ``1``).
        max_radius: the largest $1/\sigma$ (default: ``1000``).
        max_attempts: subproblems solved per step at most (default: ``10``).

    Example:
        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))
        >>> opt = tz.Modular([x], tz.m.CubicRegularization())
        >>> def closure(backward=True):
        ...     loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        ...     if backward:
        ...         opt.zero_grad()
        ...         loss.backward()
        ...     return loss
        >>> for _ in range(60):
        ...     _ = opt.step(closure)
        >>> x.detach()
        tensor([1., 1.], dtype=torch.float64)

    References:
        Cartis, C., Gould, N. I. M., & Toint, P. L. (2011). Adaptive cubic regularisation
        methods for unconstrained optimization. Part I. Mathematical Programming, 127, 245-295.

        Nesterov, Y., & Polyak, B. T. (2006). Cubic regularization of Newton method and its
        global performance. Mathematical Programming, 108, 177-205.
    """

    def __init__(
        self,
        hess_module: Any = None,
        eta: float = 0.1,
        nplus: float = 2.0,
        nminus: float = 0.5,
        init: float = 1.0,
        max_radius: float = 1000.0,
        max_attempts: int = 10,
    ):
        super().__init__(hess_module, eta, nplus, nminus, init, max_radius, max_attempts)

    def subproblem(self, g: Tensor, matvec: Callable[[Tensor], Tensor], radius: float, settings: Mapping[str, Any]) -> tuple[Tensor, bool, float]:
        d, reduction = cubic_step(g, self.model_matrix, 1.0 / radius)
        return d, True, reduction
