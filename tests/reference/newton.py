"""Reference for the Newton directions, written from Nocedal & Wright (2nd ed.): Algorithm 7.1
(line-search Newton-CG, with its stop on negative curvature), Section 3.4 (a Hessian modified by
a multiple of the identity when it is not positive definite), and Eisenstat & Walker (1996),
choice 2 of the forcing term. NumPy float64, in the book's own signs (it solves
$B p = -\\nabla f$ for the direction $p$); independent of ``torchzero``.
"""
from __future__ import annotations

import numpy as np


def newton_cg_direction(b_mat: np.ndarray, grad: np.ndarray, eps: float, maxiter: int) -> tuple[np.ndarray, int, bool]:
    """Algorithm 7.1's inner loop: the direction ``p``, the CG iterations and whether negative
    curvature stopped it. ``eps`` is the absolute residual tolerance."""
    z = np.zeros_like(grad)
    r = grad.copy()
    d = -r
    for j in range(maxiter):
        bd = b_mat @ d
        if d @ bd <= 0:
            return (-grad if j == 0 else z), j + 1, True
        alpha = (r @ r) / (d @ bd)
        z = z + alpha * d
        r_new = r + alpha * bd
        if np.linalg.norm(r_new) < eps:
            return z, j + 1, False
        beta = (r_new @ r_new) / (r @ r)
        d = -r_new + beta * d
        r = r_new
    return z, maxiter, False


def modified_newton_direction(hess: np.ndarray, grad: np.ndarray, damping: float = 0.0, shift: float = 1e-3) -> np.ndarray:
    """``p`` with ``(H + damping I) p = -grad`` when that matrix is positive definite, else with its
    eigenvalues ``l`` replaced by ``max(|l|, shift * max|l|)`` (Nocedal & Wright Section 3.4,
    eigenvalue modification)."""
    a = hess + damping * np.eye(grad.size)
    a = 0.5 * (a + a.T)
    try:
        chol = np.linalg.cholesky(a)
        return -np.linalg.solve(chol.T, np.linalg.solve(chol, grad))
    except np.linalg.LinAlgError:
        lam, q = np.linalg.eigh(a)
        modified = np.maximum(np.abs(lam), shift * np.abs(lam).max())
        return -q @ ((q.T @ grad) / modified)


def eisenstat_walker_2(g_norm: float, g_norm_prev: float | None, eta_prev: float | None) -> float:
    """Choice 2 with gamma = 0.9, alpha = 2, the safeguard max(eta, gamma eta_prev^2) when that
    exceeds 0.1, at most 0.9; 0.5 at the start."""
    if g_norm_prev is None:
        return 0.5
    eta = 0.9 * (g_norm / g_norm_prev) ** 2
    if 0.9 * eta_prev**2 > 0.1:
        eta = max(eta, 0.9 * eta_prev**2)
    return min(eta, 0.9)


