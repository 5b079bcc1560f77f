"""``Newton``: Newton's method with the exact Hessian by autograd, on all parameters flattened together."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.module import Module
from ...core.var import Var
from ...functional.hessian import all_reduce_mean_, fd_hvp, hessian
from ...functional.newton import newton_solve
from ...utils.validation import check_bool, check_choice, check_number
from ..quasi_newton.flat import flatten, split_like, unflatten_, working_dtype
from .graph import check_params, gradients_with_graph

__all__ = ["Newton", "MAX_NEWTON"]

#: The most elements ``Newton`` works on: its Hessian has this many squared entries.
MAX_NEWTON = 10_000

HESSIAN_METHODS = ("autograd", "central")


class Newton(Module):
    r"""Newton's method: the update $u$ (the gradient, or what earlier modules made of it)
    becomes the solution $x$ of

    $$
    (H + \lambda I)\, x = u
    $$

    with $H$ the exact Hessian of the loss at the parameters, all of them flattened into one
    vector (curvature couples them), and $\lambda$ = ``damping`` (Levenberg's damping: a step
    between Newton's and the gradient's). Put a line search after it
    (``tz.m.Backtracking()``); on a quadratic the full step lands on the minimizer.

    The system is solved (:func:`torchzero.functional.newton.newton_solve`):

    - with ``eigval_fn``: from the eigen-decomposition $H + \lambda I = Q \Lambda Q^T$ as
      $Q\, f(\Lambda)^{-1} Q^T u$ (``eigval_fn=torch.abs`` is saddle-free Newton);
    - otherwise by Cholesky; when $H + \lambda I$ is not positive definite, with its eigenvalues
      modified to $\max(|\lambda_i|, 10^{-3}\max_j|\lambda_j|)$ (negative curvature flipped,
      near-zero curvature floored; Nocedal & Wright, Section 3.4), which keeps $x$ a descent
      direction; when that fails (non-finite values), by least squares.

    ``opt.stats()["Newton/solver"]`` says which: 0 Cholesky, 1 modified eigenvalues, 2 least
    squares, 3 ``eigval_fn``, 4 none (the update was kept: its Hessian was not finite);
    ``"Newton/hessians"`` is 1 (a Hessian formed).

    Each step evaluates the loss once more (``closure(False)``, for a differentiable gradient)
    and makes $n$ Hessian-vector products, in one batched backward pass with ``vectorize``, or
    $n$ finite differences of gradients (``hessian_method="central"``, $2n$ gradient
    evaluations) for closures whose graph can't be differentiated twice. For more than
    :data:`MAX_NEWTON` elements use :class:`~torchzero.modules.second_order.NewtonCG`. Under
    data parallelism the Hessian is averaged over the ranks.

    Args:
        damping: $\lambda \ge 0$ (default: ``0``).
        eigval_fn: a function of the eigenvalues (a tensor) returning the ones to invert, or
            ``None`` (default: ``None``).
        hessian_method: ``"autograd"`` or ``"central"`` (default: ``"autograd"``).
        vectorize: batch the Hessian's rows into one backward pass (default: ``True``).
        h: the finite-difference step of ``"central"`` (default: ``1e-3``).

    Example:
        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))
        >>> opt = tz.Modular([x], tz.m.Newton(), tz.m.Backtracking())
        >>> def closure(backward=True):
        ...     loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        ...     if backward:
        ...         opt.zero_grad()
        ...         loss.backward()
        ...     return loss
        >>> for _ in range(30):
        ...     _ = opt.step(closure)
        >>> x.detach()
        tensor([1., 1.], dtype=torch.float64)

    References:
        Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Sections 3.3-3.4.

        Dauphin, Y. et al. (2014). Identifying and attacking the saddle point problem in
        high-dimensional non-convex optimization. NeurIPS (saddle-free Newton, $|\Lambda|$).
    """

    #: differentiates the loss of ``closure(False)`` again (``tz.minimize`` keeps its graph)
    USES_LOSS_GRAPH = True

    def __init__(
        self,
        damping: float = 0.0,
        eigval_fn: Callable[[Tensor], Tensor] | None = None,
        hessian_method: str = "autograd",
        vectorize: bool = True,
        h: float = 1e-3,
    ):
        super().__init__(dict(damping=damping, eigval_fn=eigval_fn, hessian_method=hessian_method, vectorize=vectorize, h=h))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "Newton"
        if "damping" in s:
            check_number("damping", s["damping"], owner=o, min=0.0)
        if "h" in s:
            check_number("h", s["h"], owner=o, min=0.0, min_inclusive=False)
        if "hessian_method" in s:
            check_choice("hessian_method", s["hessian_method"], HESSIAN_METHODS, owner=o)
        if "vectorize" in s:
            check_bool("vectorize", s["vectorize"], owner=o)
        if s.get("eigval_fn") is not None and not callable(s["eigval_fn"]):
            raise TypeError(f"Newton: eigval_fn must be a function of the eigenvalues or None, got {s['eigval_fn']!r:.80}")

    def step(self, var: Var) -> Var:
        if not var.params:
            return var
        s = self.settings_list(var.params).coupled(self.defaults, "Newton")
        check_params("Newton", var.params)
        n = sum(p.numel() for p in var.params)
        if n > MAX_NEWTON:
            raise ValueError(
                f"Newton forms the n x n Hessian of all parameters, and these have n = {n:,} elements (at most "
                f"{MAX_NEWTON:,}); use tz.m.NewtonCG(), which needs only Hessian-vector products"
            )
        update = var.get_update()
        dtype = working_dtype(update)
        h = self._hessian(var, s).to(dtype)
        all_reduce_mean_([h])
        x, solver = newton_solve(h, flatten(update, dtype), s["damping"], s["eigval_fn"])
        if x is not None:
            unflatten_(x, update)
        self.record_stats(solver=torch.tensor(float(solver)), hessians=torch.tensor(1.0))
        return var

    def curvature(self, var: Var, dtype: torch.dtype) -> Tensor:
        """The exact Hessian at ``var``'s parameters (averaged over ranks), as a trust region's
        ``hess_module`` asks for it."""
        s = self.settings_list(var.params).coupled(self.defaults, "Newton")
        check_params("Newton", var.params)
        h = self._hessian(var, s).to(dtype)
        all_reduce_mean_([h])
        self.record_stats(hessians=torch.tensor(1.0))
        return 0.5 * (h + h.T)

    def _hessian(self, var: Var, s: Mapping[str, Any]) -> Tensor:
        if s["hessian_method"] == "autograd":
            _, grads = gradients_with_graph("Newton", var)
            return hessian(grads, var.params, vectorize=s["vectorize"])
        return self._fd_hessian(var, float(s["h"]))

    @staticmethod
    def _fd_hessian(var: Var, h: float) -> Tensor:
        """Column $j$: central differences of the gradient along $e_j$ (2n gradient
        evaluations), then symmetrized."""
        params = var.params
        closure = var.closure
        if closure is None:
            raise RuntimeError("Newton(hessian_method='central') evaluates gradients: pass a closure to opt.step(closure)")

        def grad_at() -> list[Tensor]:
            with torch.enable_grad():
                closure(True)
            return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]

        n = sum(p.numel() for p in params)
        dtype = working_dtype(params)
        cols = []
        for j in range(n):
            e = torch.zeros(n, dtype=dtype, device=params[0].device)
            e[j] = 1.0
            cols.append(flatten(fd_hvp(grad_at, params, split_like(e, params), h=h), dtype))
        m = torch.stack(cols, 1) if cols else torch.zeros(0, 0, dtype=dtype)
        return 0.5 * (m + m.T)
