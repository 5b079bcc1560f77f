r"""Solving the Newton system $(H + \lambda I) x = u$ (stateless, dense).

References:
    Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Section 3.4
    (modified Newton: a shifted Hessian when it is not positive definite).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["newton_solve", "CHOLESKY", "SHIFTED", "LSTSQ", "EIGVAL_FN", "NONE"]

CHOLESKY, SHIFTED, LSTSQ, EIGVAL_FN, NONE = 0, 1, 2, 3, 4


def _finite(t: Tensor) -> bool:
    return bool(torch.isfinite(t).all())


def newton_solve(
    h: Tensor, u: Tensor, damping: float = 0.0, eigval_fn: Callable[[Tensor], Tensor] | None = None, shift: float = 1e-3
) -> tuple[Tensor | None, int]:
    r"""$x$ with $(H + \lambda I) x = u$, and how it was found.

    - ``eigval_fn`` given: $x = Q f(\Lambda)^{-1} Q^T u$ from $H + \lambda I = Q \Lambda Q^T$
      (eigenvalues that ``f`` maps to 0 are dropped, as a pseudo-inverse does);
    - else Cholesky; if $H + \lambda I$ is not positive definite, $(H + \lambda I + \tau I) x = u$
      with $\tau$ making the smallest eigenvalue ``shift`` $\cdot \max|\Lambda|$ (so $x$ is a
      descent direction, $u \cdot x > 0$; Nocedal & Wright, Section 3.4); if that isn't finite,
      least squares.

    Returns:
        ``(x, code)`` with ``code`` one of :data:`CHOLESKY`, :data:`SHIFTED`, :data:`LSTSQ`,
        :data:`EIGVAL_FN`; ``(None, NONE)`` when $H$ or $u$ is not finite.

    Example:
        >>> import torch
        >>> h = torch.tensor([[2.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
        >>> newton_solve(h, torch.tensor([2.0, 1.0], dtype=torch.float64), eigval_fn=torch.abs)
        (tensor([1., 1.], dtype=torch.float64), 3)
    """
    if not (_finite(h) and _finite(u)):
        return None, NONE
    n = u.numel()
    a = h if damping == 0 else h + damping * torch.eye(n, dtype=h.dtype, device=h.device)
    a = 0.5 * (a + a.T)  # exactly symmetric: autograd's rows agree only to rounding
    if eigval_fn is not None:
        lam, q = torch.linalg.eigh(a)
        lam = eigval_fn(lam)
        inv = torch.where(lam != 0, 1 / lam, torch.zeros_like(lam))
        x = q @ (inv * (q.T @ u))
        return (x, EIGVAL_FN) if _finite(x) else (None, NONE)
    chol, info = torch.linalg.cholesky_ex(a)
    if int(info) == 0:
        x = torch.cholesky_solve(u.unsqueeze(1), chol).squeeze(1)
        if _finite(x):
            return x, CHOLESKY
    try:
        lam, q = torch.linalg.eigh(a)
        floor = shift * float(lam.abs().max())
        if floor > 0:
            tau = max(0.0, floor - float(lam.min()))  # H + tau I: its smallest eigenvalue is the floor
            x = q @ ((q.T @ u) / (lam + tau))
            if _finite(x):
                return x, SHIFTED
    except RuntimeError:  # the eigen-decomposition didn't converge
        pass
    x = torch.linalg.lstsq(a, u.unsqueeze(1)).solution.squeeze(1)
    return (x, LSTSQ) if _finite(x) else (None, NONE)
