r"""SOAP's math (Vyas et al., 2024): Shampoo's Kronecker factors, their eigenbases, and the
rotations in and out of them, as stateless functions.

For a tensor $G$ with dims $d_1, \dots, d_k$ (after merging, see :func:`merged_shape`), factor
$i$ is the running average of $G_{(i)} G_{(i)}^\top$ ($G$ unfolded along dim $i$) and $Q_i$ its
eigenvectors, largest eigenvalue first. :func:`project` computes $G \times_1 Q_1^\top \cdots
\times_k Q_k^\top$ (for a matrix, $Q_L^\top G Q_R$), :func:`project_back` the inverse. Dims
larger than ``max_dim`` get no factor (identity).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["merged_shape", "factor_dims", "update_factors_", "eigenbases", "refresh_eigenbases", "mode_products", "project", "project_back"]


def merged_shape(shape: Sequence[int], max_dim: int) -> tuple[int, ...]:
    """Consecutive dims merged while their product stays ``<= max_dim`` (the SOAP authors'
    ``merge_dims``): ``(128, 64, 3, 3)`` with 2000 becomes ``(128, 576)``. A dim larger than
    ``max_dim`` stays on its own."""
    out: list[int] = []
    cur = 1
    for s in shape:
        if cur * s > max_dim:
            if cur > 1:
                out.append(cur)
                cur = s
            else:
                out.append(s)
                cur = 1
        else:
            cur *= s
    if cur > 1 or not out:
        out.append(cur)
    return tuple(out)


def factor_dims(shape: Sequence[int], max_dim: int, precondition_1d: bool) -> list[bool]:
    """Which dims of ``shape`` (already merged) get a factor: those of size ``<= max_dim``; a
    1-D tensor only with ``precondition_1d``; a 0-D tensor none."""
    if len(shape) == 1 and not precondition_1d:
        return [False]
    return [s <= max_dim for s in shape]


def _outer(g: Tensor, i: int) -> Tensor:
    """$G_{(i)} G_{(i)}^\top$: the contraction over every dim but ``i``."""
    other = [d for d in range(g.ndim) if d != i]
    return torch.tensordot(g, g, dims=(other, other))


def update_factors_(factors: Sequence[Tensor | None], g: Tensor, beta: float | None, decay: float | None = None) -> None:
    r"""$F_i \leftarrow \beta F_i + (1-\beta) G_{(i)}G_{(i)}^\top$ in place (a plain sum when
    ``beta`` is ``None``, after multiplying by ``1 - decay`` when given), for each factor that
    is not ``None``."""
    for i, f in enumerate(factors):
        if f is None:
            continue
        outer = _outer(g, i).to(f.dtype)
        if beta is None:
            if decay is not None:
                f.mul_(1 - decay)
            f.add_(outer)
        else:
            f.lerp_(outer, 1 - beta)


def _eigh(m: Tensor) -> Tensor:
    """Eigenvectors of a symmetric matrix, largest eigenvalue first (float64 if the first try fails)."""
    eye = torch.eye(m.shape[0], dtype=m.dtype, device=m.device)
    try:
        q = torch.linalg.eigh(m + 1e-30 * eye)[1]
    except RuntimeError:  # torch.linalg.LinAlgError: did not converge
        q = torch.linalg.eigh(m.double() + 1e-30 * eye.double())[1].to(m.dtype)
    return torch.flip(q, [1])


def eigenbases(factors: Sequence[Tensor | None]) -> list[Tensor | None]:
    """The eigenvectors $Q_i$ of each factor by ``torch.linalg.eigh``, largest eigenvalue first."""
    return [None if f is None else _eigh(f) for f in factors]


def refresh_eigenbases(factors: Sequence[Tensor | None], qs: Sequence[Tensor | None], exp_avg_sq: Tensor) -> tuple[list[Tensor | None], Tensor]:
    r"""One step of power iteration with QR, as SOAP refreshes its bases every
    ``precond_freq`` steps: per dim, the columns of $Q_i$ are sorted by the Rayleigh quotients
    $\operatorname{diag}(Q_i^\top F_i Q_i)$ (descending), and $Q_i \leftarrow \operatorname{qr}(F_i Q_i)$.
    ``exp_avg_sq`` (in the projected basis) is permuted along each dim to follow its columns.

    Returns:
        The new bases and the permuted ``exp_avg_sq`` (a new tensor).
    """
    out: list[Tensor | None] = []
    for i, (f, q) in enumerate(zip(factors, qs)):
        if f is None or q is None:
            out.append(None)
            continue
        est = torch.diag(q.T @ f @ q)
        order = torch.argsort(est, descending=True)
        exp_avg_sq = exp_avg_sq.index_select(i, order)
        q_new, _ = torch.linalg.qr(f @ q[:, order])
        out.append(q_new)
    return out, exp_avg_sq


def mode_products(x: Tensor, mats: Sequence[Tensor | None], transpose: bool) -> Tensor:
    r"""$X \times_1 M_1 \cdots \times_k M_k$ (``transpose``: the $M_i^\top$), identity along
    dims whose matrix is ``None``: dim $i$ of the result is $\sum_j X_{\dots j \dots} (M_i)_{j\,\cdot}$
    (or $(M_i)_{\cdot\, j}$); each step contracts the leading dim and appends the result's last."""
    for m in mats:
        if m is None:
            x = x.permute(*range(1, x.ndim), 0)
        else:
            x = torch.tensordot(x, m, dims=([0], [0 if transpose else 1]))
    return x


def project(x: Tensor, qs: Sequence[Tensor | None]) -> Tensor:
    r"""$X \times_1 Q_1^\top \cdots \times_k Q_k^\top$ (identity along dims without a basis)."""
    return mode_products(x, qs, transpose=True)


def project_back(x: Tensor, qs: Sequence[Tensor | None]) -> Tensor:
    r"""$X \times_1 Q_1 \cdots \times_k Q_k$, the inverse of :func:`project`."""
    return mode_products(x, qs, transpose=False)
