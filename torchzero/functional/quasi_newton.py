r"""Quasi-Newton updates of a dense inverse-Hessian approximation $H$ (stateless).

With $s = x_{k+1} - x_k$ and $y = \nabla f_{k+1} - \nabla f_k$ (Nocedal & Wright, 2nd ed.,
Chapter 6). Each returns the updated $H$, computed in place in ``h``.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["bfgs_inverse_update", "dfp_inverse_update", "sr1_inverse_update"]


def bfgs_inverse_update(h: Tensor, s: Tensor, y: Tensor) -> Tensor:
    r"""$H \leftarrow (I - \rho s y^T) H (I - \rho y s^T) + \rho s s^T$, $\rho = 1/s\cdot y$
    (eq. 6.17), expanded as $H - \rho (s\, y^T H + H y\, s^T) + (\rho^2\, y^T H y + \rho)\, s s^T$.

    Example:
        >>> import torch
        >>> h = bfgs_inverse_update(torch.eye(2, dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([2.0, 0.0], dtype=torch.float64))
        >>> h  # the secant equation H y = s holds
        tensor([[0.5000, 0.0000],
                [0.0000, 1.0000]], dtype=torch.float64)
    """
    rho = 1 / s.dot(y)
    hy = h @ y
    h.sub_(rho * (torch.outer(s, hy) + torch.outer(hy, s)))
    h.add_((rho * rho * y.dot(hy) + rho) * torch.outer(s, s))
    return h


def dfp_inverse_update(h: Tensor, s: Tensor, y: Tensor) -> Tensor:
    r"""$H \leftarrow H - \frac{H y y^T H}{y^T H y} + \frac{s s^T}{s \cdot y}$ (eq. 6.15)."""
    hy = h @ y
    h.sub_(torch.outer(hy, hy) / y.dot(hy))
    h.add_(torch.outer(s, s) / s.dot(y))
    return h


def sr1_inverse_update(h: Tensor, s: Tensor, y: Tensor, r: float = 1e-8) -> Tensor | None:
    r"""$H \leftarrow H + \frac{v v^T}{v \cdot y}$, $v = s - H y$ (eq. 6.25); ``None`` (skip) when
    $|v\cdot y| < r\,\lVert y\rVert\,\lVert v\rVert$ (eq. 6.26)."""
    v = s - h @ y
    vy = v.dot(y)
    if float(vy.abs()) < r * float(y.norm()) * float(v.norm()) or float(vy) == 0:
        return None
    h.add_(torch.outer(v, v) / vy)
    return h
