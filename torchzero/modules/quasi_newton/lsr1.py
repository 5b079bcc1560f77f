"""``LSR1``: limited-memory symmetric rank one, in its compact form."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from .lbfgs import LBFGS

__all__ = ["LSR1"]


def compact_sr1(q: Tensor, s: list[Tensor], y: list[Tensor]) -> Tensor | None:
    r"""$H q$ for the SR1 inverse-Hessian approximation of the pairs, oldest first, from
    $H_0 = \gamma I$, $\gamma = \lVert s_k\rVert / \lVert y_k\rVert$ of the newest pair, in compact form (the
    inverse analogue of Nocedal & Wright, eq. 7.30). (BFGS's $s\cdot y / y\cdot y$ would make the
    newest pair's SR1 denominator $(s - \gamma y)\cdot y$ exactly 0.)

    $$
    H = \gamma I + W M^{-1} W^T, \quad W = S - \gamma Y, \quad M = D + L + L^T - \gamma\, Y^T Y
    $$

    with $D$ the diagonal and $L$ the strictly lower triangle of $S^T Y$. ``None`` when $M$ is
    singular."""
    S, Y = torch.stack(s, 1), torch.stack(y, 1)
    gamma = float(s[-1].norm() / y[-1].norm())
    if not (gamma > 0 and gamma < float("inf")):
        gamma = 1.0
    sty = S.T @ Y
    lower = torch.tril(sty, -1)
    m = torch.diag(torch.diagonal(sty)) + lower + lower.T - gamma * (Y.T @ Y)
    w = S - gamma * Y
    try:
        coef = torch.linalg.solve(m, w.T @ q)
    except RuntimeError:  # singular
        return None
    return gamma * q + w @ coef


class LSR1(LBFGS):
    r"""Limited-memory SR1: the update becomes $H u$, with $H$ the symmetric-rank-one approximation
    of the inverse Hessian from the last ``history_size`` pairs (compact form, see
    :func:`compact_sr1`), all parameters as one vector.

    As :class:`LBFGS` (the same arguments, history and first step), except for the test a pair
    must pass: with $v = s - H y$ for the current $H$, the pair is skipped when
    $|v \cdot y| < \text{tol}\,\lVert y\rVert\,\lVert v\rVert$ (Nocedal & Wright, eq. 6.26). $H$ need not be
    positive definite: use a trust region, or ``StrongWolfe(plus_minus=True)``, which searches
    along $-d$ when $d$ is not a descent direction.

    Args:
        history_size: pairs kept, ``>= 1`` (default: ``10``).
        tol: $r$ of the skipping rule (default: ``1e-8``).
        tol_reset: clear the history when a pair is skipped (default: ``False``).
        gtol: pairs with $\max |y| \le$ ``gtol`` are skipped (default: ``1e-10``).
        update_freq: add a pair every ``update_freq`` steps (default: ``1``).
        inner: modules applied to the update after the history is updated and before $H$
            (default: ``None``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.LSR1(), tz.m.StrongWolfe(plus_minus=True))

    References:
        Byrd, R. H., Nocedal, J., & Schnabel, R. B. (1994). Representations of quasi-Newton
        matrices and their use in limited memory methods. Mathematical Programming, 63, 129-156.
    """

    def __init__(
        self,
        history_size: int = 10,
        tol: float | None = 1e-8,
        tol_reset: bool = False,
        gtol: float | None = 1e-10,
        update_freq: int = 1,
        inner: Any = None,
    ):
        super().__init__(history_size, tol, tol_reset, gtol, update_freq, inner)

    def accept_pair(self, s: Tensor, y: Tensor, sy: Tensor, settings: Mapping[str, Any], yy: Tensor | None = None) -> bool:
        gs = self.global_state
        hy = compact_sr1(y.clone(), gs["s"], gs["y"]) if gs["s"] else y.clone()
        if hy is None:
            return False
        v = s - hy
        vy = v.dot(y)
        return bool(vy.abs() >= (settings["tol"] or 0.0) * y.norm() * v.norm()) and bool(vy != 0)

    def precondition(self, q: Tensor) -> Tensor:
        gs = self.global_state
        out = compact_sr1(q, gs["s"], gs["y"])
        return q if out is None else out
