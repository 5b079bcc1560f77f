"""Step sizes computed from the function or from the last step: ``PolyakStepSize`` and
``BarzilaiBorwein``."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.transform import Context, Settings, States, Transform
from ...functional.conjugate_gradient import dot
from ...utils.validation import check_bool, check_choice, check_number

__all__ = ["PolyakStepSize", "BarzilaiBorwein"]

BB_TYPES = ("short", "long", "geom")


class PolyakStepSize(Transform):
    r"""Polyak's step size: $u \leftarrow \alpha\, \min\!\left(\eta_{\max}, \frac{f(x) - f^*}{g \cdot u}\right) u$.

    With ``use_grad=False`` the denominator is $u \cdot u$ (the two agree when $u = g$). A
    negative or undefined step size is 0. With ``f_star=None`` the optimal value is estimated
    as $f^* = f_{\text{best}} - y$, where $f_{\text{best}}$ is the lowest loss seen and $y$
    shrinks by the factor $1 - \delta$ each step ($\delta$ = ``y_decay``). Needs the loss (the closure, or a loss
    passed to ``step``). All parameters share one step size, which ``opt.stats()`` reports as
    ``"PolyakStepSize/step_size"``.

    Args:
        f_star: the optimal value $f^*$, or ``None`` to estimate it (default: ``0``).
        y: the initial gap of the estimate, ``> 0`` (default: ``1``).
        y_decay: the gap's decay per step, in ``[0, 1)`` (default: ``1e-3``).
        max: the largest step size, or ``None`` (default: ``None``).
        use_grad: divide by $g \cdot u$ (``True``) or $u \cdot u$ (default: ``True``).
        alpha: a multiplier (default: ``1``).
        inner: modules applied to the update before it is scaled (default: ``None``).

    Example:
        Gradient descent with Polyak's step on an interpolating problem (a loss whose minimum is 0):

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.PolyakStepSize(f_star=0.0))

    References:
        Polyak, B. T. (1987). Introduction to Optimization, Section 5.3.
    """

    def __init__(
        self,
        f_star: float | None = 0,
        y: float = 1,
        y_decay: float = 1e-3,
        max: float | None = None,
        use_grad: bool = True,
        alpha: float = 1,
        inner: Any = None,
    ):
        defaults = dict(f_star=f_star, y=y, y_decay=y_decay, max=max, use_grad=use_grad, alpha=alpha)
        super().__init__(defaults, uses_loss=True, inner=inner)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "PolyakStepSize"
        if s.get("f_star") is not None:
            check_number("f_star", s["f_star"], owner=o)
        if "y" in s:
            check_number("y", s["y"], owner=o, min=0.0, min_inclusive=False)
        if "y_decay" in s:
            check_number("y_decay", s["y_decay"], owner=o, min=0.0, max=1.0, max_inclusive=False)
        if s.get("max") is not None:
            check_number("max", s["max"], owner=o, min=0.0, min_inclusive=False)
        if "use_grad" in s:
            check_bool("use_grad", s["use_grad"], owner=o)
        if "alpha" in s:
            check_number("alpha", s["alpha"], owner=o)

    def update_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> None:
        s = settings.coupled(self.defaults, type(self).__name__)
        loss = float(ctx.loss)
        gs = self.global_state
        if s["f_star"] is None:
            gs["f_best"] = min(gs.get("f_best", math.inf), loss)
            gap = gs.get("y", s["y"])
            f_star = gs["f_best"] - gap
            gs["y"] = gap * (1 - s["y_decay"])
        else:
            f_star = s["f_star"]
        denom = float(dot(ctx.grads if s["use_grad"] else tensors, tensors))
        step = (loss - f_star) / denom if denom > 0 else 0.0
        if not math.isfinite(step) or step < 0:
            step = 0.0
        if s["max"] is not None:
            step = min(step, s["max"])
        gs["step_size"] = step * s["alpha"]

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        step = self.global_state["step_size"]
        torch._foreach_mul_(tensors, step)
        self.record_stats(step_size=torch.tensor(step))
        return tensors


class BarzilaiBorwein(Transform):
    r"""The Barzilai–Borwein step size: $u \leftarrow \alpha\, \eta\, u$ with, from
    $s = x_k - x_{k-1}$ and $y = g_k - g_{k-1}$ (all parameters as one vector),

    $$
    \eta_{\text{short}} = \frac{s\cdot y}{y\cdot y}, \qquad
    \eta_{\text{long}} = \frac{s\cdot s}{s\cdot y}, \qquad
    \eta_{\text{geom}} = \sqrt{\eta_{\text{short}}\, \eta_{\text{long}}}
    $$

    $g$ is the gradient (``use_grad=True``) or the update this module receives. Where the
    step size is undefined or not positive (no curvature, $s \cdot y \le 0$) it is ``fallback``;
    on the first step it is $\min(1, 1/\lVert u\rVert_1)$ with ``scale_first``, else 1. The step
    size is in ``opt.stats()`` as ``"BarzilaiBorwein/step_size"``.

    Args:
        type: ``"short"``, ``"long"`` or ``"geom"`` (default: ``"geom"``).
        use_grad: take $y$ from the gradients (default: ``True``).
        scale_first: scale the first step as above (default: ``True``).
        fallback: the step size where the formula fails, ``> 0`` (default: ``1e-4``).
        alpha: a multiplier (default: ``1``).
        inner: modules applied to the update before it is scaled (default: ``None``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.BarzilaiBorwein(type="short"))

    References:
        Barzilai, J., & Borwein, J. M. (1988). Two-point step size gradient methods. IMA Journal
        of Numerical Analysis, 8(1), 141-148.
    """

    STATE_KEYS = {"prev_param": "like_param", "prev_grad": "like_param"}

    def __init__(
        self,
        type: str = "geom",
        use_grad: bool = True,
        scale_first: bool = True,
        fallback: float = 1e-4,
        alpha: float = 1,
        inner: Any = None,
    ):
        super().__init__(dict(type=type, use_grad=use_grad, scale_first=scale_first, fallback=fallback, alpha=alpha), inner=inner)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "BarzilaiBorwein"
        if "type" in s:
            check_choice("type", s["type"], BB_TYPES, owner=o)
        for key in ("use_grad", "scale_first"):
            if key in s:
                check_bool(key, s[key], owner=o)
        if "fallback" in s:
            check_number("fallback", s["fallback"], owner=o, min=0.0, min_inclusive=False)
        if "alpha" in s:
            check_number("alpha", s["alpha"], owner=o)

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        return {"prev_param": torch.zeros_like(tensor), "prev_grad": torch.zeros_like(tensor)}

    def update_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> None:
        s = settings.coupled(self.defaults, type(self).__name__)
        params = [p.detach() for p in ctx.params]
        g = ctx.grads if s["use_grad"] else tensors
        if ctx.new:  # no previous point (for some parameters): the first step
            step = 1.0
            if s["scale_first"]:
                l1 = float(sum(t.abs().sum() for t in tensors))
                step = min(1.0, 1.0 / l1) if l1 > 0 else 1.0
        else:
            sk = torch._foreach_sub(params, states["prev_param"])
            yk = torch._foreach_sub(list(g), states["prev_grad"])
            sy, yy, ss = float(dot(sk, yk)), float(dot(yk, yk)), float(dot(sk, sk))
            short = sy / yy if yy > 0 else math.nan
            long = ss / sy if sy > 0 else math.nan
            step = {"short": short, "long": long, "geom": math.sqrt(short * long) if short > 0 and long > 0 else math.nan}[s["type"]]
            if not (math.isfinite(step) and step > 0):
                step = s["fallback"]
        torch._foreach_copy_(states["prev_param"], params)
        torch._foreach_copy_(states["prev_grad"], list(g))
        self.global_state["step_size"] = step * s["alpha"]

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        step = self.global_state["step_size"]
        torch._foreach_mul_(tensors, step)
        self.record_stats(step_size=torch.tensor(step))
        return tensors
