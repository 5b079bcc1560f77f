"""Dense quasi-Newton methods (``BFGS``, ``DFP``, ``SR1``): an n x n inverse-Hessian
approximation of all parameters flattened together."""
from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.transform import Context, Settings, States, Transform
from ...functional.quasi_newton import (
    bfgs_inverse_update,
    dfp_inverse_update,
    sr1_inverse_update,
)
from ...utils.validation import MAX_ITERATIONS, check_bool, check_int, check_number
from .flat import flatten, layout, unflatten_, working_dtype

__all__ = ["HessianUpdateStrategy", "BFGS", "DFP", "SR1"]

#: The most elements a dense method works on: its matrix has this many squared entries.
MAX_DENSE = 10_000

class HessianUpdateStrategy(Transform):
    r"""Base of the dense quasi-Newton methods: the update becomes $H u$, with $H$ an n x n
    approximation of the inverse Hessian updated from $s = x_k - x_{k-1}$ and
    $y = u_k - u_{k-1}$ each step (subclasses implement :meth:`update_inverse`).

    Each step, with $u$ the update this module receives:

    1. the pair $(s, y)$ updates $H$ unless $|s|_\infty \le$ ``ptol`` (no movement; with
       ``ptol_reset`` $H$ is reset), $|y|_\infty \le$ ``gtol``, or the method rejects it
       (BFGS and DFP: $s \cdot y \le \text{tol}\,\lVert s\rVert\,\lVert y\rVert$, a relative test); before the first update $H$ is set to
       $\frac{s\cdot y}{y\cdot y} I$ with ``init_scale="auto"`` (Nocedal & Wright, eq. 6.20),
       else to ``init_scale`` $\cdot I$;
    2. ``inner`` modules, if any, transform $u$;
    3. $u \leftarrow H u$; before $H$ exists, $u \cdot \min(1, 1/\lVert u \rVert_1)$ with
       ``scale_first`` (as ``LBFGS``), else $u$.

    $H$ is reset every ``reset_interval`` steps and when the set of parameters with gradients
    changes. All parameters are one vector of at most :data:`MAX_DENSE` elements (use
    ``LBFGS`` for more), in the widest dtype of the parameters (float32 for half precision).
    """

    def __init__(
        self,
        init_scale: float | str = "auto",
        tol: float = 1e-10,
        ptol: float | None = 1e-10,
        ptol_reset: bool = False,
        gtol: float | None = 1e-10,
        reset_interval: int | None = None,
        update_freq: int = 1,
        scale_first: bool = True,
        inner: Any = None,
        defaults: Mapping[str, Any] | None = None,
    ):
        settings = dict(
            init_scale=init_scale, tol=tol, ptol=ptol, ptol_reset=ptol_reset, gtol=gtol, reset_interval=reset_interval,
            update_freq=update_freq, scale_first=scale_first, **(defaults or {}),
        )
        super().__init__(settings, inner=inner)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = type(self).__name__
        if "init_scale" in s and s["init_scale"] != "auto":
            if isinstance(s["init_scale"], str):
                raise ValueError(f"{o}: init_scale must be 'auto' or a number > 0, got {s['init_scale']!r}")
            check_number("init_scale", s["init_scale"], owner=o, min=0.0, min_inclusive=False)
        if "tol" in s:
            check_number("tol", s["tol"], owner=o, min=0.0)
        for key in ("ptol", "gtol"):
            if key in s and s[key] is not None:
                check_number(key, s[key], owner=o, min=0.0)
        for key in ("ptol_reset", "scale_first"):
            if key in s:
                check_bool(key, s[key], owner=o)
        if s.get("reset_interval") is not None:
            check_int("reset_interval", s["reset_interval"], owner=o, min=1, max=MAX_ITERATIONS)
        if "update_freq" in s:
            check_int("update_freq", s["update_freq"], owner=o, min=1, max=MAX_ITERATIONS)

    @abstractmethod
    def update_inverse(self, h: Tensor, s: Tensor, y: Tensor, settings: Mapping[str, Any]) -> Tensor | None:
        """The updated $H$ (may update ``h`` in place and return it), or ``None`` to skip the pair."""

    def update_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> None:
        s = settings.coupled(self.defaults, type(self).__name__)
        n = sum(t.numel() for t in tensors)
        if n > MAX_DENSE:
            raise ValueError(
                f"{type(self).__name__} keeps an n x n matrix of all parameters, and these have n = {n:,} elements (at most "
                f"{MAX_DENSE:,}); use tz.m.LBFGS(), which keeps O(n) memory"
            )
        gs = self.global_state
        dtype = working_dtype(tensors)
        order = layout(self, ctx.params)
        interval = s["reset_interval"]
        stale = gs.get("layout") != order or ("x" in gs and gs["x"].dtype != dtype)
        if stale or (interval is not None and gs.get("steps", 0) % interval == 0 and gs.get("steps", 0) > 0):
            gs.clear()
            gs.update(layout=order, steps=0)
        gs["steps"] += 1
        x = flatten([p.detach() for p in ctx.params], dtype)
        u = flatten(tensors, dtype)
        due = (gs["steps"] - 1) % s["update_freq"] == 0
        if "x" in gs and due:
            self._update(gs, x - gs["x"], u - gs["u"], s)
        if "x" not in gs or due:
            gs["x"], gs["u"] = x, u

    def _update(self, gs: dict[str, Any], sk: Tensor, yk: Tensor, s: Mapping[str, Any]) -> None:
        if s["ptol"] is not None and float(sk.abs().max()) <= s["ptol"]:
            if s["ptol_reset"]:
                gs.pop("H", None)
            return
        if s["gtol"] is not None and float(yk.abs().max()) <= s["gtol"]:
            return
        h = gs.get("H")
        if h is None:
            scale = s["init_scale"]
            if scale == "auto":
                sy, yy = float(sk.dot(yk)), float(yk.dot(yk))
                scale = sy / yy if sy > 0 and yy > 0 else 1.0
            h = torch.eye(sk.numel(), dtype=sk.dtype, device=sk.device) * scale
        new = self.update_inverse(h.clone(), sk, yk, s)
        if new is not None and bool(torch.isfinite(new).all()):
            gs["H"] = new
        elif "H" not in gs:
            gs["H"] = h

    def curvature(self, var: Any, dtype: torch.dtype) -> Tensor:
        r"""$B = H^{-1}$ after this step's update of $H$ from ``var`` (the identity before there is
        an $H$), as a trust region's ``hess_module`` asks for it."""
        child = var.child([u.clone() for u in var.get_update()])
        self.step(child)
        h = self.global_state.get("H")
        n = sum(p.numel() for p in var.params)
        if h is None:
            return torch.eye(n, dtype=dtype, device=var.params[0].device)
        b = torch.linalg.inv(h.to(dtype))
        return 0.5 * (b + b.T)

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        gs = self.global_state
        q = flatten(tensors, gs["x"].dtype)
        h = gs.get("H")
        if h is None:
            if settings["scale_first"]:
                l1 = float(q.abs().sum())
                if l1 > 1:
                    q = q / l1
        else:
            q = h @ q
        unflatten_(q, tensors)
        return tensors


