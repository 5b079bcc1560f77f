r"""Shampoo's math (Gupta, Koren & Singer, 2018; blocking as Anil et al., 2020): Kronecker factors
of the gradient's second moment, their inverse roots, and the blocks of large tensors.

For a tensor $G$ with dims $d_1, \dots, d_k$, factor $i$ accumulates $G_{(i)} G_{(i)}^\top$
($G$ unfolded along dim $i$, a $d_i \times d_i$ matrix) and the preconditioned tensor is
$G \times_1 H_1^{-1/e} \cdots \times_k H_k^{-1/e}$ (for a matrix, $H_L^{-1/e} G H_R^{-1/e}$),
with $e = 2k$ in the paper.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .soap import mode_products

__all__ = ["ROOT_METHODS", "inverse_root", "inverse_root_eigh", "inverse_root_newton", "blocks", "precondition"]

ROOT_METHODS = ("eigh", "newton")


def inverse_root_eigh(A: Tensor, p: float, reg: float) -> Tensor:
    r"""$(A + \text{reg}\,I)^{-1/p}$ of a symmetric positive semi-definite $A$ by ``torch.linalg.eigh``.

    Eigenvalues below $\max(\text{reg}, \epsilon_{\text{dtype}} \lambda_{\max})$ (rounding can make a
    zero one negative) are raised to that floor. Computed in float64 for float64 input, else
    float32; float64 again if the first try fails to converge.
    """
    dtype = A.dtype
    work = torch.float64 if dtype == torch.float64 else torch.float32
    M = A.to(work)
    M = M + reg * torch.eye(M.shape[0], dtype=work, device=M.device)
    try:
        lam, V = torch.linalg.eigh(M)
    except RuntimeError:  # torch.linalg.LinAlgError
        lam, V = torch.linalg.eigh(M.double())
        lam, V = lam.to(work), V.to(work)
    floor = max(reg, float(torch.finfo(work).eps) * float(lam.abs().max().clamp_min(0)))
    lam = lam.clamp_min(floor if floor > 0 else torch.finfo(work).tiny)
    return ((V * lam.pow(-1.0 / p)) @ V.mT).to(dtype)


def inverse_root_newton(A: Tensor, p: int, reg: float, max_iter: int = 100, tol: float | None = None) -> Tensor:
    r"""$(A + \text{reg}\,I)^{-1/p}$ by the coupled Newton iteration (Guo & Higham, 2006), matmuls only.

    With $c = (2\|A\|_F/(p+1))^{1/p}$, $X_0 = I/c$, $M_0 = A/c^p$, then
    $T = ((p+1)I - M)/p,\ X \leftarrow X T,\ M \leftarrow T^p M$ until
    $\|M - I\|_{\max} <$ ``tol`` ($10^{-12}$ in float64, $10^{-5}$ otherwise) or ``max_iter``
    iterations; $M \to I$ and $X \to A^{-1/p}$. ``p`` must be a positive integer.
    """
    dtype = A.dtype
    work = torch.float64 if dtype == torch.float64 else torch.float32
    n = A.shape[0]
    eye = torch.eye(n, dtype=work, device=A.device)
    M = A.to(work) + reg * eye
    if tol is None:
        tol = 1e-12 if work == torch.float64 else 1e-5
    norm = float(torch.linalg.matrix_norm(M))
    if norm == 0.0 or not math.isfinite(norm):
        return inverse_root_eigh(A, p, reg)
    c = (2 * norm / (p + 1)) ** (1.0 / p)
    X = eye / c
    M = M / c**p
    for _ in range(max_iter):
        T = ((p + 1) * eye - M) / p
        X = X @ T
        M = torch.linalg.matrix_power(T, p) @ M
        if float((M - eye).abs().max()) < tol:
            break
    return X.to(dtype)


def inverse_root(A: Tensor, p: float, reg: float, method: str = "eigh") -> Tensor:
    """:func:`inverse_root_eigh` or :func:`inverse_root_newton` (``p`` rounded to an integer there)."""
    if method == "newton":
        return inverse_root_newton(A, int(round(p)), reg)
    return inverse_root_eigh(A, p, reg)


def blocks(shape: Sequence[int], block_size: int | None) -> list[tuple[slice, ...]]:
    """The blocks of a tensor of ``shape``: every dim cut into pieces of at most ``block_size``
    (the last one shorter), in row-major order; one block (the whole tensor) for ``None``."""
    if block_size is None:
        return [tuple(slice(0, s) for s in shape)]
    cuts = [[slice(a, min(a + block_size, s)) for a in range(0, max(s, 1), block_size)] for s in shape]
    return [tuple(c) for c in itertools.product(*cuts)]


def precondition(x: Tensor, roots: Sequence[Tensor | None]) -> Tensor:
    r"""$X \times_1 P_1 \cdots \times_k P_k$ (identity along dims whose root is ``None``); the
    $P_i$ are symmetric (:func:`~torchzero.functional.soap.mode_products`)."""
    return mode_products(x, roots, transpose=True)
