r"""Orthogonalization of matrices (the "zeroth power" $UV^\top$ of $G = U\Sigma V^\top$), for Muon.

Tensors with two or more dims are viewed as matrices ``(shape[0], -1)``; matrices of the same
shape and dtype are orthogonalized together as one batch.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["NS_COEFFICIENTS", "newton_schulz", "svd_orthogonalize", "orthogonalize", "ORTHOGONALIZE_METHODS"]

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
"""The quintic Newton-Schulz coefficients $(a, b, c)$ of Muon (Jordan et al., 2024)."""

ORTHOGONALIZE_METHODS = ("newton-schulz", "svd")


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _matmul_add(x: Tensor, m1: Tensor, m2: Tensor, *, beta: float = 1.0, alpha: float = 1.0) -> Tensor:
    """``beta * x + alpha * m1 @ m2`` for any number of batch dims (``addmm``/``baddbmm`` take 2 or 3)."""
    return beta * x + alpha * (m1 @ m2)


def newton_schulz(G: Tensor, steps: int = 5) -> Tensor:
    r"""Approximately orthogonalizes the matrices in the last two dims of ``G`` (a new tensor).

    $X_0 = G / (\|G\|_F + 10^{-7})$, then ``steps`` times
    $A = X X^\top,\ X \leftarrow aX + (bA + cA^2) X$ with the quintic coefficients
    $(a, b, c) = (3.4445, -4.7750, 2.0315)$, on the wide orientation (transposed when there are
    more rows than columns). The iteration maps each singular value $\sigma \in (0, 1]$ near 1
    (roughly into $[0.7, 1.2]$) and keeps the singular vectors; zero stays zero. Computed in
    float32 (float64 for float64 input) and returned in the dtype of ``G``.
    """
    a, b, c = NS_COEFFICIENTS
    X = G.to(_compute_dtype(G.dtype))
    tall = X.size(-2) > X.size(-1)
    if tall:
        X = X.mT
    X = X / (torch.linalg.matrix_norm(X, keepdim=True) + 1e-7)
    fma = torch.addmm if X.ndim == 2 else torch.baddbmm if X.ndim == 3 else _matmul_add
    for _ in range(steps):
        A = X @ X.mT
        B = fma(A, A, A, beta=b, alpha=c)  # b A + c A^2
        X = fma(X, B, X, beta=a)  # a X + B X
    if tall:
        X = X.mT
    return X.to(G.dtype)


def svd_orthogonalize(G: Tensor) -> Tensor:
    r"""Exactly orthogonalizes the matrices in the last two dims of ``G``: $U \operatorname{diag}(\sigma_i > \tau) V^\top$.

    Directions whose singular value is below $\tau = \sigma_{\max} \max(m, n)\, \epsilon_{\text{dtype}}$
    are dropped (they are numerical noise; a zero matrix stays zero). Computed in float32
    (float64 for float64 input). ``torch.linalg.svd`` synchronizes with the host on CUDA.
    """
    X = G.to(_compute_dtype(G.dtype))
    U, S, Vh = torch.linalg.svd(X, full_matrices=False)
    tol = S.amax(-1, keepdim=True) * (max(X.shape[-2:]) * torch.finfo(X.dtype).eps)
    mask = (S > tol).to(X.dtype)
    return ((U * mask.unsqueeze(-2)) @ Vh).to(G.dtype)


def orthogonalize(
    tensors: Sequence[Tensor],
    ns_steps: int = 5,
    method: str = "newton-schulz",
    dual_norm_correction: bool = False,
    adjust_lr: bool = False,
) -> list[Tensor]:
    r"""Orthogonalizes every tensor with at least 2 dims and at least one element.

    Each such tensor is viewed as the matrix $G$ of shape ``(shape[0], numel // shape[0])``;
    the result $O \approx UV^\top$ has the shape of the tensor. Other tensors (0-D, 1-D, empty)
    are returned as they are (the same objects).

    Args:
        tensors: the tensors.
        ns_steps: Newton-Schulz iterations (``method="newton-schulz"``).
        method: ``"newton-schulz"`` (:func:`newton_schulz`) or ``"svd"`` (:func:`svd_orthogonalize`).
        dual_norm_correction: scale by $\langle G, O \rangle_F$ (about the nuclear norm of $G$).
        adjust_lr: scale by $\sqrt{\max(1, \text{rows}/\text{cols})}$.

    Returns:
        A new list.
    """
    out = list(tensors)
    batches: dict[tuple[torch.Size, torch.dtype, torch.device], list[int]] = {}
    for i, t in enumerate(tensors):
        if t.ndim >= 2 and t.numel() > 0:
            shape = torch.Size((t.shape[0], t.numel() // t.shape[0]))
            batches.setdefault((shape, t.dtype, t.device), []).append(i)
    for (shape, _, _), idx in batches.items():
        G = torch.stack([tensors[i].reshape(shape) for i in idx]) if len(idx) > 1 else tensors[idx[0]].reshape(shape)
        O = newton_schulz(G, ns_steps) if method == "newton-schulz" else svd_orthogonalize(G)
        if dual_norm_correction:
            cd = _compute_dtype(G.dtype)
            dual = (G.to(cd) * O.to(cd)).sum(dim=(-2, -1), keepdim=True)
            O = (O.to(cd) * dual).to(G.dtype)
        if adjust_lr:
            rows, cols = shape
            scale = max(1.0, rows / cols) ** 0.5
            if scale != 1.0:
                O = O * scale
        parts = O.unbind(0) if len(idx) > 1 else [O]
        for i, o in zip(idx, parts):
            out[i] = o.reshape(tensors[i].shape)
    return out
