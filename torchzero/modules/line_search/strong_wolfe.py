"""``StrongWolfe``: bracketing and zoom with interpolation (Nocedal & Wright, Algorithms 3.5-3.6)."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ...functional.line_search import strong_wolfe
from ...utils.validation import MAX_ITERATIONS, check_bool, check_choice, check_int, check_number
from .line_search import LineSearch, Trials

__all__ = ["StrongWolfe"]

A_INITS = ("fixed", "first-order", "quadratic", "quadratic-clip", "previous")
INTERPOLATIONS = ("cubic", "quadratic", "bisection")


class StrongWolfe(LineSearch):
    r"""Line search for a step $a$ along $x - a\,d$ satisfying the strong Wolfe conditions.

    With $\phi(a) = f(x - a\,d)$:

    $$
    \phi(a) \le \phi(0) + c_1 a\, \phi'(0), \qquad |\phi'(a)| \le c_2\, |\phi'(0)|
    $$

    The first trial step comes from ``a_init`` (Nocedal & Wright, Section 3.5), with
    $\phi'_{k}(0)$ the slope at the start of step $k$ and $a_{k-1}$ the previous step:

    - ``"fixed"``: ``init_value``;
    - the others, before they have history: ``init_value`` divided by $\lVert d\rVert_2$ when
      that is above 1 (a first step of length at most ``init_value``);
    - ``"first-order"``: $a_{k-1}\,\phi'_{k-1}(0) / \phi'_k(0)$;
    - ``"quadratic"``: $2 (f_k - f_{k-1}) / \phi'_k(0)$; ``"quadratic-clip"``: the same,
      at most $\min(1, 1.01\,a)$;
    - ``"previous"``: $a_{k-1}$.

    Each trial calls ``closure(backward=True)``. A non-finite loss at a trial point is treated as
    a step too long: the search backtracks from it. When no step satisfies the conditions, the
    step is 0 (the parameters stay), or with ``fallback`` the tried step of lowest loss, if it is
    lower than $\phi(0)$; with ``adaptive`` the next first trial is then halved.

    Args:
        c1: sufficient-decrease constant, in ``(0, 1)`` (default: ``1e-4``).
        c2: curvature constant, in ``(c1, 1)``; ``0.1`` for conjugate gradient (default: ``0.9``).
        a_init: how the first trial step is chosen, see above (default: ``"fixed"``).
        a_max: the largest step tried (default: ``1e12``).
        init_value: the first trial step of ``"fixed"``, and of the others when they have no
            history yet (default: ``1``).
        maxiter: bracketing iterations (default: ``25``).
        maxzoom: zoom iterations (default: ``10``).
        maxeval: closure calls per step at most, ``None`` for no limit (default: ``None``).
        tol_change: the search stops when the bracket is narrower than this in $x$: its width
            in $a$ times $\max|d|$, as ``torch.optim.LBFGS`` measures it (default: ``1e-9``).
        interpolation: ``"cubic"`` (default), ``"quadratic"`` or ``"bisection"``.
        adaptive: halve the first trial step after a failed search, reset it after a success
            (default: ``True``).
        fallback: on failure, take the tried step of lowest loss if it decreased the loss
            (default: ``False``).
        plus_minus: when the update is not a descent direction, search along $-d$ instead of
            giving up (default: ``False``).

    Example:
        L-BFGS with a strong-Wolfe line search, as ``torch.optim.LBFGS(line_search_fn="strong_wolfe")``
        (whose first step ``LBFGS(first_step="torch")`` reproduces):

        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([-1.5, 2.0]))
        >>> opt = tz.Modular([x], tz.m.LBFGS(), tz.m.StrongWolfe())
        >>> def closure(backward=True):
        ...     loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        ...     if backward:
        ...         opt.zero_grad()
        ...         loss.backward()
        ...     return loss
        >>> for _ in range(60):
        ...     loss = opt.step(closure)
        >>> bool(loss < 1e-8)
        True

    References:
        Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Algorithms 3.5
        and 3.6, Section 3.5.
    """

    def __init__(
        self,
        c1: float = 1e-4,
        c2: float = 0.9,
        a_init: str = "fixed",
        a_max: float = 1e12,
        init_value: float = 1,
        maxiter: int = 25,
        maxzoom: int = 10,
        maxeval: int | None = None,
        tol_change: float = 1e-9,
        interpolation: str = "cubic",
        adaptive: bool = True,
        fallback: bool = False,
        plus_minus: bool = False,
    ):
        defaults = dict(
            c1=c1, c2=c2, a_init=a_init, a_max=a_max, init_value=init_value, maxiter=maxiter, maxzoom=maxzoom,
            maxeval=maxeval, tol_change=tol_change, interpolation=interpolation, adaptive=adaptive, fallback=fallback,
            plus_minus=plus_minus,
        )
        super().__init__(defaults)
        if c2 <= c1:
            raise ValueError(f"StrongWolfe: c2 must be larger than c1, got c1={c1!r}, c2={c2!r}")

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "StrongWolfe"
        for key in ("c1", "c2"):
            if key in s:
                check_number(key, s[key], owner=o, min=0.0, max=1.0, min_inclusive=False, max_inclusive=False)
        for key in ("a_max", "init_value", "tol_change"):
            if key in s:
                check_number(key, s[key], owner=o, min=0.0, min_inclusive=key == "tol_change")
        for key in ("maxiter", "maxzoom"):
            if key in s:
                check_int(key, s[key], owner=o, min=1, max=MAX_ITERATIONS)
        if "maxeval" in s and s["maxeval"] is not None:
            check_int("maxeval", s["maxeval"], owner=o, min=1, max=MAX_ITERATIONS)
        if "a_init" in s:
            check_choice("a_init", s["a_init"], A_INITS, owner=o)
        if "interpolation" in s:
            check_choice("interpolation", s["interpolation"], INTERPOLATIONS, owner=o)
        for key in ("adaptive", "fallback", "plus_minus"):
            if key in s:
                check_bool(key, s[key], owner=o)

    def _first_trial(self, s: Mapping[str, Any], f0: float, g0: float, trials: Trials) -> float:
        gs, kind = self.global_state, s["a_init"]
        a = float(s["init_value"])
        if kind != "fixed" and "a_prev" not in gs:  # no history yet: a step of length at most 1
            norm = math.sqrt(sum(float(d.double().pow(2).sum()) for d in trials.direction))
            if norm > 1:
                a = a / norm
        if kind == "previous" and "a_prev" in gs:
            a = gs["a_prev"]
        elif kind == "first-order" and "g_prev" in gs and gs["g_prev"] < 0:
            a = gs["a_prev"] * gs["g_prev"] / g0
        elif kind in ("quadratic", "quadratic-clip") and "f_prev" in gs and f0 < gs["f_prev"]:
            a = 2 * (f0 - gs["f_prev"]) / g0
            if kind == "quadratic-clip":
                a = min(1.0, 1.01 * a)
        if s["adaptive"]:
            a *= gs.get("initial_scale", 1.0)
        return a if math.isfinite(a) and a > 0 else float(s["init_value"])

    def search(self, trials: Trials, s: dict[str, Any]) -> float:
        f0, g0 = trials.f0, trials.g0
        a0 = self._first_trial(s, f0, g0, trials)
        tried: list[tuple[float, float]] = []

        def phi(a: float) -> tuple[float, float]:
            fa, ga = trials.value_and_slope(a)
            tried.append((fa, a))
            return fa, ga

        found = strong_wolfe(
            phi, f0, g0, a0, s["c1"], s["c2"], s["a_max"], s["maxiter"], s["maxzoom"], s["maxeval"], s["tol_change"], s["interpolation"],
            d_norm=trials.direction_max_abs,
        )
        a = None if found is None or not found[1] <= f0 else found[0]
        if a is None and s["fallback"] and tried and min(tried)[0] < f0:
            a = min(tried)[1]
        gs = self.global_state
        if a is None:
            if s["adaptive"]:
                gs["initial_scale"] = gs.get("initial_scale", 1.0) * 0.5
            return 0.0
        gs.update(initial_scale=1.0, a_prev=a, f_prev=f0, g_prev=g0)
        return a
