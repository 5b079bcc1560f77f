"""``TrustRegion``: the base of modules that choose a step within a radius from a quadratic
model, checked against the loss at the trial point (Nocedal & Wright, Algorithm 4.1)."""
from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ...core.module import Module
from ...core.var import Var
from ...utils.validation import MAX_ITERATIONS, check_int, check_number
from ..line_search.line_search import _global_mean
from ..quasi_newton.flat import flatten, layout, split_like, unflatten_, working_dtype

__all__ = ["TrustRegion", "Trial"]


class _Memo:
    r"""A product $v \mapsto Bv$ that remembers its calls in order: a subproblem solved again with
    a smaller radius asks for the same products first (CG's directions don't depend on the
    radius), and gets them without evaluating anything at parameters a trial has since moved."""

    def __init__(self, matvec: Callable[[Tensor], Tensor]):
        self.matvec, self.calls, self.position = matvec, [], 0  # type: ignore[var-annotated]

    def rewind(self) -> None:
        self.position = 0

    def __call__(self, v: Tensor) -> Tensor:
        i = self.position
        self.position += 1
        if i < len(self.calls) and torch.equal(self.calls[i][0], v):
            return self.calls[i][1]
        out = self.matvec(v)
        del self.calls[i:]
        self.calls.append((v.clone(), out))
        return out


class Trial(NamedTuple):
    """What a radius rule may read about a trial: the model's gradient $u$ (flat) and the loss
    before and at the trial point."""

    g: Tensor
    f0: float
    f1: float


