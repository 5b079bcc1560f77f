"""Reference for L-BFGS, written from Nocedal & Wright (2nd ed.), eq. 6.17 and Section 7.2.

L-BFGS's $H_k$ is the BFGS inverse-Hessian update (eq. 6.17),
$H \\leftarrow (I - \\rho s y^T) H (I - \\rho y s^T) + \\rho s s^T$, applied to the pairs in
order, oldest first, starting from $H_0 = \\gamma I$ with $\\gamma = s_k^T y_k / y_k^T y_k$ of the
newest pair (eq. 7.20). Dense NumPy float64 matrices; independent of ``torchzero``.
"""
from __future__ import annotations

import numpy as np


def lbfgs_inverse_hessian(s: list[np.ndarray], y: list[np.ndarray]) -> np.ndarray:
    """The dense $H$ of the pairs ``(s[i], y[i])`` (oldest first)."""
    n = s[0].size
    eye = np.eye(n)
    h = eye * (s[-1] @ y[-1]) / (y[-1] @ y[-1])
    for si, yi in zip(s, y):
        rho = 1.0 / (yi @ si)
        h = (eye - rho * np.outer(si, yi)) @ h @ (eye - rho * np.outer(yi, si)) + rho * np.outer(si, si)
    return h


def bfgs_inverse(h: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """eq. 6.17 as written: (I - rho s y^T) H (I - rho y s^T) + rho s s^T."""
    eye = np.eye(s.size)
    rho = 1.0 / (y @ s)
    return (eye - rho * np.outer(s, y)) @ h @ (eye - rho * np.outer(y, s)) + rho * np.outer(s, s)


def dfp_inverse(h: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """eq. 6.15: H - H y y^T H / (y^T H y) + s s^T / (y^T s)."""
    hy = h @ y
    return h - np.outer(hy, hy) / (y @ hy) + np.outer(s, s) / (y @ s)


def sr1_inverse(h: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """eq. 6.25: H + (s - H y)(s - H y)^T / ((s - H y)^T y)."""
    v = s - h @ y
    return h + np.outer(v, v) / (v @ y)


def linear_cg(a: np.ndarray, b: np.ndarray, x0: np.ndarray, iterations: int) -> list[np.ndarray]:
    """The iterates of linear CG on a x = b (Nocedal & Wright, Algorithm 5.2): the minimizer
    sequence of 0.5 x^T a x - b^T x with exact line searches."""
    x = x0.copy()
    r = a @ x - b
    p = -r
    out = []
    for _ in range(iterations):
        alpha = (r @ r) / (p @ a @ p)
        x = x + alpha * p
        r_new = r + alpha * (a @ p)
        beta = (r_new @ r_new) / (r @ r)
        p = -r_new + beta * p
        r = r_new
        out.append(x.copy())
    return out
