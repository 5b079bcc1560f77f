r"""Conjugate gradient for the Newton system $H x = b$, with a matrix-vector product only
(stateless, on flat vectors).

References:
    Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Algorithm 5.2 (CG)
    and Algorithm 7.1 (line-search Newton-CG: stopping on negative curvature).

    Eisenstat, S. C., & Walker, H. F. (1996). Choosing the forcing terms in an inexact Newton
    method. SIAM Journal on Scientific Computing, 17(1), 16-32.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

__all__ = ["CGResult", "SteihaugResult", "boundary_steps", "cg_solve", "eisenstat_walker", "steihaug_cg"]


@dataclass
class CGResult:
    """What :func:`cg_solve` found.

    Attributes:
        x: the approximate solution.
        iterations: matrix-vector products made.
        negative_curvature: a direction $p$ with $p^T H p \\le 0$ stopped it.
        residual: $\\lVert b - H x\\rVert_2$ (as the recursion tracks it).
    """

    x: Tensor
    iterations: int
    negative_curvature: bool
    residual: float


def cg_solve(
    matvec: Callable[[Tensor], Tensor],
    b: Tensor,
    rtol: float = 1e-4,
    maxiter: int | None = None,
    x0: Tensor | None = None,
) -> CGResult:
    r"""Solves $H x = b$ by conjugate gradient until $\lVert b - Hx\rVert \le$ ``rtol`` $\lVert b\rVert$.

    When a search direction $p$ has $p^T H p \le 0$ ($H$ is not positive definite along it), it
    stops and returns the iterate so far; at the first iteration, with no iterate yet, ``b``
    itself (for a Newton system $H x = \nabla f$, the gradient: steepest descent). This is
    Nocedal & Wright's Algorithm 7.1, written for $H x = b$ instead of $H p = -\nabla f$.

    Args:
        matvec: $v \mapsto H v$ (flat vectors).
        b: the right-hand side.
        rtol: relative residual tolerance (default: ``1e-4``).
        maxiter: products at most (default: ``None``, the size of ``b``).
        x0: a starting point (warm start) instead of 0.

    Example:
        >>> import torch
        >>> H = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
        >>> res = cg_solve(lambda v: H @ v, torch.tensor([1.0, 2.0], dtype=torch.float64), rtol=1e-12)
        >>> res.x, res.iterations
        (tensor([0.0909, 0.6364], dtype=torch.float64), 2)
    """
    n = b.numel()
    maxiter = n if maxiter is None else maxiter
    b_norm = float(b.norm())
    if b_norm == 0 or not math.isfinite(b_norm):
        return CGResult(b.clone() if x0 is None else x0.clone(), 0, False, b_norm)
    tol = rtol * b_norm
    if x0 is None:
        x = b.new_zeros(b.shape)
        r = b.clone()
    else:
        x = x0.clone()
        r = b - matvec(x)
    p = r.clone()
    rr = float(r.dot(r))
    for it in range(1, maxiter + 1):
        hp = matvec(p)
        curvature = float(p.dot(hp))
        if not curvature > 0:  # also NaN: nothing safe to divide by
            return CGResult(b.clone() if it == 1 and x0 is None else x, it, True, math.sqrt(rr))
        alpha = rr / curvature
        x.add_(p, alpha=alpha)
        r.add_(hp, alpha=-alpha)
        rr_new = float(r.dot(r))
        if math.sqrt(rr_new) <= tol:
            return CGResult(x, it, False, math.sqrt(rr_new))
        p.mul_(rr_new / rr).add_(r)
        rr = rr_new
    return CGResult(x, maxiter, False, math.sqrt(rr))


def eisenstat_walker(g_norm: float, g_norm_prev: float | None, eta_prev: float | None, gamma: float = 0.9, alpha: float = 2.0, eta_max: float = 0.9) -> float:
    r"""The forcing term $\eta_k$ (the relative residual the inner solve must reach) of
    Eisenstat and Walker's choice 2, with their safeguard:

    $$
    \eta_k = \gamma \Big(\frac{\lVert g_k\rVert}{\lVert g_{k-1}\rVert}\Big)^{\alpha}, \qquad
    \eta_k \leftarrow \max(\eta_k, \gamma\,\eta_{k-1}^{\alpha}) \text{ if } \gamma\,\eta_{k-1}^{\alpha} > 0.1,
    \qquad \eta_k \leftarrow \min(\eta_k, \eta_{\max})
    $$

    and $\eta_0 = \min(0.5, \eta_{\max})$ (no previous gradient). Loose while the gradient falls
    slowly, tight as it falls fast: superlinear convergence without oversolving far from the
    minimum.

    Example:
        >>> eisenstat_walker(1e-2, 1e-1, 0.5)
        0.225
    """
    if g_norm_prev is None or eta_prev is None or not g_norm_prev > 0:
        return min(0.5, eta_max)
    eta = gamma * (g_norm / g_norm_prev) ** alpha
    floor = gamma * eta_prev**alpha
    if floor > 0.1:
        eta = max(eta, floor)
    return min(eta, eta_max)


def boundary_steps(z: Tensor, p: Tensor, radius: float) -> tuple[float, float]:
    r"""The two $t$ with $\lVert z + t p\rVert = \Delta$, $\Delta$ = ``radius`` (``z`` inside the ball), smaller first,
    by the form of the quadratic formula that doesn't cancel (Golub & Van Loan, Section 3.5)."""
    a, b, c = float(p.dot(p)), 2 * float(z.dot(p)), float(z.dot(z)) - radius**2
    root = math.sqrt(max(b * b - 4 * a * c, 0.0))
    aux = b + math.copysign(root, b)
    if aux == 0:  # z = 0 and b = 0: symmetric roots
        t = math.sqrt(-c / a) if a > 0 else 0.0
        return -t, t
    t1, t2 = -aux / (2 * a), -2 * c / aux
    return (t1, t2) if t1 <= t2 else (t2, t1)


