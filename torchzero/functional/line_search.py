r"""Line searches on a scalar function $\phi(a) = f(x - a\,d)$ (stateless, host-side floats).

The searches take ``phi(a) -> (phi(a), phi'(a))`` (or only the value, for backtracking) and
$\phi(0)$, $\phi'(0)$, and return the step $a$ they accept (``None`` if none). A non-finite
value at a trial point counts as "too far": the searches step back from it.

References:
    Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Springer.
    Algorithms 3.5 (bracketing) and 3.6 (zoom), the interpolation of Section 3.5.
"""
from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["armijo", "backtracking", "cubic_minimizer", "strong_wolfe"]


def armijo(f0: float, g0: float, a: float, fa: float, c: float) -> bool:
    r"""The sufficient decrease (Armijo) condition $\phi(a) \le \phi(0) + c\,a\,\phi'(0)$."""
    return math.isfinite(fa) and fa <= f0 + c * a * g0


def backtracking(
    phi: Callable[[float], float],
    f0: float,
    g0: float,
    init: float = 1.0,
    beta: float = 0.5,
    c: float = 1e-4,
    maxiter: int = 10,
    condition: str = "armijo",
) -> tuple[float, float] | None:
    r"""Tries $a = \text{init}, \text{init}\,\beta, \text{init}\,\beta^2, \dots$ and returns the first
    ``(a, phi(a))`` that satisfies ``condition`` (``"armijo"``: :func:`armijo`; ``"decrease"``:
    $\phi(a) < \phi(0)$), or ``None`` after ``maxiter`` evaluations.

    Example:
        >>> backtracking(lambda a: (1 - a) ** 2, f0=1.0, g0=-2.0, init=4.0)
        (1.0, 0.0)
    """
    a = init
    for _ in range(maxiter):
        fa = phi(a)
        ok = armijo(f0, g0, a, fa, c) if condition == "armijo" else (math.isfinite(fa) and fa < f0)
        if ok:
            return a, fa
        a *= beta
    return None


def cubic_minimizer(a: float, fa: float, ga: float, b: float, fb: float, gb: float, lo: float, hi: float) -> float:
    r"""The minimizer of the cubic that interpolates $\phi$ and $\phi'$ at $a$ and $b$, clamped
    to ``[lo, hi]`` (Nocedal & Wright, eq. 3.59); the middle of ``[lo, hi]`` when the cubic has
    no minimizer there or a value is not finite."""
    mid = 0.5 * (lo + hi)
    if not all(math.isfinite(v) for v in (a, fa, ga, b, fb, gb)) or a == b:
        return mid
    d1 = ga + gb - 3 * (fa - fb) / (a - b)
    disc = d1 * d1 - ga * gb
    if disc < 0:
        return mid
    d2 = math.copysign(math.sqrt(disc), b - a)
    denom = gb - ga + 2 * d2
    if denom == 0:
        return mid
    x = b - (b - a) * (gb + d2 - d1) / denom
    if not math.isfinite(x):
        return mid
    return min(max(x, lo), hi)


def _quadratic(a: float, fa: float, ga: float, b: float, fb: float, lo: float, hi: float) -> float:
    """The minimizer of the parabola through phi(a), phi'(a) and phi(b), clamped to [lo, hi]."""
    denom = 2 * (fb - fa - ga * (b - a))
    if not all(math.isfinite(v) for v in (fa, ga, fb)) or denom <= 0:
        return 0.5 * (lo + hi)
    x = a - ga * (b - a) ** 2 / denom
    return min(max(x, lo), hi) if math.isfinite(x) else 0.5 * (lo + hi)


def _interpolate(kind: str, a: float, fa: float, ga: float, b: float, fb: float, gb: float, lo: float, hi: float) -> float:
    if kind == "bisection":
        return 0.5 * (lo + hi)
    if kind == "quadratic":
        return _quadratic(a, fa, ga, b, fb, lo, hi)
    cubic = cubic_minimizer(a, fa, ga, b, fb, gb, lo, hi)
    if fb - fa > 100 * abs(ga * (b - a)):
        # the far end is far worse than the slope predicts (an overshoot by orders of magnitude,
        # a function that grows faster than a cubic, whose minimizer then sits near the
        # midpoint): of the cubic's and the parabola's minimizers, the one nearer the better end
        quad = _quadratic(a, fa, ga, b, fb, lo, hi)
        return cubic if abs(cubic - a) <= abs(quad - a) else quad
    return cubic