class BFGS(HessianUpdateStrategy):
    r"""BFGS: $H \leftarrow (I - \rho s y^T) H (I - \rho y s^T) + \rho s s^T$, $\rho = 1/s\cdot y$
    (Nocedal & Wright, eq. 6.17), on all parameters flattened together.

    Pairs with $s \cdot y \le \text{tol}\,\lVert s\rVert\,\lVert y\rVert$ are skipped, which keeps $H$
    positive definite. With
    ``damping`` (Powell's damping, Nocedal & Wright Procedure 18.2) $y$ is replaced by
    $r = \theta y + (1 - \theta) B s$, $B = H^{-1}$, $\theta = 1$ if
    $s\cdot y \ge 0.2\, s^T B s$, else $0.8\, s^T B s / (s^T B s - s \cdot y)$, so that no pair
    is skipped. The rest is as :class:`HessianUpdateStrategy` describes.

    Args:
        init_scale: ``"auto"`` or the scale of the first $H$ (default: ``"auto"``).
        tol: pairs with $s\cdot y \le \text{tol}\,\lVert s\rVert\,\lVert y\rVert$ are skipped (default: ``1e-10``).
        ptol: pairs with $|s|_\infty \le$ ``ptol`` are skipped (default: ``1e-10``).
        ptol_reset: reset $H$ when ``ptol`` skips a pair (default: ``False``).
        gtol: pairs with $|y|_\infty \le$ ``gtol`` are skipped (default: ``1e-10``).
        reset_interval: reset $H$ every this many steps, or ``None`` (default: ``None``).
        update_freq: update $H$ every this many steps (default: ``1``).
        scale_first: scale the first update by $\min(1, 1/\lVert u\rVert_1)$ (default: ``True``).
        inner: modules applied to the update before $H$ (default: ``None``).
        damping: Powell's damping (default: ``False``).

    Example:
        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([-1.5, 2.0], dtype=torch.float64))
        >>> opt = tz.Modular([x], tz.m.BFGS(), tz.m.StrongWolfe())
        >>> def closure(backward=True):
        ...     loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        ...     if backward:
        ...         opt.zero_grad()
        ...         loss.backward()
        ...     return loss
        >>> for _ in range(60):
        ...     _ = opt.step(closure)
        >>> bool(closure(False) < 1e-12)
        True

    References:
        Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Section 6.1 and
        Procedure 18.2.
    """

    def __init__(
        self,
        init_scale: float | str = "auto",
        tol: float = 1e-10,
        ptol: float | None = 1e-10,
        ptol_reset: bool = False,
        gtol: float | None = 1e-10,
        reset_interval: int | None = None,
        update_freq: int = 1,
        scale_first: bool = True,
        inner: Any = None,
        damping: bool = False,
    ):
        super().__init__(init_scale, tol, ptol, ptol_reset, gtol, reset_interval, update_freq, scale_first, inner, {"damping": damping})

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        super().validate_settings(s)
        if "damping" in s:
            check_bool("damping", s["damping"], owner="BFGS")

    def update_inverse(self, h: Tensor, s: Tensor, y: Tensor, settings: Mapping[str, Any]) -> Tensor | None:
        if settings["damping"]:
            bs = torch.linalg.solve(h, s)
            sbs, sy = float(s.dot(bs)), float(s.dot(y))
            if sbs > 0 and sy < 0.2 * sbs:
                theta = 0.8 * sbs / (sbs - sy)
                y = theta * y + (1 - theta) * bs
        if float(s.dot(y)) <= settings["tol"] * float(s.norm() * y.norm()):
            return None
        return bfgs_inverse_update(h, s, y)