@dataclass
class SteihaugResult:
    """What :func:`steihaug_cg` found.

    Attributes:
        x: the step.
        iterations: matrix-vector products made.
        hits_boundary: the step is on the trust region's boundary.
        negative_curvature: a direction with $p^T H p \\le 0$ stopped it.
        model_change: $m(x) - m(0)$ (negative: the decrease the model predicts), from the
            recursion, without another product.
    """

    x: Tensor
    iterations: int
    hits_boundary: bool
    negative_curvature: bool
    model_change: float


def steihaug_cg(matvec: Callable[[Tensor], Tensor], b: Tensor, radius: float, rtol: float, maxiter: int | None = None) -> SteihaugResult:
    r"""Steihaug-Toint CG for the trust-region subproblem

    $$
    \min_x\; m(x) = -b \cdot x + \tfrac12 x^T H x, \qquad \lVert x\rVert \le \Delta
    $$

    (for an update $x$ that moves the parameters to $\theta - x$, $b$ the gradient): CG on
    $H x = b$ from 0, stopped at the boundary when a step would leave the region, at the
    boundary point of lower $m$ along a direction of negative curvature, or when
    $\lVert b - Hx\rVert \le$ ``rtol`` $\lVert b\rVert$ (Nocedal & Wright, Algorithm 7.2). The
    directions don't depend on $\Delta$: a smaller radius stops the same sequence earlier.

    Example:
        >>> import torch
        >>> H = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
        >>> res = steihaug_cg(lambda v: H @ v, torch.tensor([2.0, 1.0], dtype=torch.float64), radius=10.0, rtol=1e-10)
        >>> res.x, res.hits_boundary, round(res.model_change, 12)
        (tensor([1., 1.], dtype=torch.float64), False, -1.5)
    """
    maxiter = b.numel() if maxiter is None else maxiter
    b_norm = float(b.norm())
    z = b.new_zeros(b.shape)
    if b_norm == 0:
        return SteihaugResult(z, 0, False, False, 0.0)
    tol = rtol * b_norm
    r = b.clone()  # b - H z
    p = r.clone()
    rr = float(r.dot(r))
    m = 0.0  # m(z)
    for it in range(1, maxiter + 1):
        hp = matvec(p)
        curvature = float(p.dot(hp))
        rp = float(r.dot(p))

        def change(t: float) -> float:  # m(z + t p) - m(z) = -t r.p + t^2 p.Hp / 2
            return -t * rp + 0.5 * t * t * curvature

        if not curvature > 0:
            ta, tb = boundary_steps(z, p, radius)
            t = ta if change(ta) < change(tb) else tb
            return SteihaugResult(z + t * p, it, True, True, m + change(t))
        alpha = rr / curvature
        z_next = z + alpha * p
        if float(z_next.norm()) >= radius:
            _, tb = boundary_steps(z, p, radius)
            return SteihaugResult(z + tb * p, it, True, False, m + change(tb))
        m += change(alpha)
        r.add_(hp, alpha=-alpha)
        rr_next = float(r.dot(r))
        if math.sqrt(rr_next) < tol:
            return SteihaugResult(z_next, it, False, False, m)
        p.mul_(rr_next / rr).add_(r)
        z, rr = z_next, rr_next
    return SteihaugResult(z, maxiter, False, False, m)
