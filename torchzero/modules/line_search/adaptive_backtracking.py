"""``AdaptiveBacktracking``: Armijo backtracking whose first trial adapts from step to step."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ...functional.line_search import backtracking
from ...utils.validation import MAX_ITERATIONS, check_int, check_number
from .backtracking import check_backtracking_settings
from .line_search import LineSearch, Trials

__all__ = ["AdaptiveBacktracking"]


class AdaptiveBacktracking(LineSearch):
    r"""Backtracking line search (as :class:`Backtracking`) whose first trial $a_0 = \text{init}\cdot\sigma$
    adapts so that a step is accepted after about $T$ = ``target_iters`` reductions by $\beta$ = ``beta``.

    After a search that accepted $a$: if the first trial was accepted,
    $\sigma \leftarrow \sigma \nu^{T}$ with $\nu$ = ``nplus`` (larger steps are tried next time); otherwise $\sigma$ moves
    towards $\sigma^* = a / (\beta^{T}\,\text{init})$, the scale from which $T$ reductions reach
    $a$: $\sigma \leftarrow \sigma + (1 - \kappa)(\sigma^* - \sigma)$ with $\kappa$ = ``scale_beta``.
    After a failed search (step 0) the next one starts below the smallest step tried:
    $\sigma \leftarrow \sigma\, \beta^{m}$, $m$ = ``maxiter``. The scale is in ``opt.stats()`` as
    ``"AdaptiveBacktracking/scale"``.

    Args:
        init: the first trial before any adaptation, ``> 0`` (default: ``1.0``).
        beta: the factor between trials, in ``(0, 1)`` (default: ``0.5``).
        c: the sufficient-decrease constant, in ``[0, 1)`` (default: ``1e-4``).
        condition: ``"armijo"`` (default) or ``"decrease"``.
        maxiter: trials per step at most (default: ``20``).
        target_iters: reductions aimed for, ``>= 0`` (default: ``1``).
        nplus: growth of the scale after an accepted first trial, ``>= 1`` (default: ``2.0``).
        scale_beta: how slowly the scale follows its target, in ``[0, 1)`` (default: ``0.0``:
            at once).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Adam(), tz.m.AdaptiveBacktracking())
    """

    def __init__(
        self,
        init: float = 1.0,
        beta: float = 0.5,
        c: float = 1e-4,
        condition: str = "armijo",
        maxiter: int = 20,
        target_iters: int = 1,
        nplus: float = 2.0,
        scale_beta: float = 0.0,
    ):
        defaults = dict(init=init, beta=beta, c=c, condition=condition, maxiter=maxiter, target_iters=target_iters, nplus=nplus, scale_beta=scale_beta)
        super().__init__(defaults)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "AdaptiveBacktracking"
        check_backtracking_settings(s, o)
        if "target_iters" in s:
            check_int("target_iters", s["target_iters"], owner=o, min=0, max=MAX_ITERATIONS)
        if "nplus" in s:
            check_number("nplus", s["nplus"], owner=o, min=1.0)
        if "scale_beta" in s:
            check_number("scale_beta", s["scale_beta"], owner=o, min=0.0, max=1.0, max_inclusive=False)

    def search(self, trials: Trials, s: dict[str, Any]) -> float:
        gs = self.global_state
        scale = gs.get("scale", 1.0)
        start = s["init"] * scale
        found = backtracking(trials.value, trials.f0, trials.g0, start, s["beta"], s["c"], s["maxiter"], s["condition"])
        if found is None:
            scale *= s["beta"] ** s["maxiter"]
            a = 0.0
        else:
            a = found[0]
            if a == start:
                scale *= s["nplus"] ** s["target_iters"]
            else:
                target = a / (s["beta"] ** s["target_iters"] * s["init"])
                scale += (1 - s["scale_beta"]) * (target - scale)
        gs["scale"] = min(max(scale, 1e-30), 1e30)
        self.record_stats(scale=torch.tensor(gs["scale"]))
        return a

