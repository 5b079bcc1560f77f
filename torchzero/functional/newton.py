r"""Solving the Newton system $(H + \lambda I) x = u$ (stateless, dense).

References:
    Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Section 3.4
    (modified Newton: the Hessian's eigenvalues modified when it is not positive definite).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["newton_solve", "CHOLESKY", "SHIFTED", "LSTSQ", "EIGVAL_FN", "NONE"]

#: How :func:`newton_solve` solved: Cholesky, modified eigenvalues (``SHIFTED``, the name kept
#: from the uniform shift it replaced), least squares, ``eigval_fn``, not at all.
CHOLESKY, SHIFTED, LSTSQ, EIGVAL_FN, NONE = 0, 1, 2, 3, 4


def _finite(t: Tensor) -> bool:
    return bool(torch.isfinite(t).all())


def newton_solve(
    h: Tensor, u: Tensor, damping: float = 0.0, eigval_fn: Callable[[Tensor], Tensor] | None = None, shift: float = 1e-3
) -> tuple[Tensor | None, int]:
    r"""$x$ with $(H + \lambda I) x = u$, and how it was found.

    - ``eigval_fn`` given: $x = Q f(\Lambda)^{-1} Q^T u$ from $H + \lambda I = Q \Lambda Q^T$
      (eigenvalues that ``f`` maps to 0 are dropped, as a pseudo-inverse does);
    - else Cholesky; if $H + \lambda I = Q \Lambda Q^T$ is not positive definite, its eigenvalues
      modified: $x = Q \tilde\Lambda^{-1} Q^T u$ with $\tilde\lambda_i = \max(|\lambda_i|,$
      ``shift`` $\cdot \max_j|\lambda_j|)$, negative curvature flipped and near-zero curvature
      floored (so $x$ is a descent direction, $u \cdot x > 0$, that keeps the Newton step's
      length along each well-curved direction; Nocedal & Wright, Section 3.4, eigenvalue
      modification); if that isn't finite, least squares.

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
        size = lam.abs()
        floor = shift * float(size.max())
        if floor > 0:
            x = q @ ((q.T @ u) / size.clamp(min=floor))
            if _finite(x):
                return x, SHIFTED
    except RuntimeError:  # the eigen-decomposition didn't converge
        pass
    x = torch.linalg.lstsq(a, u.unsqueeze(1)).solution.squeeze(1)
    return (x, LSTSQ) if _finite(x) else (None, NONE)
