r"""The perturbation of sharpness-aware minimization (SAM, Foret et al., 2021; ASAM, Kwon et al., 2021).

SAM minimizes $\max_{\|T^{-1}\epsilon\|_p \le \rho} L(w + \epsilon)$ by one ascent step: to first
order the maximizer is

$$
\hat\epsilon = \rho\, T\, \frac{\operatorname{sign}(Tg)\, |Tg|^{q-1}}{\|Tg\|_q^{\,q-1}},
\qquad \tfrac1p + \tfrac1q = 1,
$$

with $g = \nabla L(w)$ and $T = 1$ (SAM) or $T = |w| + \eta$ elementwise (ASAM). For $p = 2$
this is $\rho T^2 g / \|Tg\|_2$; for $p = \infty$ it is $\rho\, T \operatorname{sign}(g)$. The
norm is over all parameters together.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["dual_exponent", "sam_perturbation"]


def dual_exponent(p: float) -> float:
    r"""$q$ with $1/p + 1/q = 1$, for $p \in (1, \infty]$ ($q = 1$ for $p = \infty$)."""
    return 1.0 if math.isinf(p) else p / (p - 1.0)


def sam_perturbation(
    grads: Sequence[Tensor],
    params: Sequence[Tensor],
    rho: float | Sequence[float],
    p: float = 2.0,
    eps: float = 1e-10,
    adaptive: bool | Sequence[bool] = False,
    eta: float | Sequence[float] = 0.0,
) -> list[Tensor]:
    r"""The perturbation $\hat\epsilon$ above, one tensor per parameter (new tensors).

    Args:
        grads: $g$, the gradients at ``params``.
        params: $w$ (read for ASAM's $T$ only).
        rho: $\rho \ge 0$, one value or one per tensor.
        p: the norm of the neighbourhood, in $(1, \infty]$.
        eps: the floor of the denominator $\|Tg\|_q^{q-1}$.
        adaptive: $T = |w| + \eta$ (ASAM) instead of 1, one flag or one per tensor.
        eta: ASAM's $\eta \ge 0$, one value or one per tensor.
    """
    grads, params = list(grads), list(params)
    n = len(grads)
    if n == 0:
        return []
    rhos = list(rho) if isinstance(rho, Sequence) else [rho] * n
    flags = list(adaptive) if isinstance(adaptive, Sequence) else [adaptive] * n
    etas = list(eta) if isinstance(eta, Sequence) else [eta] * n
    scales = [w.abs().add_(e) if a else None for w, a, e in zip(params, flags, etas)]
    tg = [g if s is None else g * s for g, s in zip(grads, scales)]
    q = dual_exponent(p)
    if q == 1.0:
        dirs = [t.sign() for t in tg]
        denom: Tensor | float = 1.0
    else:
        dirs = [t.sign() * t.abs().pow(q - 1) for t in tg] if q != 2.0 else [t.clone() for t in tg]
        dtype = torch.float32
        for t in tg:
            dtype = torch.promote_types(dtype, t.dtype)
        norms = [torch.linalg.vector_norm(t, q, dtype=dtype).to(tg[0].device) for t in tg]
        norm = torch.linalg.vector_norm(torch.stack(norms), q)
        denom = (norm if q == 2.0 else norm.pow(q - 1)).clamp(min=eps)
    out = []
    for d, s, r in zip(dirs, scales, rhos):
        e = d.mul_(r / denom) if isinstance(denom, Tensor) else d.mul_(r)
        out.append(e if s is None else e.mul_(s))
    return out
