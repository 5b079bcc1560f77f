r"""L-BFGS's two-loop recursion (stateless, on flat vectors).

References:
    Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Algorithm 7.4 and
    eq. 7.20 (the scaled initial Hessian).
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

__all__ = ["two_loop"]


def two_loop(q: Tensor, s: Sequence[Tensor], y: Sequence[Tensor], rho: Sequence[Tensor], gamma: Tensor | float | None = None) -> Tensor:
    r"""$H q$ for the L-BFGS inverse-Hessian approximation $H$ of the pairs $(s_i, y_i)$, oldest
    first, with $\rho_i = 1/(s_i \cdot y_i)$ and $H_0 = \gamma I$, $\gamma = s_k\cdot y_k / y_k\cdot y_k$
    from the newest pair (or ``gamma`` when given, as the caller may keep it). ``q`` is overwritten (pass a copy to keep it). No pairs: $q$ itself.

    Example:
        >>> import torch
        >>> A = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
        >>> s = [torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)]
        >>> y = [A @ v for v in s]
        >>> two_loop(torch.tensor([1.0, 4.0], dtype=torch.float64), s, y, [1 / si.dot(yi) for si, yi in zip(s, y)])
        tensor([1., 1.], dtype=torch.float64)
    """
    if not s:
        return q
    # the scalars as Python floats (float64): a 0-dim tensor per product would cost more than
    # the arithmetic; the vectors are updated in place, with no temporary of their size
    rhos = [float(r) for r in rho]
    alphas = []
    for si, yi, ri in zip(reversed(s), reversed(y), reversed(rhos)):
        a = ri * float(si.dot(q))
        q.add_(yi, alpha=-a)
        alphas.append(a)
    q.mul_(float(s[-1].dot(y[-1]) / y[-1].dot(y[-1])) if gamma is None else float(gamma))
    for si, yi, ri, a in zip(s, y, rhos, reversed(alphas)):
        b = ri * float(yi.dot(q))
        q.add_(si, alpha=a - b)
    return q