def strong_wolfe(
    phi: Callable[[float], tuple[float, float]],
    f0: float,
    g0: float,
    a_init: float = 1.0,
    c1: float = 1e-4,
    c2: float = 0.9,
    a_max: float = 1e12,
    maxiter: int = 25,
    maxzoom: int = 10,
    maxeval: int | None = None,
    tol_change: float = 1e-9,
    interpolation: str = "cubic",
    d_norm: float | Callable[[], float] = 1.0,
) -> tuple[float, float, float] | None:
    r"""A step $a$ satisfying the strong Wolfe conditions

    $$
    \phi(a) \le \phi(0) + c_1 a\, \phi'(0), \qquad |\phi'(a)| \le c_2\, |\phi'(0)|,
    $$

    found by bracketing (Algorithm 3.5: the trial step grows by interpolation, between
    $a_{i} + 0.01(a_i - a_{i-1})$ and $10\,a_i$, capped at ``a_max``) and zooming
    (Algorithm 3.6: the bracket shrinks by ``interpolation``, ``"cubic"`` by default). Needs a
    descent direction, $\phi'(0) < 0$.

    Returns:
        ``(a, phi(a), phi'(a))``, or ``None`` when no step was found within ``maxiter``
        bracketing steps, ``maxzoom`` zoom steps or ``maxeval`` evaluations, or when the bracket
        shrank below ``tol_change`` in $x$: its width times ``d_norm``, $\max|d|$ (a number, or
        a function called once when needed), as ``torch.optim.LBFGS`` measures it. (A width in
        $a$ alone would stop a search along a long direction while its points still differ.)

    Example:
        On $\phi(a) = (a - 3)^2$, $a = 1$ already satisfies the conditions with $c_2 = 0.9$;
        with $c_2 = 0.1$ the cubic extrapolation from it lands on the minimizer:

        >>> strong_wolfe(lambda a: ((a - 3) ** 2, 2 * (a - 3)), f0=9.0, g0=-6.0)
        (1.0, 4.0, -4.0)
        >>> strong_wolfe(lambda a: ((a - 3) ** 2, 2 * (a - 3)), f0=9.0, g0=-6.0, c2=0.1)
        (3.0, 0.0, 0.0)
    """
    evals = 0
    budget = math.inf if maxeval is None else maxeval
    norm: list[float] = []  # d_norm, once known

    def too_narrow(width: float) -> bool:
        if not norm:
            norm.append(float(d_norm() if callable(d_norm) else d_norm))
        return width * norm[0] < tol_change

    def zoom(lo: float, f_lo: float, g_lo: float, hi: float, f_hi: float, g_hi: float) -> tuple[float, float, float] | None:
        nonlocal evals
        for _ in range(maxzoom):
            if evals >= budget or too_narrow(abs(hi - lo)):
                return None
            left, right = min(lo, hi), max(lo, hi)
            width = right - left
            # keep the trial away from the ends, so the bracket keeps shrinking
            a = _interpolate(interpolation, lo, f_lo, g_lo, hi, f_hi, g_hi, left + 0.1 * width, right - 0.1 * width)
            fa, ga = phi(a)
            evals += 1
            if not armijo(f0, g0, a, fa, c1) or fa >= f_lo:
                hi, f_hi, g_hi = a, fa, ga
                continue
            if abs(ga) <= -c2 * g0:
                return a, fa, ga
            if ga * (hi - lo) >= 0:
                hi, f_hi, g_hi = lo, f_lo, g_lo
            lo, f_lo, g_lo = a, fa, ga
        return None

    a_prev, f_prev, g_prev = 0.0, f0, g0
    a = min(a_init, a_max)
    for i in range(maxiter):
        if evals >= budget:
            return None
        fa, ga = phi(a)
        evals += 1
        if not armijo(f0, g0, a, fa, c1) or (i > 0 and fa >= f_prev):
            return zoom(a_prev, f_prev, g_prev, a, fa, ga)
        if abs(ga) <= -c2 * g0:
            return a, fa, ga
        if ga >= 0:
            return zoom(a, fa, ga, a_prev, f_prev, g_prev)
        if a >= a_max:
            return None
        lo, hi = a + 0.01 * (a - a_prev), min(10 * a, a_max)
        a_next = _interpolate(interpolation, a_prev, f_prev, g_prev, a, fa, ga, lo, hi) if interpolation != "bisection" else min(2 * a, a_max)
        a_prev, f_prev, g_prev = a, fa, ga
        a = a_next
    return None