def rosenbrock(x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Extended Rosenbrock (pairs of coordinates): value, gradient and Hessian, by hand."""
    f, g, h = 0.0, np.zeros_like(x), np.zeros((x.size, x.size))
    for i in range(0, x.size, 2):
        a, b = x[i], x[i + 1]
        f += (1 - a) ** 2 + 100 * (b - a * a) ** 2
        g[i] += -2 * (1 - a) - 400 * a * (b - a * a)
        g[i + 1] += 200 * (b - a * a)
        h[i, i] += 2 - 400 * (b - a * a) + 800 * a * a
        h[i, i + 1] += -400 * a
        h[i + 1, i] += -400 * a
        h[i + 1, i + 1] += 200
    return f, g, h


def steihaug(b_mat: np.ndarray, grad: np.ndarray, radius: float, eps: float, maxiter: int) -> tuple[np.ndarray, bool]:
    """Algorithm 7.2 (CG-Steihaug) in the book's signs: the step ``p`` minimizing
    ``g.p + p.B.p / 2`` within ``radius``, and whether it is on the boundary. At negative
    curvature, of the two boundary points along ``d`` the one of lower model value."""

    def model(p):
        return grad @ p + 0.5 * p @ b_mat @ p

    def to_boundary(z, d):
        a, b, c = d @ d, 2 * z @ d, z @ z - radius**2
        root = np.sqrt(b * b - 4 * a * c)
        return (-b - root) / (2 * a), (-b + root) / (2 * a)

    z = np.zeros_like(grad)
    r = grad.copy()
    d = -r
    if np.linalg.norm(r) < eps:
        return z, False
    for _ in range(maxiter):
        bd = b_mat @ d
        if d @ bd <= 0:
            ta, tb = to_boundary(z, d)
            pa, pb = z + ta * d, z + tb * d
            return (pa if model(pa) < model(pb) else pb), True
        alpha = (r @ r) / (d @ bd)
        z_next = z + alpha * d
        if np.linalg.norm(z_next) >= radius:
            _, tb = to_boundary(z, d)
            return z + tb * d, True
        r_next = r + alpha * bd
        if np.linalg.norm(r_next) < eps:
            return z_next, False
        d = -r_next + (r_next @ r_next) / (r @ r) * d
        z, r = z_next, r_next
    return z, False


def exact_trust_region_step(b_mat: np.ndarray, grad: np.ndarray, radius: float) -> np.ndarray:
    """The subproblem's solution in the book's signs (``p`` minimizing ``g.p + p.B.p/2`` within
    ``radius``, Theorem 4.1), by bisection on ``lambda`` to machine precision (no hard case):
    ``p = -(B + lambda I)^{-1} g`` with ``lambda = 0`` if that is inside and ``B`` is positive
    definite, else ``||p(lambda)|| = radius``."""
    n = grad.size
    lam_min = np.linalg.eigvalsh(b_mat).min()
    if lam_min > 0:
        p = -np.linalg.solve(b_mat, grad)
        if np.linalg.norm(p) <= radius:
            return p
    lo = max(0.0, -lam_min)
    hi = lo + np.linalg.norm(grad) / radius + np.abs(np.linalg.eigvalsh(b_mat)).max() + 1.0
    for _ in range(400):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if np.linalg.norm(np.linalg.solve(b_mat + mid * np.eye(n), grad)) > radius:
            lo = mid
        else:
            hi = mid
    return -np.linalg.solve(b_mat + hi * np.eye(n), grad)


def dogleg(b_mat: np.ndarray, grad: np.ndarray, radius: float) -> np.ndarray:
    """Section 4.1's dogleg in the book's signs, for a positive definite ``B``."""
    p_b = -np.linalg.solve(b_mat, grad)
    if np.linalg.norm(p_b) <= radius:
        return p_b
    p_u = -(grad @ grad) / (grad @ b_mat @ grad) * grad
    if np.linalg.norm(p_u) >= radius:
        return p_u * radius / np.linalg.norm(p_u)
    d = p_b - p_u
    a, b, c = d @ d, 2 * p_u @ d, p_u @ p_u - radius**2
    tau = (-b + np.sqrt(b * b - 4 * a * c)) / (2 * a)
    return p_u + tau * d


def trust_region_path(f, x0: np.ndarray, step_fn, steps: int, eta=0.15, init=1.0, max_radius=1000.0) -> list[np.ndarray]:
    """Algorithm 4.1 with ``step_fn(B, g, radius) -> p``, ``f(x) -> (value, grad, hess)``: the
    accepted points, one trial per iteration."""
    x, radius, out = x0.copy(), init, []
    for _ in range(steps):
        fx, g, h = f(x)
        p = step_fn(h, g, radius)
        predicted = -(g @ p + 0.5 * p @ h @ p)
        rho = (fx - f(x + p)[0]) / predicted if predicted > 0 else -np.inf
        if rho < 0.25:
            radius *= 0.25
        elif rho > 0.75 and np.isclose(np.linalg.norm(p), radius, rtol=1e-9):
            radius = min(2 * radius, max_radius)
        if rho > eta:
            x = x + p
            out.append(x.copy())
    return out


def cubic_model_minimizer(b_mat: np.ndarray, grad: np.ndarray, sigma: float) -> np.ndarray:
    """The global minimizer of ``g.p + p.B.p/2 + sigma/3 |p|^3`` in the book's signs (Cartis,
    Gould & Toint 2011, Theorem 3.1; no hard case): ``p = -(B + lambda I)^{-1} g`` with
    ``lambda = sigma |p|`` and ``lambda >= max(0, -lambda_1)``, by bisection on
    ``|p(lambda)| - lambda / sigma`` to machine precision."""
    n = grad.size
    lo = max(0.0, -np.linalg.eigvalsh(b_mat).min())
    hi = lo + 1.0
    while np.linalg.norm(np.linalg.solve(b_mat + hi * np.eye(n), grad)) > hi / sigma:
        hi *= 2
    for _ in range(400):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if np.linalg.norm(np.linalg.solve(b_mat + mid * np.eye(n), grad)) > mid / sigma:
            lo = mid
        else:
            hi = mid
    return -np.linalg.solve(b_mat + hi * np.eye(n), grad)