class TrustRegion(Module):
    r"""A module that replaces the update $u$ (the gradient) by a step $d$ minimizing the model

    $$
    m(d) = f - u \cdot d + \tfrac12 d^T B d, \qquad \lVert d\rVert_2 \le \Delta
    $$

    (the parameters move to $x - d$; subclasses give $B$ and solve the subproblem), then checks
    it: with $\rho = (f(x) - f(x - d)) / (m(0) - m(d))$, the ratio of the actual to the
    predicted reduction (one evaluation, ``closure(False)``),

    - $\rho <$ 0.25: $\Delta \leftarrow$ ``nminus`` $\cdot \Delta$ (not below an ulp of
      $\lVert x\rVert$, where no shorter step is worth trying);
    - $\rho >$ 0.75 and $d$ on the boundary: $\Delta \leftarrow \min($``nplus``$\cdot\Delta,$ ``max_radius``$)$;
    - $\rho >$ ``eta``: the step is taken; otherwise the subproblem is solved again with the new
      radius, up to ``max_attempts`` times per ``step``, after which the parameters stay.

    A non-finite loss at the trial point counts as $\rho = -\infty$: the radius shrinks and the
    step is not taken (the non-finite policy, which skips steps, is not involved). Under data
    parallelism the losses are averaged over the ranks, so all take the same decision.
    ``opt.stats()`` has ``"<Module>/radius"`` (after the step), ``"<Module>/rho"`` (of the
    last trial) and ``"<Module>/attempts"``. The radius is saved with the optimizer.
    These are Nocedal & Wright's Algorithm 4.1 and scipy's trust-region loop.

    A subclass gives ``defaults`` with ``init``, ``eta``, ``nplus``, ``nminus``, ``max_radius``
    and ``max_attempts``, and implements :meth:`model` and :meth:`subproblem`.

    Example:
        A model with $B = I$: the step is the gradient, cut to the radius.

        >>> import torch, torchzero as tz
        >>> class CutGradient(tz.m.TrustRegion):
        ...     def __init__(self):
        ...         super().__init__(dict(init=0.5, eta=0.0, nplus=2.0, nminus=0.25, max_radius=10.0, max_attempts=5))
        ...     def model(self, var, settings, dtype):
        ...         return lambda v: v
        ...     def subproblem(self, g, matvec, radius, settings):
        ...         d = g * min(1.0, radius / float(g.norm()))
        ...         return d, float(d.norm()) >= radius, float(g.dot(d)) - 0.5 * float(d.dot(d))
        >>> x = torch.nn.Parameter(torch.tensor([3.0, -4.0], dtype=torch.float64))
        >>> opt = tz.Modular([x], CutGradient())
        >>> def closure(backward=True):
        ...     loss = 0.5 * (x**2).sum()
        ...     if backward:
        ...         opt.zero_grad()
        ...         loss.backward()
        ...     return loss
        >>> _ = opt.step(closure)  # |g| = 5: a step of 0.5 along -g; rho = 1, so the radius doubles
        >>> x.detach(), float(opt.stats()["CutGradient/radius"])
        (tensor([ 2.7000, -3.6000], dtype=torch.float64), 1.0)
    """

    def __init__(self, defaults: Mapping[str, Any]):
        super().__init__(dict(defaults))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = type(self).__name__
        for key in ("init", "max_radius"):
            if key in s:
                check_number(key, s[key], owner=o, min=0.0, min_inclusive=False)
        if "eta" in s:
            check_number("eta", s["eta"], owner=o, min=0.0, max=0.25, max_inclusive=False)
        if "nplus" in s:
            check_number("nplus", s["nplus"], owner=o, min=1.0)
        if "nminus" in s:
            check_number("nminus", s["nminus"], owner=o, min=0.0, max=1.0, min_inclusive=False, max_inclusive=False)
        if "max_attempts" in s:
            check_int("max_attempts", s["max_attempts"], owner=o, min=1, max=MAX_ITERATIONS)

    @abstractmethod
    def model(self, var: Var, settings: Mapping[str, Any], dtype: torch.dtype) -> Callable[[Tensor], Tensor]:
        """$v \\mapsto B v$ on flat vectors of ``dtype`` for this step's model."""

    @abstractmethod
    def subproblem(
        self, g: Tensor, matvec: Callable[[Tensor], Tensor], radius: float, settings: Mapping[str, Any]
    ) -> tuple[Tensor, bool, float]:
        """The step $d$ (flat), whether it lies on the boundary, and the predicted reduction
        $m(0) - m(d)$."""

    def step(self, var: Var) -> Var:
        if not var.params:
            return var
        name = type(self).__name__
        s = self.settings_list(var.params).coupled(self.defaults, name)
        if var.closure is None:
            raise RuntimeError(f"{name} evaluates the loss at the trial point: pass a closure to opt.step(closure)")
        gs = self.global_state
        order = layout(self, var.params)
        if gs.get("layout") != order:
            gs.clear()
            gs.update(layout=order, radius=float(s["init"]))
        update = var.get_update()
        dtype = working_dtype(update)
        g = flatten(update, dtype)
        f0 = _global_mean(float(var.get_loss(backward=False)))
        matvec = _Memo(self.model(var, s, dtype))
        radius, rho, taken = float(gs["radius"]), math.nan, None
        floor = self._least_radius(var.params, dtype)
        radius = max(radius, floor)
        attempts = 0
        while attempts < s["max_attempts"] and math.isfinite(f0):
            attempts += 1
            matvec.rewind()
            d, on_boundary, predicted = self.subproblem(g, matvec, radius, s)
            f1 = self._loss_at(var, d)
            rho = (f0 - f1) / predicted if predicted > 0 and math.isfinite(f1) else -math.inf
            radius = max(self.next_radius(radius, rho, d, on_boundary, s, Trial(g, f0, f1)), floor)
            if rho > self.least_rho(s):
                taken = d
                break
            if not predicted > 0:  # the model predicts no decrease: nothing to gain from a smaller radius
                break
            if radius <= floor:  # a step this short changes x only by rounding: no point in trying shorter
                break
        gs["radius"] = radius
        if taken is None:
            taken = torch.zeros_like(g)
        unflatten_(taken, update)
        self.record_stats(
            radius=torch.tensor(radius, dtype=torch.float64), rho=torch.tensor(rho, dtype=torch.float64),
            attempts=torch.tensor(float(attempts)),
        )
        return var

    def next_radius(self, radius: float, rho: float, d: Tensor, on_boundary: bool, settings: Mapping[str, Any], trial: Trial) -> float:
        """The radius after a trial with ratio ``rho`` of step ``d``: Nocedal & Wright's rule
        (``nminus`` below 0.25, ``nplus`` above 0.75 on the boundary, up to ``max_radius``).
        A subclass may use another (``LevenbergMarquardt(more=True)``: Moré's)."""
        if rho < 0.25:
            return radius * float(settings["nminus"])
        if rho > 0.75 and on_boundary:
            return min(float(settings["nplus"]) * radius, float(settings["max_radius"]))
        return radius

    def least_rho(self, settings: Mapping[str, Any]) -> float:
        """The ratio a trial must exceed to be taken (``eta``)."""
        return float(settings["eta"])

    @staticmethod
    def _least_radius(params: list[Tensor], dtype: torch.dtype) -> float:
        r"""The radius below which a step changes $x$ only at rounding level: an ulp of
        $\lVert x\rVert$ (at least the least normal number), so that a run of rejected steps
        at a minimum can't shrink the radius to 0."""
        info = torch.finfo(dtype)
        norm = math.sqrt(sum(float(n) ** 2 for n in torch._foreach_norm([p.detach() for p in params]))) if params else 0.0
        return max(info.eps * norm, info.tiny) if math.isfinite(norm) else info.tiny

    @staticmethod
    def _loss_at(var: Var, d: Tensor) -> float:
        """$f(x - d)$, the parameters put back bit for bit afterwards."""
        params = var.params
        x0 = [p.detach().clone() for p in params]
        steps = split_like(d, params)
        try:
            with torch.no_grad():
                torch._foreach_sub_(params, steps)
            with torch.enable_grad():
                loss = var.closure(False)  # type: ignore[misc]
            f = _global_mean(float(loss))
        finally:
            with torch.no_grad():
                torch._foreach_copy_(params, x0)
        return f if math.isfinite(f) else math.inf