class DFP(HessianUpdateStrategy):
    r"""DFP: $H \leftarrow H - \frac{H y y^T H}{y^T H y} + \frac{s s^T}{s\cdot y}$ (Nocedal & Wright,
    eq. 6.15), on all parameters flattened together; pairs with
    $s\cdot y \le \text{tol}\,\lVert s\rVert\,\lVert y\rVert$ are skipped. The rest is as :class:`HessianUpdateStrategy` describes.

    Args:
        init_scale: ``"auto"`` or the scale of the first $H$ (default: ``"auto"``).
        tol: pairs with $s\cdot y \le \text{tol}\,\lVert s\rVert\,\lVert y\rVert$ are skipped (default: ``1e-10``).
        ptol: pairs with $|s|_\infty \le$ ``ptol`` are skipped (default: ``1e-10``).
        ptol_reset: reset $H$ when ``ptol`` skips a pair (default: ``False``).
        gtol: pairs with $|y|_\infty \le$ ``gtol`` are skipped (default: ``1e-10``).
        reset_interval: reset $H$ every this many steps, or ``None`` (default: ``None``).
        update_freq: update $H$ every this many steps (default: ``1``).
        scale_first: scale the first update by $\min(1, 1/\lVert u\rVert_1)$ (default: ``True``).
        inner: modules applied to the update before $H$ (default: ``None``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.DFP(), tz.m.StrongWolfe())

    References:
        Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Section 6.1.
    """

    def __init__(
        self,
        init_scale: float | str = "auto",
        tol: float = 1e-10,
        ptol: float | None = 1e-10,
        ptol_reset: bool = False,
        gtol: float | None = 1e-10,
        reset_interval: int | None = None,
        update_freq: int = 1,
        scale_first: bool = True,
        inner: Any = None,
    ):
        super().__init__(init_scale, tol, ptol, ptol_reset, gtol, reset_interval, update_freq, scale_first, inner)

    def update_inverse(self, h: Tensor, s: Tensor, y: Tensor, settings: Mapping[str, Any]) -> Tensor | None:
        if float(s.dot(y)) <= settings["tol"] * float(s.norm() * y.norm()):
            return None
        return dfp_inverse_update(h, s, y)


