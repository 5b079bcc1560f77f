r"""PSGD's Kronecker-factored whitening preconditioner (Li, 2015, 2018; the author's "Q0.5EQ1.5"
fitting rule with Procrustes steps, as in his standalone ``KWNS4`` optimizer).

A tensor is viewed as a matrix (or a vector); the preconditioner is $P = P_l \otimes P_r$ with
$P_s = Q_s^\top Q_s$ for a dense factor and $P_s = \operatorname{diag}(q_s)^2$ for a diagonal one,
applied as $P_l\, G\, P_r$. Each fitting step moves $Q$ so that $P$ whitens the (damped)
update: $E[(PG)(PG)^\top] \to I$ up to scale, with a step size normalized by a running bound
$L$ on the gradient of the criterion, and keeps a dense $Q$ close to symmetric (a Procrustes
step). The random draws come from the ``generator`` given.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "PSGD_DTYPE_CONSTANTS", "matricized_shape", "init_factors", "norm_lower_bound", "gram_norm_lower_bound",
    "procrustes_step",
    "fit_preconditioner_", "apply_preconditioner",
]

MIN_NORMAL = 2.0**-126

#: The author's recommended (subspace dim, relative damping) per preconditioner dtype; float64
#: takes float32's subspace with its own precision.
PSGD_DTYPE_CONSTANTS: dict[torch.dtype, tuple[int, float]] = {
    torch.bfloat16: (128, 2.0**-8),
    torch.float32: (32, 2.0**-24),
    torch.float64: (32, 2.0**-53),
}


def matricized_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """Singleton dims dropped; then a tensor with more than 2 dims becomes the matrix whose split
    of the dims is closest to square (the first split on ties); 0-, 1- and 2-D stay."""
    dims = [s for s in shape if s != 1]
    if len(dims) <= 2:
        return tuple(dims)
    total = 1
    for s in dims:
        total *= s
    best_k, best_ratio, left = 1, float("inf"), 1
    for k in range(1, len(dims)):
        left *= dims[k - 1]
        right = total // left
        ratio = max(left, right) / min(left, right)
        if ratio < best_ratio:
            best_ratio, best_k = ratio, k
    left = 1
    for s in dims[:best_k]:
        left *= s
    return (left, total // left)


def init_factors(shape: Sequence[int], scale: float, max_size: float, max_skew: float, dtype: torch.dtype, device: torch.device) -> list[Tensor]:
    r"""The initial $Q$'s: for a 0-/1-D tensor one diagonal factor ``scale * ones``; for a
    matrix one per side, $\sqrt{\text{scale}}$ times the identity (dense), or times ones
    (diagonal) when the side has at most one element, more than ``max_size``, or its square is
    more than ``max_skew`` times the number of elements."""
    if len(shape) <= 1:
        return [scale * torch.ones(tuple(shape), dtype=dtype, device=device)]
    numel = shape[0] * shape[1]
    s = scale**0.5
    out = []
    for n in shape:
        if n <= 1 or n > max_size or n * n > max_skew * numel:
            out.append(s * torch.ones(n, dtype=dtype, device=device))
        else:
            out.append(s * torch.eye(n, dtype=dtype, device=device))
    return out


def norm_lower_bound(A: Tensor, k: int, generator: torch.Generator, symmetric: bool = True, half_iters: int = 2) -> Tensor:
    r"""A lower bound of the spectral norm of a symmetric (``symmetric``; else skew-symmetric)
    matrix by ``half_iters`` rounds of subspace iteration from ``k`` random vectors."""
    scale = (A.diagonal().amax() if symmetric else A.abs().amax()) + MIN_NORMAL
    A = A / scale
    V = torch.randn(k, A.shape[1], dtype=A.dtype, device=A.device, generator=generator)
    for _ in range(half_iters):
        V = V @ A
        V /= torch.linalg.vector_norm(V, dim=1, keepdim=True) + MIN_NORMAL
        V = V @ A
    return scale * torch.amax(torch.linalg.vector_norm(V, dim=1))


def gram_norm_lower_bound(F: Tensor, k: int, generator: torch.Generator, half_iters: int = 2) -> Tensor:
    r""":func:`norm_lower_bound` of $F F^\top$ without forming it (the same draws, equal up to
    rounding): its diagonal is the row sums of $F^2$, and each product with it is two with $F$."""
    scale = (F * F).sum(dim=1).amax() + MIN_NORMAL
    V = torch.randn(k, F.shape[0], dtype=F.dtype, device=F.device, generator=generator)
    for _ in range(half_iters):
        V = (V @ F) @ F.T / scale
        V /= torch.linalg.vector_norm(V, dim=1, keepdim=True) + MIN_NORMAL
        V = (V @ F) @ F.T / scale
    return scale * torch.amax(torch.linalg.vector_norm(V, dim=1))


def procrustes_step(Q: Tensor, k: int, generator: torch.Generator, max_step_size: float = 1 / 8) -> None:
    r"""Moves $Q$ in place towards the symmetric factor of its polar decomposition: with the
    skew part $R = (Q^\top - Q)/\lVert Q^\top - Q\rVert$, $Q \leftarrow Q + a(RQ + \tfrac a2 R^2 Q)$,
    $a$ the exact line-search step clipped at ``max_step_size``."""
    R = Q.T - Q
    R /= norm_lower_bound(R, k, generator, symmetric=False) + MIN_NORMAL
    RQ = R @ Q
    RRQ = R @ RQ
    tr_RQ = RQ.diagonal().sum()
    tr_RRQ = RRQ.diagonal().sum()
    a = torch.where(tr_RRQ < 0, torch.clamp(-tr_RQ / tr_RRQ, max=max_step_size), max_step_size)
    Q.add_(a * (RQ + 0.5 * a * RRQ))


def _through_factor(size: int, other: int) -> bool:
    """Whether a side's fit goes through $F$ (:func:`gram_norm_lower_bound`, $F(F^\top Q)$)
    rather than the formed Gram matrix: when the side is the larger one, where it is cheaper."""
    return size > other


def _running_bound_(L: Tensor, ell: Tensor, beta: float) -> None:
    """$L \\leftarrow \\max(\\beta L + (1-\\beta)\\ell, \\ell)$ in place."""
    L.mul_(beta).add_(ell, alpha=1 - beta).clamp_(min=ell)


def _precondition(Qs: Sequence[Tensor], G: Tensor) -> Tensor:
    if len(Qs) == 1:
        return Qs[0] * Qs[0] * G
    Ql, Qr = Qs  # the products in the cheapest order (multi_dot), as the author computes them
    if Ql.ndim == 2 and Qr.ndim == 2:
        return torch.linalg.multi_dot([Ql.T, Ql, G, Qr.T, Qr])
    if Ql.ndim == 2:
        return torch.linalg.multi_dot([Ql.T, Ql, G]) * (Qr * Qr)
    if Qr.ndim == 2:
        return (Ql * Ql).unsqueeze(1) * torch.linalg.multi_dot([G, Qr.T, Qr])
    return G * (Qr * Qr) * (Ql * Ql).unsqueeze(1)


def fit_preconditioner_(
    Qs: Sequence[Tensor], Ls: Sequence[Tensor], G: Tensor, lr: float, beta_l: float, damping: float,
    relative_damping: float, k: int, generator: torch.Generator,
) -> None:
    r"""One fitting step of the $Q$'s (in place) on the update $G$ (matricized, in the
    preconditioner's dtype), damped by noise: $G + (\text{damping} + \text{relative}\,|G|)\,\xi$."""
    Gd = G + (damping + relative_damping * G.abs()) * torch.randn(G.shape, dtype=G.dtype, device=G.device, generator=generator)
    Pg = _precondition(Qs, Gd)
    if len(Qs) == 1:
        term = Pg * Pg
        ell = term.amax() + 1
        _running_bound_(Ls[0], ell, beta_l)
        Qs[0].mul_(1 - lr / Ls[0] * (term - 1))
        return
    m, n = G.shape
    for side, (Q, L) in enumerate(zip(Qs, Ls)):
        other = n if side == 0 else m
        if Q.ndim == 2:
            if _through_factor(Q.shape[0], other):
                # the side's Gram matrix F F^T (F = Pg, or Pg^T on the right) is larger than F:
                # its norm bound and its product with Q go through F, never forming it
                # (2 s^2 o instead of s^2 o + s^3 multiplications, s > o the two sizes)
                F = Pg if side == 0 else Pg.T
                ell = gram_norm_lower_bound(F, k, generator) + other
                _running_bound_(L, ell, beta_l)
                Q.sub_(lr / L * (F @ (F.T @ Q) - other * Q))
            else:
                term = Pg @ Pg.T if side == 0 else Pg.T @ Pg
                ell = norm_lower_bound(term, k, generator) + other
                _running_bound_(L, ell, beta_l)
                term.diagonal().sub_(other)
                Q.sub_(lr / L * (term @ Q))
            procrustes_step(Q, k, generator)
        else:
            term = (Pg * Pg).sum(dim=1 - side)
            ell = term.amax() + other
            _running_bound_(L, ell, beta_l)
            Q.mul_(1 - lr / L * (term - other))


def apply_preconditioner(Qs: Sequence[Tensor], G: Tensor) -> Tensor:
    r"""$P_l G P_r$ (or $q^2 G$ for a vector)."""
    return _precondition(Qs, G)
