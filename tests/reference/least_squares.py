"""Reference for least squares, written from Nocedal & Wright (2nd ed.), Section 10.3
(Gauss-Newton: the step solves $\\min_p \\lVert J p + r\\rVert$) and Moré (1978) (Levenberg-Marquardt
as a trust region on the model $\\lVert J p + r\\rVert^2$), NumPy float64, with residuals and
their Jacobians written out by hand; independent of ``torchzero`` and of autograd."""
from __future__ import annotations

import numpy as np

from .newton import exact_trust_region_step, trust_region_path

T = np.linspace(0.0, 4.0, 20)
Y = 2.5 * np.exp(-1.3 * T) + 0.05 * np.sin(7.0 * T)


def exp_decay(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """$r_i = a e^{-b t_i} - y_i$ and its Jacobian."""
    a, b = x
    e = np.exp(-b * T)
    return a * e - Y, np.stack([e, -a * T * e], 1)


def rosenbrock(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MGH problem 1: $r = (10(x_2 - x_1^2), 1 - x_1)$."""
    return np.array([10 * (x[1] - x[0] ** 2), 1 - x[0]]), np.array([[-20 * x[0], 10.0], [-1.0, 0.0]])


def freudenstein_roth(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MGH problem 2."""
    r = np.array([-13 + x[0] + ((5 - x[1]) * x[1] - 2) * x[1], -29 + x[0] + ((x[1] + 1) * x[1] - 14) * x[1]])
    j = np.array([[1.0, 10 * x[1] - 3 * x[1] ** 2 - 2], [1.0, 3 * x[1] ** 2 + 2 * x[1] - 14]])
    return r, j


def box_3d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MGH problem 12 with m = 10."""
    t = 0.1 * np.arange(1, 11)
    r = np.exp(-t * x[0]) - np.exp(-t * x[1]) - x[2] * (np.exp(-t) - np.exp(-10 * t))
    j = np.stack([-t * np.exp(-t * x[0]), t * np.exp(-t * x[1]), -(np.exp(-t) - np.exp(-10 * t))], 1)
    return r, j


def gauss_newton_path(residuals, x0: np.ndarray, steps: int) -> list[np.ndarray]:
    """Full Gauss-Newton steps $x \\leftarrow x + p$, $p = \\arg\\min \\lVert J p + r\\rVert$ (least squares, no line search)."""
    x, out = np.array(x0, dtype=float), []
    for _ in range(steps):
        r, j = residuals(x)
        p = np.linalg.lstsq(j, -r, rcond=None)[0]
        x = x + p
        out.append(x.copy())
    return out


def levenberg_marquardt_path(residuals, x0: np.ndarray, steps: int, init: float = 1.0) -> list[np.ndarray]:
    """Moré's Levenberg-Marquardt as Algorithm 4.1 on $f = \\lVert r\\rVert^2$ with the model
    matrix $2J^TJ$ and the exact subproblem: the accepted points."""

    def f(x: np.ndarray):
        r, j = residuals(x)
        return r @ r, 2 * j.T @ r, 2 * j.T @ j

    return trust_region_path(f, np.array(x0, dtype=float), exact_trust_region_step, steps, init=init)


def more_lm_path(residuals, x0: np.ndarray, steps: int) -> list[np.ndarray]:
    """Moré (1978) as MINPACK's ``lmder`` runs it, one trial per iteration: the scaled region
    $\\lVert D p\\rVert \\le \\Delta$ with $D_i = \\max_k \\lVert J_{k,i}\\rVert$ (1 where 0),
    $\\Delta_0 = 100 \\lVert D x_0\\rVert$ cut to the first step's length, the step taken when
    the ratio is at least 1e-4, and the radius rules of ``lmder`` (written for $f = \\lVert r\\rVert^2$).
    The accepted points."""
    x = np.array(x0, dtype=float)
    out: list[np.ndarray] = []
    diag = None
    delta = 0.0
    first = True
    for _ in range(steps):
        r, j = residuals(x)
        norms = np.linalg.norm(j, axis=0)
        diag = norms if diag is None else np.maximum(diag, norms)
        diag = np.where(diag > 0, diag, 1.0)
        if first:
            delta = 100 * np.linalg.norm(diag * x) or 100.0
        # the subproblem in q = D p: the exact trust-region step on the scaled model
        b = 2 * j.T @ j / np.outer(diag, diag)
        g = 2 * j.T @ r / diag
        q = exact_trust_region_step(b, g, delta)
        p = q / diag
        pnorm = np.linalg.norm(diag * p)
        inside = pnorm < delta * (1 - 1e-9)
        if first:
            delta = min(delta, pnorm)
            first = False
        f0 = r @ r
        r1, _ = residuals(x + p)
        f1 = r1 @ r1
        predicted = f0 - np.sum((r + j @ p) ** 2)
        ratio = (f0 - f1) / predicted if predicted > 0 else 0.0
        if ratio <= 0.25:
            grown = not f1 < 100 * f0
            if not grown and f1 <= f0:
                temp = 0.5
            else:
                dirder = 2 * (j.T @ r) @ p  # the slope of f along p
                temp = 0.5 * dirder / (dirder - (f1 - f0)) if dirder - (f1 - f0) < 0 else 0.1
            if grown or temp < 0.1:
                temp = 0.1
            delta = temp * min(delta, pnorm / 0.1)
        elif inside or ratio >= 0.75:
            delta = pnorm / 0.5
        if ratio >= 1e-4:
            x = x + p
            out.append(x.copy())
    return out
