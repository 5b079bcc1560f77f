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
