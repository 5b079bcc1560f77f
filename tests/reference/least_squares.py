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
