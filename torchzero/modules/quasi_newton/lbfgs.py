"""``LBFGS``: limited-memory BFGS on all parameters flattened together."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.transform import Context, Settings, States, Transform
from ...functional.lbfgs import two_loop
from ...utils.validation import MAX_BUFFER, check_bool, check_choice, check_int, check_number
from .flat import flat_view, flatten, layout, unflatten_, working_dtype

__all__ = ["LBFGS"]

FIRST_STEPS = ("unit", "torch", "none")

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
       scaled as ``first_step`` says.

    Use it with a line search, which finds the step length: ``LBFGS(first_step="torch")``
    followed by ``StrongWolfe()`` is ``torch.optim.LBFGS(line_search_fn="strong_wolfe",
    max_iter=1)`` (one iteration per ``step``), except that torch rejects pairs by the absolute
    test $s\cdot y \le 10^{-10}$. The math is done in the widest dtype of the parameters (float32 for half
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
        first_step: the update while there are no pairs: ``"unit"``, $u / \max(1, \lVert u\rVert_2)$,
            a first step at most 1 long, as scipy's L-BFGS-B takes (Nocedal & Wright, Section
            3.5); ``"torch"``, $u \min(1, 1/\lVert u\rVert_1)$, as ``torch.optim.LBFGS``;
            ``"none"``, $u$ itself (default: ``"unit"``).

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
        first_step: str = "unit",
    ):
        defaults = dict(
            history_size=history_size, tol=tol, tol_reset=tol_reset, gtol=gtol, update_freq=update_freq, damping=damping,
            first_step=first_step,
        )
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
        if "first_step" in s:
            check_choice("first_step", s["first_step"], FIRST_STEPS, owner=o)

    def update_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> None:
        s = settings.coupled(self.defaults, type(self).__name__)
        gs = self.global_state
        dtype = working_dtype(tensors)
        order = layout(self, ctx.params)
        if gs.get("layout") != order or ("x" in gs and gs["x"].dtype != dtype):  # other parameters than last step: start over
            gs.clear()
            gs.update(layout=order, s=[], y=[], rho=[], steps=0)
        gs["steps"] += 1
        pair_step = (gs["steps"] - 1) % s["update_freq"] == 0
        if "x" in gs and not pair_step:
            return
        (x, x_view), (u, u_view) = flat_view([p.detach() for p in ctx.params], dtype), flat_view(tensors, dtype)
        if "x" not in gs:
            gs["x"], gs["u"] = x.clone() if x_view else x, u.clone() if u_view else u
            return
        sk, yk = x - gs["x"], u - gs["u"]
        if s["damping"]:
            yk = self._damped(sk, yk, gs["u"])
        sy, yy = sk.dot(yk), yk.dot(yk)
        ok = self._y_large(yk, yy, s["gtol"]) and self.accept_pair(sk, yk, sy, s, yy)
        if ok:
            gs["s"].append(sk)
            gs["y"].append(yk)
            gs["rho"].append(1 / sy)
            gs["gamma"] = sy / yy  # H0's scale, from the newest pair
            while len(gs["s"]) > s["history_size"]:
                for key in ("s", "y", "rho"):
                    gs[key].pop(0)
        elif s["tol_reset"]:
            gs.update(s=[], y=[], rho=[])
        gs["x"].copy_(x)  # in place, as torch.optim.LBFGS keeps its previous gradient
        gs["u"].copy_(u)

    @staticmethod
    def _y_large(y: Tensor, yy: Tensor, gtol: float | None) -> bool:
        r"""$\max|y| >$ ``gtol``, decided from $\lVert y\rVert_2$ when it can be, as
        $\lVert y\rVert_2 / \sqrt{n} \le \max|y| \le \lVert y\rVert_2$ (the maximum is a pass of its own)."""
        if gtol is None:
            return True
        norm = math.sqrt(float(yy))
        if norm <= gtol:
            return False
        if norm > gtol * math.sqrt(y.numel()):
            return True
        return bool(y.abs().max() > gtol)

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

    def accept_pair(self, s: Tensor, y: Tensor, sy: Tensor, settings: Mapping[str, Any], yy: Tensor | None = None) -> bool:
        r"""Whether the pair joins the history: the curvature test $s\cdot y > \text{tol}\,\lVert s\rVert\,\lVert y\rVert$,
        relative, so that it doesn't depend on the problem's scale (an absolute threshold rejects
        every pair of a badly scaled problem). ``yy`` is $y \cdot y$ when the caller has it."""
        y_norm = y.norm() if yy is None else yy.sqrt()
        return bool(sy > (settings["tol"] or 0.0) * s.norm() * y_norm)

    def precondition(self, q: Tensor) -> Tensor:
        r"""$H q$ for the pairs in the history (at least one); may overwrite ``q``."""
        gs = self.global_state
        return two_loop(q, gs["s"], gs["y"], gs["rho"], gs.get("gamma"))

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
            kind = settings["first_step"]
            norm = float(q.norm()) if kind == "unit" else float(q.abs().sum()) if kind == "torch" else 0.0
            if norm > 1:
                q.div_(norm)
        else:
            q = self.precondition(q)
        # a sum is one pass without a mask; NaN and inf propagate into it (the full test only
        # when it is not finite, which an overflowing sum of finite entries can also make)
        if not math.isfinite(float(q.sum())) and not bool(torch.isfinite(q).all()):
            original = gs["u"].clone() if one else flatten(tensors, q.dtype)
            if math.isfinite(float(original.abs().sum())):
                gs.update(s=[], y=[], rho=[])  # a degenerate history: drop it, keep the step finite
                q = original
        if settings["damping"]:
            gs["d"] = q.clone()  # this step's direction, for the damping of the next pair
        unflatten_(q, tensors)
        return tensors