class SR1(HessianUpdateStrategy):
    r"""Symmetric rank one: $H \leftarrow H + \frac{(s - H y)(s - H y)^T}{(s - H y)^T y}$ (Nocedal &
    Wright, eq. 6.25), on all parameters flattened together. The pair is skipped when
    $|(s - Hy)^T y| < r\, \lVert y\rVert\, \lVert s - H y\rVert$ (eq. 6.26, $r$ = ``skip_r``). $H$ need not
    be positive definite: pair it with a trust region, or a line search whose search falls
    back when the direction is not a descent direction. The rest is as
    :class:`HessianUpdateStrategy` describes.

    Args:
        init_scale: ``"auto"`` or the scale of the first $H$ (default: ``"auto"``).
        tol: unused by SR1's own test, kept for a common signature (default: ``1e-10``).
        ptol: pairs with $|s|_\infty \le$ ``ptol`` are skipped (default: ``1e-10``).
        ptol_reset: reset $H$ when ``ptol`` skips a pair (default: ``False``).
        gtol: pairs with $|y|_\infty \le$ ``gtol`` are skipped (default: ``1e-10``).
        reset_interval: reset $H$ every this many steps, or ``None`` (default: ``None``).
        update_freq: update $H$ every this many steps (default: ``1``).
        scale_first: scale the first update by $\min(1, 1/\lVert u\rVert_1)$ (default: ``True``).
        inner: modules applied to the update before $H$ (default: ``None``).
        skip_r: $r$ of the skipping rule (default: ``1e-8``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.SR1(), tz.m.StrongWolfe(plus_minus=True))

    References:
        Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Section 6.2.
    """

    def __init__(
        self,
        init_scale: float | str = "auto",
        tol: float = 1e-10,
        ptol: float | None = 1e-10,
        ptol_reset: bool = False,
        gtol: float | None = 1e-10,
        reset_interval: int | None = None,
        update_freq: int = 1,
        scale_first: bool = True,
        inner: Any = None,
        skip_r: float = 1e-8,
    ):
        super().__init__(init_scale, tol, ptol, ptol_reset, gtol, reset_interval, update_freq, scale_first, inner, {"skip_r": skip_r})

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        super().validate_settings(s)
        if "skip_r" in s:
            check_number("skip_r", s["skip_r"], owner="SR1", min=0.0)

    def update_inverse(self, h: Tensor, s: Tensor, y: Tensor, settings: Mapping[str, Any]) -> Tensor | None:
        return sr1_inverse_update(h, s, y, settings["skip_r"])
