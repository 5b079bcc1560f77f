"""``Backtracking``: the Armijo backtracking line search."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...functional.line_search import backtracking
from ...utils.validation import MAX_ITERATIONS, check_bool, check_choice, check_int, check_number
from .line_search import LineSearch, Trials

__all__ = ["Backtracking"]

CONDITIONS = ("armijo", "decrease")


def check_backtracking_settings(s: Mapping[str, Any], owner: str) -> None:
    """Checks ``init``, ``beta``, ``c``, ``condition`` and ``maxiter``, where present."""
    if "init" in s:
        check_number("init", s["init"], owner=owner, min=0.0, min_inclusive=False)
    if "beta" in s:
        check_number("beta", s["beta"], owner=owner, min=0.0, max=1.0, min_inclusive=False, max_inclusive=False)
    if "c" in s:
        check_number("c", s["c"], owner=owner, min=0.0, max=1.0, max_inclusive=False)
    if "condition" in s:
        check_choice("condition", s["condition"], CONDITIONS, owner=owner)
    if "maxiter" in s:
        check_int("maxiter", s["maxiter"], owner=owner, min=1, max=MAX_ITERATIONS)


class Backtracking(LineSearch):
    r"""Backtracking line search: the first of $a = \text{init}\cdot\beta^k$, $k = 0, 1, \dots$
    that decreases $\phi(a) = f(x - a\,d)$ enough.

    With ``condition="armijo"`` the step must satisfy
    $\phi(a) \le \phi(0) + c\, a\, \phi'(0)$; with ``"decrease"``, $\phi(a) < \phi(0)$. Each trial
    calls ``closure(backward=False)`` (no gradient). A non-finite loss at a trial point is
    rejected like any other. After ``maxiter`` rejected trials the step is 0 (the parameters
    stay); with ``adaptive`` the next search then starts from the last step tried, and the
    start grows back by $1/\beta$ per successful search, up to ``init``.

    Args:
        init: the first step tried, ``> 0`` (default: ``1.0``).
        beta: the factor between trials, in ``(0, 1)`` (default: ``0.5``).
        c: the sufficient-decrease constant, in ``[0, 1)`` (default: ``1e-4``).
        condition: ``"armijo"`` (default) or ``"decrease"``.
        maxiter: trials per step at most (default: ``10``).
        adaptive: carry a failed search's smallest step over to the next step (default: ``True``).

    Example:
        Gradient descent with Armijo backtracking:

        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([3.0, -4.0]))
        >>> opt = tz.Modular([x], tz.m.Backtracking())
        >>> def closure(backward=True):
        ...     loss = (x ** 2).sum()
        ...     if backward:
        ...         opt.zero_grad()
        ...         loss.backward()
        ...     return loss
        >>> loss = opt.step(closure)
        >>> x.detach()  # the first trial, a = 1, overshoots to (-3, 4); a = 0.5 lands at 0
        tensor([0., 0.])

    References:
        Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Algorithm 3.1.
    """

    def __init__(
        self,
        init: float = 1.0,
        beta: float = 0.5,
        c: float = 1e-4,
        condition: str = "armijo",
        maxiter: int = 10,
        adaptive: bool = True,
    ):
        super().__init__(dict(init=init, beta=beta, c=c, condition=condition, maxiter=maxiter, adaptive=adaptive))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        check_backtracking_settings(s, "Backtracking")
        if "adaptive" in s:
            check_bool("adaptive", s["adaptive"], owner="Backtracking")

    def search(self, trials: Trials, s: dict[str, Any]) -> float:
        gs = self.global_state
        start = min(gs.get("start", s["init"]), s["init"]) if s["adaptive"] else s["init"]
        found = backtracking(trials.value, trials.f0, trials.g0, start, s["beta"], s["c"], s["maxiter"], s["condition"])
        if found is None:
            if s["adaptive"]:
                gs["start"] = start * s["beta"] ** s["maxiter"]
            return 0.0
        if s["adaptive"]:
            gs["start"] = min(s["init"], start / s["beta"])
        return found[0]
