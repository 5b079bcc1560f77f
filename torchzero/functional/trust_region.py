r"""Trust-region subproblems with a dense model matrix (stateless): minimize

$$
m(d) = -g \cdot d + \tfrac12 d^T B d, \qquad \lVert d\rVert_2 \le \Delta
$$

for an update $d$ that moves the parameters to $x - d$, $g$ the gradient. Each returns the step,
whether it lies on the boundary, and the predicted reduction $m(0) - m(d)$.

References:
    Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Sections 4.1
    (the Cauchy point, the dogleg) and 4.3 (the exact solution, Algorithm 4.3 and the hard
    case).

    Moré, J. J. (1978). The Levenberg-Marquardt algorithm: implementation and theory.
    Numerical Analysis, Lecture Notes in Mathematics 630, 105-116.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .krylov import boundary_steps

__all__ = ["cauchy_point", "cubic_step", "dogleg_step", "exact_step", "predicted_reduction"]


def predicted_reduction(g: Tensor, b: Tensor, d: Tensor) -> float:
    r"""$m(0) - m(d) = g\cdot d - \tfrac12 d^T B d$."""
    return float(g.dot(d)) - 0.5 * float(d.dot(b @ d))


def cauchy_point(g: Tensor, b: Tensor, radius: float) -> Tensor:
    r"""The minimizer of $m$ along $g$ within the radius (Nocedal & Wright, eq. 4.11-4.12):
    $\tau \Delta\, g / \lVert g\rVert$ with $\tau = 1$ when $g^T B g \le 0$, else
    $\min(\lVert g\rVert^3 / (\Delta\, g^T B g), 1)$."""
    g_norm = float(g.norm())
    if g_norm == 0:
        return torch.zeros_like(g)
    gbg = float(g.dot(b @ g))
    tau = 1.0 if gbg <= 0 else min(g_norm**3 / (radius * gbg), 1.0)
    return g * (tau * radius / g_norm)


def dogleg_step(g: Tensor, b: Tensor, radius: float) -> tuple[Tensor, bool, float]:
    r"""The dogleg step (Nocedal & Wright, Section 4.1): the Newton step $B^{-1} g$ when it is
    inside the region; else the steepest-descent minimizer $\frac{g\cdot g}{g^T B g} g$ cut to
    the boundary when that is outside; else the point where the path from it to the Newton step
    crosses the boundary. When $B$ is not positive definite (no Newton step), the Cauchy point.

    Example:
        >>> import torch
        >>> b = torch.diag(torch.tensor([1.0, 10.0], dtype=torch.float64))
        >>> d, on_boundary, _ = dogleg_step(torch.tensor([1.0, 1.0], dtype=torch.float64), b, radius=5.0)
        >>> d, on_boundary
        (tensor([1.0000, 0.1000], dtype=torch.float64), False)
    """
    chol, info = torch.linalg.cholesky_ex(0.5 * (b + b.T))
    if int(info) != 0:
        d = cauchy_point(g, b, radius)
        return d, True, predicted_reduction(g, b, d)
    newton = torch.cholesky_solve(g.unsqueeze(1), chol).squeeze(1)
    if float(newton.norm()) < radius:
        return newton, False, predicted_reduction(g, b, newton)
    gbg = float(g.dot(b @ g))
    steepest = g * (float(g.dot(g)) / gbg)
    s_norm = float(steepest.norm())
    if s_norm >= radius:
        d = steepest * (radius / s_norm)
        return d, True, predicted_reduction(g, b, d)
    _, t = boundary_steps(steepest, newton - steepest, radius)
    d = steepest + t * (newton - steepest)
    return d, True, predicted_reduction(g, b, d)


def exact_step(g: Tensor, b: Tensor, radius: float, rtol: float = 1e-10, maxiter: int = 100) -> tuple[Tensor, bool, float]:
    r"""The solution of the subproblem: $d = (B + \lambda I)^{-1} g$ with $\lambda \ge 0$,
    $B + \lambda I$ positive semidefinite and $\lambda (\Delta - \lVert d\rVert) = 0$
    (Nocedal & Wright, Theorem 4.1), from the eigen-decomposition $B = Q \Lambda Q^T$:

    - $\lambda = 0$ when $B$ is positive definite and the Newton step is inside;
    - else $\lambda > -\lambda_1$ with $\lVert d(\lambda)\rVert = \Delta$, by Newton's method on
      $1/\Delta - 1/\lVert d(\lambda)\rVert$ (Algorithm 4.3; safeguarded by bisection), to
      ``rtol`` relative in $\lVert d\rVert$;
    - in the hard case ($g$ orthogonal to the eigenvectors of $\lambda_1$ and
      $\lVert d(-\lambda_1)\rVert < \Delta$): $d(-\lambda_1) + \tau q_1$ on the boundary.

    This is the Levenberg-Marquardt step of Moré (1978) with $D = I$.

    Example:
        >>> import torch
        >>> b = torch.diag(torch.tensor([1.0, 10.0], dtype=torch.float64))
        >>> d, on_boundary, _ = exact_step(torch.tensor([1.0, 1.0], dtype=torch.float64), b, radius=0.5)
        >>> round(float(d.norm()), 10), on_boundary
        (0.5, True)
    """
    b = 0.5 * (b + b.T)
    lam, q = torch.linalg.eigh(b)
    c = q.T @ g  # g in the eigenbasis
    low = float(lam[0])

    def step(shift: float) -> Tensor:
        return q @ (c / (lam + shift))

    if low > 0:
        d = step(0.0)
        if float(d.norm()) <= radius:
            return d, False, predicted_reduction(g, b, d)
    # the boundary: phi(s) = ||d(s)|| decreases from +inf (at s -> -low, unless the hard case) to 0
    floor = max(0.0, -low)
    scale = max(float(lam.abs().max()), 1e-300)
    first = (lam - low).abs() <= 1e-12 * scale  # the eigenvectors of the least eigenvalue
    c_first = float(c[first].norm())
    if c_first <= 1e-12 * max(float(c.norm()), 1e-300):  # possibly the hard case
        rest = ~first
        d0 = q[:, rest] @ (c[rest] / (lam[rest] - low)) if bool(rest.any()) else torch.zeros_like(g)
        if float(d0.norm()) <= radius:
            z = q[:, first][:, 0]
            _, tau = boundary_steps(d0, z, radius)
            d = d0 + tau * z
            return d, True, predicted_reduction(g, b, d)
    lo, hi = floor, floor + float(g.norm()) / radius + scale  # ||d(hi)|| <= ||g|| / (hi - floor... ) < radius
    s = hi
    for _ in range(maxiter):
        d = step(s)
        norm = float(d.norm())
        if abs(norm - radius) <= rtol * radius:
            break
        if norm > radius:
            lo = s
        else:
            hi = s
        # Newton on 1/radius - 1/||d(s)||: s += (||d||/radius - 1) ||d||^2 / (d^T (B + sI)^{-1} d)
        w = float(((c / (lam + s) ** 1.5) ** 2).sum())
        s_new = s + (norm / radius - 1) * norm**2 / w if w > 0 else math.nan
        s = s_new if lo < s_new < hi else 0.5 * (lo + hi)
    d = step(s)
    return d, True, predicted_reduction(g, b, d)


def cubic_step(g: Tensor, b: Tensor, sigma: float, rtol: float = 1e-10, maxiter: int = 200) -> tuple[Tensor, float]:
    r"""The global minimizer of the cubic model

    $$
    m(d) = -g \cdot d + \tfrac12 d^T B d + \tfrac{\sigma}{3} \lVert d\rVert^3
    $$

    and the reduction $m(0) - m(d)$ (Cartis, Gould & Toint 2011, Theorem 3.1): $d = (B +
    \lambda I)^{-1} g$ with $B + \lambda I$ positive semidefinite and $\lambda = \sigma\lVert
    d\rVert$, found from $B = Q\Lambda Q^T$ by bisection safeguarding Newton's method on
    $\lVert d(\lambda)\rVert - \lambda/\sigma$ (decreasing in $\lambda$), to ``rtol``; in the
    hard case ($g$ orthogonal to the least eigenvalue's eigenvectors) $d(-\lambda_1) + \tau q_1$.

    Example:
        >>> import torch
        >>> d, reduction = cubic_step(torch.tensor([3.0], dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64), 3.0)
        >>> d, round(reduction, 12)  # -3 d + d^3: the minimum at d = 1
        (tensor([1.], dtype=torch.float64), 2.0)
    """
    b = 0.5 * (b + b.T)
    lam, q = torch.linalg.eigh(b)
    c = q.T @ g
    low = float(lam[0])
    floor = max(0.0, -low)
    scale = max(float(lam.abs().max()), 1e-300)

    def reduction(d: Tensor) -> float:
        norm = float(d.norm())
        return float(g.dot(d)) - 0.5 * float(d.dot(b @ d)) - sigma / 3 * norm**3

    if float(g.norm()) == 0:
        if low >= 0:
            return torch.zeros_like(g), 0.0
        z = q[:, 0] * (-low / sigma)  # along negative curvature, ||d|| = -lambda_1 / sigma
        return z, reduction(z)
    first = (lam - low).abs() <= 1e-12 * scale
    if float(c[first].norm()) <= 1e-12 * float(c.norm()) and low < 0:  # possibly the hard case
        rest = ~first
        d0 = q[:, rest] @ (c[rest] / (lam[rest] - low)) if bool(rest.any()) else torch.zeros_like(g)
        if float(d0.norm()) <= floor / sigma:
            _, tau = boundary_steps(d0, q[:, first][:, 0], floor / sigma)
            d = d0 + tau * q[:, first][:, 0]
            return d, reduction(d)
    # psi(s) = ||d(s)|| - s / sigma: +inf (or positive) at s = floor, negative for large s
    lo, hi = floor, floor + 1.0
    while float((c / (lam + hi)).norm()) - hi / sigma > 0:
        lo, hi = hi, 2 * hi + 1.0
    s = hi
    for _ in range(maxiter):
        norm = float((c / (lam + s)).norm())
        gap = norm - s / sigma
        if abs(gap) <= rtol * max(norm, 1e-300):
            break
        if gap > 0:
            lo = s
        else:
            hi = s
        # Newton on psi: psi'(s) = -sum c^2/(lam+s)^3 / ||d|| - 1/sigma
        slope = -float(((c / (lam + s) ** 1.5) ** 2).sum()) / max(norm, 1e-300) - 1 / sigma
        s_new = s - gap / slope
        s = s_new if lo < s_new < hi else 0.5 * (lo + hi)
    d = q @ (c / (lam + s))
    return d, reduction(d)
