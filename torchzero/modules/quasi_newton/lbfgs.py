"""``LBFGS``: limited-memory BFGS on all parameters flattened together."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.transform import Context, Settings, States, Transform
from ...functional.lbfgs import two_loop
from ...utils.validation import MAX_BUFFER, check_bool, check_int, check_number
from .flat import flatten, layout, unflatten_, working_dtype

__all__ = ["LBFGS"]

class LBFGS(Transform):
    r"""Limited-memory BFGS: the update becomes $H u$, with $H$ the L-BFGS approximation of the
    inverse Hessian from the last ``history_size`` pairs.

    All parameters are one vector $x$ (curvature couples them). Each step, with $u$ the update
    this module receives (the gradient, or what earlier modules made of it):

    1. the pair $s = x_k - x_{k-1}$, $y = u_k - u_{k-1}$ joins the history unless
       $s \cdot y \le \text{tol}\,\lVert s\rVert\,\lVert y\rVert$ (no positive curvature; the
       test is relative, so it doesn't depend on the problem's scale) or $\max|y| \le$ ``gtol``; with
       ``tol_reset`` a rejected pair clears the history;
    2. ``inner`` modules, if any, transform $u$;
    3. $u \leftarrow H u$ by the two-loop recursion (Nocedal & Wright, Algorithm 7.4) with
       $H_0 = \frac{s\cdot y}{y \cdot y} I$ from the newest pair. With no pairs yet, the update is
       $u \cdot \min(1, 1/\lVert u\rVert_1)$, as ``torch.optim.LBFGS`` scales its first step.

    Use it with a line search, which finds the step length: followed by ``StrongWolfe()`` it is
    ``torch.optim.LBFGS(line_search_fn="strong_wolfe", max_iter=1)`` (one iteration per
    ``step``), except that torch rejects pairs by the absolute test $s\cdot y \le 10^{-10}$. The math is done in the widest dtype of the parameters (float32 for half
    precision). When the set of parameters that have gradients changes, the history is
    cleared.

    Args:
        history_size: pairs kept, ``>= 1`` (default: ``10``).
        tol: pairs with $s \cdot y \le \text{tol}\,\lVert s\rVert\,\lVert y\rVert$ are rejected (default: ``1e-10``).
        tol_reset: clear the history when a pair is rejected (default: ``False``).
        gtol: pairs with $\max |y| \le$ ``gtol`` are rejected (default: ``1e-10``).
        update_freq: add a pair every ``update_freq`` steps (default: ``1``).
        inner: modules applied to the update after the history is updated and before $H$
            (default: ``None``).
        damping: Powell's damping of $y$ (Nocedal & Wright, Procedure 18.2), so that no pair
            fails the curvature test; needs no inner modules between the history and $H$ to be
            exact (default: ``False``).

    Example:
        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([2.0, -1.0]))
        >>> opt = tz.Modular([x], tz.m.LBFGS(history_size=5), tz.m.StrongWolfe())
        >>> def closure(backward=True):
        ...     loss = (x[0] - 1) ** 2 + 10 * (x[1] + 2) ** 2
        ...     if backward:
        ...         opt.zero_grad()
        ...         loss.backward()
        ...     return loss
        >>> for _ in range(10):
        ...     _ = opt.step(closure)
        >>> x.detach()
        tensor([ 1., -2.])

    References:
        Liu, D. C., & Nocedal, J. (1989). On the limited memory BFGS method for large scale
        optimization. Mathematical Programming, 45, 503-528.

        Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Section 7.2.
    """

    def __init__(
        self,
        history_size: int = 10,
        tol: float | None = 1e-10,
        tol_reset: bool = False,
        gtol: float | None = 1e-10,
        update_freq: int = 1,
        inner: Any = None,
        damping: bool = False,
    ):
        defaults = dict(history_size=history_size, tol=tol, tol_reset=tol_reset, gtol=gtol, update_freq=update_freq, damping=damping)
        super().__init__(defaults, inner=inner)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = type(self).__name__
        if "history_size" in s:
            check_int("history_size", s["history_size"], owner=o, min=1, max=MAX_BUFFER)
        for key in ("tol", "gtol"):
            if key in s and s[key] is not None:
                check_number(key, s[key], owner=o, min=0.0)
        if "tol_reset" in s:
            check_bool("tol_reset", s["tol_reset"], owner=o)
        if "update_freq" in s:
            check_int("update_freq", s["update_freq"], owner=o, min=1, max=MAX_BUFFER)
        if "damping" in s:
            check_bool("damping", s["damping"], owner=o)

    def update_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> None:
        s = settings.coupled(self.defaults, type(self).__name__)
        gs = self.global_state
        dtype = working_dtype(tensors)
        order = layout(self, ctx.params)
        if gs.get("layout") != order or ("x" in gs and gs["x"].dtype != dtype):  # other parameters than last step: start over
            gs.clear()
            gs.update(layout=order, s=[], y=[], rho=[], steps=0)
        x = flatten([p.detach() for p in ctx.params], dtype)
        u = flatten(tensors, dtype)
        gs["steps"] += 1
        if "x" in gs and (gs["steps"] - 1) % s["update_freq"] == 0:
            sk, yk = x - gs["x"], u - gs["u"]
            if s["damping"]:
                yk = self._damped(sk, yk, gs["u"])
            sy = sk.dot(yk)
            ok = (s["gtol"] is None or bool(yk.abs().max() > s["gtol"])) and self.accept_pair(sk, yk, sy, s)
            if ok:
                gs["s"].append(sk)
                gs["y"].append(yk)
                gs["rho"].append(1 / sy)
                while len(gs["s"]) > s["history_size"]:
                    for key in ("s", "y", "rho"):
                        gs[key].pop(0)
            elif s["tol_reset"]:
                gs.update(s=[], y=[], rho=[])
        if "x" not in gs or (gs["steps"] - 1) % s["update_freq"] == 0:
            gs["x"], gs["u"] = x, u

    def _damped(self, s: Tensor, y: Tensor, u_prev: Tensor) -> Tensor:
        r"""Powell's damping: $r = \theta y + (1 - \theta) B s$, $\theta = 1$ if
        $s\cdot y \ge 0.2\, s^T B s$, else $0.8\, s^T B s / (s^T B s - s\cdot y)$, so that
        $s \cdot r \ge 0.2\, s^T B s > 0$. $B s$ is exact for the approximation that made the last
        direction $d = H u'$: the step was $s = -a d$, so $B s = -a u'$ with
        $a = -s\cdot d / d\cdot d$."""
        d = self.global_state.get("d")
        if d is None or float(d.dot(d)) == 0:
            return y
        bs = (s.dot(d) / d.dot(d)) * u_prev
        sbs, sy = float(s.dot(bs)), float(s.dot(y))
        if sbs <= 0 or sy >= 0.2 * sbs:
            return y
        theta = 0.8 * sbs / (sbs - sy)
        return theta * y + (1 - theta) * bs

    def accept_pair(self, s: Tensor, y: Tensor, sy: Tensor, settings: Mapping[str, Any]) -> bool:
        r"""Whether the pair joins the history: the curvature test $s\cdot y > \text{tol}\,\lVert s\rVert\,\lVert y\rVert$,
        relative, so that it doesn't depend on the problem's scale (an absolute threshold rejects
        every pair of a badly scaled problem)."""
        return bool(sy > (settings["tol"] or 0.0) * s.norm() * y.norm())

    def precondition(self, q: Tensor) -> Tensor:
        r"""$H q$ for the pairs in the history (at least one); may overwrite ``q``."""
        gs = self.global_state
        return two_loop(q, gs["s"], gs["y"], gs["rho"])

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        gs = self.global_state
        # one tensor, no inner modules, a pair every step: work in place on it (what it held is
        # also gs["u"], for the fallback below)
        one = (
            len(tensors) == 1 and tensors[0].dtype == gs["x"].dtype and tensors[0].is_contiguous()
            and "inner" not in self.children and settings["update_freq"] == 1
        )
        q = tensors[0].view(-1) if one else flatten(tensors, gs["x"].dtype)
        if not gs["s"]:
            l1 = float(q.abs().sum())
            if l1 > 1:
                q.div_(l1)
        else:
            q = self.precondition(q)
        if not bool(torch.isfinite(q).all()):
            original = gs["u"].clone() if one else flatten(tensors, q.dtype)
            if math.isfinite(float(original.abs().sum())):
                gs.update(s=[], y=[], rho=[])  # a degenerate history: drop it, keep the step finite
                q = original
        if settings["damping"]:
            gs["d"] = q.clone()  # this step's direction, for the damping of the next pair
        unflatten_(q, tensors)
        return tensors
