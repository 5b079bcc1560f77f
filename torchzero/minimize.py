"""``tz.minimize``: scipy.optimize.minimize's convenience for a function of a tensor."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .core.modular import Modular
from .core.module import Module

__all__ = ["minimize", "MinimizeResult", "METHODS", "least_squares", "LeastSquaresResult", "LEAST_SQUARES_METHODS"]


def _methods() -> dict[str, Callable[[], list[Module]]]:
    from . import modules as m

    return {
        "lbfgs": lambda: [m.LBFGS(), m.StrongWolfe()],
        "bfgs": lambda: [m.BFGS(), m.StrongWolfe()],
        "cg": lambda: [m.PolakRibiere(), m.StrongWolfe(c2=0.1, a_init="first-order")],
        "sr1": lambda: [m.SR1(), m.StrongWolfe(plus_minus=True)],
        "gd": lambda: [m.Backtracking(maxiter=60)],
        "newton": lambda: [m.Newton(), m.Backtracking()],
        "newton-cg": lambda: [m.NewtonCG(), m.StrongWolfe()],
        "trust-ncg": lambda: [m.NewtonCGSteihaug()],
        "trust-exact": lambda: [m.LevenbergMarquardt(more=True)],
        "dogleg": lambda: [m.Dogleg()],
    }


#: The method strings :func:`minimize` understands and the chains they stand for.
METHODS = ("lbfgs", "bfgs", "cg", "sr1", "gd", "newton", "newton-cg", "trust-ncg", "trust-exact", "dogleg")


@dataclass
class MinimizeResult:
    """What :func:`minimize` found, named as scipy's ``OptimizeResult``.

    Attributes:
        x: the last point (a tensor shaped like ``x0``).
        fun: $f(x)$.
        grad: $\\nabla f(x)$.
        nit: steps taken.
        nfev: evaluations of ``f``.
        ngev: evaluations of the gradient (backward passes).
        nhev: Hessian-vector products (``NewtonCG``, ``NewtonCGSteihaug``) and Hessians
            (``Newton``) the modules reported, as scipy's ``nhev``.
        success: whether the gradient tolerance was met.
        message: why it stopped.
    """

    x: Tensor
    fun: float
    grad: Tensor
    nit: int
    nfev: int
    ngev: int
    success: bool
    message: str
    nhev: int = 0


def _max_abs(t: Tensor) -> float:
    """``max |t|`` (0 for an empty tensor) in one pass, without the ``|t|`` temporary."""
    if t.numel() == 0:
        return 0.0
    lo, hi = torch.aminmax(t)
    return max(-float(lo), float(hi))


def _same(a: Tensor, b: Tensor) -> bool:
    """``torch.equal``, first on a few entries: most points that differ do so at once."""
    a, b = a.reshape(-1), b.reshape(-1)
    return torch.equal(a[:8], b[:8]) and torch.equal(a, b)


class _Objective:
    """``f`` as a closure over ``x`` that counts its evaluations and remembers the last one with
    a gradient, so the first evaluation of a step at the point the line search accepted (and
    evaluated) costs nothing: the function is deterministic."""

    def __init__(self, f: Callable[[Tensor], Any], x: Tensor):
        self.f, self.x = f, x
        self.nfev = self.ngev = 0
        self.last: tuple[Tensor, Tensor, Tensor] | None = None  # (x, f, grad)
        # x's version when it was last found equal to last[0] (no compare while it is unchanged),
        # and the version of the gradient handed out as x.grad (changed in place: not reused)
        self._same_at: int | None = None
        self._grad_version = -1
        self._pool: list[Tensor] = []
        self.pinned: Tensor | None = None  # a copy of x that must not be overwritten
        # with keep_graph (a module differentiates the loss again, e.g. Newton): the last value
        # with its graph, and x's version then; closure(False) at an unchanged x returns it
        # instead of evaluating f once more
        self.keep_graph = False
        self.graph: tuple[int, Tensor] | None = None

    def _copy_of_x(self) -> Tensor:
        """x copied into one of two buffers kept between evaluations (at large sizes an
        allocation costs about a pass), not the one ``pinned`` holds."""
        x = self.x.detach()
        pool = [b for b in self._pool if b is not self.pinned]
        buf = pool[0] if pool else None
        if buf is None or buf.shape != x.shape or buf.dtype != x.dtype:
            buf = x.clone()
            self._pool = [b for b in self._pool if b is self.pinned][:1] + [buf]
        else:
            buf.copy_(x)
        return buf

    def _hit(self) -> bool:
        last = self.last
        if last is None or last[2]._version != self._grad_version:
            return False
        version = self.x._version
        if self._same_at == version:
            return True
        if _same(last[0], self.x.detach()):
            self._same_at = version
            return True
        return False

    def evaluate(self, backward: bool = True) -> Tensor:
        """``f(x)``; with ``backward``, ``x.grad`` set and the value detached (remembered, so a
        repeated call at the same point costs nothing). Without, a fresh value attached to its
        graph, as a closure returns it: a module may differentiate it (``Newton``)."""
        if backward and self._hit():
            assert self.last is not None
            if backward:
                self.x.grad = self.last[2]
            return self.last[1]
        if not backward and self.graph is not None and self.graph[0] == self.x._version:
            return self.graph[1]  # x untouched since that evaluation: its graph still applies
        self.nfev += 1
        with torch.enable_grad():
            value = self.f(self.x)
            if not isinstance(value, Tensor) or value.numel() != 1:
                raise TypeError(f"minimize: f must return a tensor with one element, got {value!r:.80}")
            value = value.reshape(())
            if self.keep_graph:
                self.graph = (self.x._version, value)
            if backward:
                self.ngev += 1
                (grad,) = torch.autograd.grad(value, self.x, allow_unused=True, retain_graph=self.keep_graph)
                grad = (torch.zeros_like(self.x) if grad is None else grad).detach()
                self.x.grad = grad  # shared with the cache: a module that changes it in place invalidates it
                self.last = (self._copy_of_x(), value.detach(), grad)
                self._same_at, self._grad_version = self.x._version, grad._version
                return value.detach()
        return value


def _prepare(
    owner: str, x0: Any, modules: tuple[Any, ...], method: str | None, default: str,
    chains: dict[str, Callable[[], list[Module]]], names: tuple[str, ...], tol: Any, max_steps: Any, max_evals: Any,
) -> tuple[Any, ...]:
    """The checked arguments of :func:`minimize` and :func:`least_squares`: the chain (given, or
    the method's), with errors that name the function and the argument."""
    if not isinstance(x0, Tensor) or not x0.is_floating_point():
        raise TypeError(f"{owner}: x0 must be a floating-point tensor, got {x0!r:.80}")
    if modules and method is not None:
        raise ValueError(f"{owner}: give either modules or method, not both (got method={method!r} and {len(modules)} modules)")
    name = default if method is None else method
    if not modules:
        if name not in chains:
            raise ValueError(f"{owner}: unknown method {name!r}; use one of {names} or pass modules")
        modules = tuple(chains[name]())
    if not (isinstance(tol, (int, float)) and tol >= 0 and math.isfinite(tol)):
        raise ValueError(f"{owner}: tol must be a finite number >= 0, got {tol!r}")
    if not (isinstance(max_steps, int) and max_steps >= 0):
        raise ValueError(f"{owner}: max_steps must be an integer >= 0, got {max_steps!r}")
    if max_evals is not None and not (isinstance(max_evals, int) and max_evals >= 1):
        raise ValueError(f"{owner}: max_evals must be an integer >= 1 or None, got {max_evals!r}")
    return modules


def minimize(
    f: Callable[[Tensor], Tensor],
    x0: Tensor,
    *modules: Any,
    method: str | None = None,
    tol: float = 1e-5,
    max_steps: int = 1000,
    max_evals: int | None = None,
) -> MinimizeResult:
    r"""Minimizes ``f(x)`` from ``x0``, as ``scipy.optimize.minimize``; the gradient comes from
    autograd.

    The chain is ``modules`` when given, else the one ``method`` names (default ``"lbfgs"``):

    - ``"lbfgs"``: ``LBFGS(), StrongWolfe()``; ``"bfgs"``: ``BFGS(), StrongWolfe()``;
    - ``"cg"``: ``PolakRibiere(), StrongWolfe(c2=0.1, a_init="first-order")``;
    - ``"sr1"``: ``SR1(), StrongWolfe(plus_minus=True)``; ``"gd"``: ``Backtracking(maxiter=60)``;
    - ``"newton"``: ``Newton(), Backtracking()``; ``"newton-cg"``: ``NewtonCG(), StrongWolfe()``;
    - ``"trust-ncg"``: ``NewtonCGSteihaug()``; ``"trust-exact"``: ``LevenbergMarquardt(more=True)``
      (the subproblem solved exactly, as scipy's, in Moré's scaled region);
      ``"dogleg"``: ``Dogleg()`` (the scipy methods of these names).

    It stops with ``success=True`` when $\lVert \nabla f(x) \rVert_\infty \le$ ``tol`` (scipy's
    ``gtol``), and otherwise after ``max_steps`` steps, after ``max_evals`` evaluations of ``f``,
    when a step does not move ``x`` (the line search found no step), or when $f$ is not finite.
    An evaluation at a point already evaluated (where the line search stopped) is not repeated.

    Args:
        f: a function of one tensor returning a scalar tensor, written with torch ops.
        x0: the starting point; ``x`` keeps its shape, dtype and device.
        *modules: the chain (optional).
        method: a method string (see above), or ``None`` (``"lbfgs"`` when no modules).
        tol: the gradient tolerance, ``>= 0`` (default: ``1e-5``).
        max_steps: steps at most (default: ``1000``).
        max_evals: evaluations of ``f`` at most, or ``None`` (default: ``None``).

    Returns:
        A :class:`MinimizeResult`.

    Example:
        >>> import torch, torchzero as tz
        >>> rosen = lambda x: (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        >>> res = tz.minimize(rosen, torch.tensor([-1.2, 1.0], dtype=torch.float64))
        >>> res.success, res.x.round(decimals=4), res.message
        (True, tensor([1., 1.], dtype=torch.float64), 'the gradient tolerance was met')
    """
    modules = _prepare("minimize", x0, modules, method, "lbfgs", _methods(), METHODS, tol, max_steps, max_evals)

    x = torch.nn.Parameter(x0.detach().clone())
    opt = Modular([x], *modules)
    objective = _Objective(f, x)
    objective.keep_graph = any(getattr(m, "USES_LOSS_GRAPH", False) for _, m in opt.chain.named_modules())

    def closure(backward: bool = True) -> Tensor:
        return objective.evaluate(backward)

    nit = nhev = 0
    message = f"the maximum number of steps ({max_steps}) was reached"
    success = False
    while True:
        value = objective.evaluate(True)
        grad = objective.last[2] if objective.last is not None else torch.zeros_like(x)
        if not math.isfinite(float(value)):
            message = "f is not finite at x"
            break
        if _max_abs(grad) <= tol:
            success, message = True, "the gradient tolerance was met"
            break
        if nit >= max_steps:
            break
        if max_evals is not None and objective.nfev >= max_evals:
            message = f"the maximum number of evaluations ({max_evals}) was reached"
            break
        before = objective.pinned = objective.last[0] if objective.last is not None else x.detach().clone()  # x, as evaluated above
        opt.step(closure)
        nit += 1
        nhev += sum(int(v) for k, v in opt.stats().items() if k.endswith(("/hvps", "/hessians")))
        if opt.terminated:
            message = "a termination module ended the optimization"
            break
        if _same(before, x.detach()):
            message = "the step did not move x (the line search found no acceptable step)"
            break
    value = objective.evaluate(True)
    grad = objective.last[2] if objective.last is not None else torch.zeros_like(x)
    return MinimizeResult(
        x=x.detach().clone(), fun=float(value), grad=grad.clone(), nit=nit, nfev=objective.nfev, ngev=objective.ngev,
        success=success, message=message, nhev=nhev,
    )


def _least_squares_methods() -> dict[str, Callable[[], list[Module]]]:
    from . import modules as m

    return {
        "lm": lambda: [m.LevenbergMarquardt(m.GaussNewton(reg=0.0), more=True)],
        "gauss-newton": lambda: [m.GaussNewton(), m.Backtracking()],
        "lbfgs": lambda: [m.SumOfSquares(), m.LBFGS(), m.StrongWolfe()],
    }


#: The method strings :func:`least_squares` understands.
LEAST_SQUARES_METHODS = ("lm", "gauss-newton", "lbfgs")


@dataclass
class LeastSquaresResult:
    r"""What :func:`least_squares` found, named as scipy's ``least_squares`` result.

    Attributes:
        x: the last point (a tensor shaped like ``x0``).
        fun: the residuals $r(x)$ (flattened).
        cost: $\lVert r(x)\rVert^2$ (note: scipy's ``cost`` is half of it).
        grad: the gradient of the cost, $2 J^T r$.
        nit: steps taken.
        nfev: evaluations of the residuals.
        njev: evaluations of the Jacobian (or of the cost's gradient, for methods without $J$).
        success: whether the gradient tolerance was met.
        message: why it stopped.
    """

    x: Tensor
    fun: Tensor
    cost: float
    grad: Tensor
    nit: int
    nfev: int
    njev: int
    success: bool
    message: str


class _Replay(torch.autograd.Function):
    """Residuals evaluated earlier at a copy ``xc`` of ``x``, attached to ``x`` now: the backward
    pass replays the graph kept from that evaluation (differentiably, for Jacobian products)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, values: Tensor, xc: Tensor, r: Tensor) -> Tensor:  # type: ignore[override]
        ctx.xc, ctx.r = xc, r
        return values.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None]:  # type: ignore[override]
        (g,) = torch.autograd.grad(ctx.r, ctx.xc, grad, retain_graph=True, create_graph=torch.is_grad_enabled(), allow_unused=True)
        return (torch.zeros_like(ctx.xc) if g is None else g), None, None, None


class _Residuals:
    """``fun`` as a residual closure over ``x`` that counts its evaluations and remembers the
    last one: the trial point a trust region accepted is not evaluated again at the next step
    (the function is deterministic). ``fun`` runs on a copy of ``x`` whose graph is kept, since
    ``x`` itself is moved in place between the evaluation and the use of its Jacobian."""

    def __init__(self, fun: Callable[[Tensor], Any], x: Tensor):
        self.fun, self.x = fun, x
        self.nfev = 0
        self.last: tuple[Tensor, Tensor, Tensor] | None = None  # (xc, r of xc with its graph, r's values)

    def evaluate(self, backward: bool = True) -> Tensor:
        last = self.last
        if last is None or not _same(last[0], self.x.detach()):
            self.nfev += 1
            xc = self.x.detach().clone().requires_grad_()
            with torch.enable_grad():
                r = self.fun(xc)
            if not isinstance(r, Tensor) or not r.is_floating_point():
                raise TypeError(f"least_squares: fun must return the residuals as a floating-point tensor, got {r!r:.80}")
            last = self.last = (xc, r, r.detach())
        with torch.enable_grad():
            return _Replay.apply(self.x, last[2], last[0], last[1])


def least_squares(
    fun: Callable[[Tensor], Tensor],
    x0: Tensor,
    *modules: Any,
    method: str | None = None,
    tol: float = 1e-8,
    max_steps: int = 1000,
    max_evals: int | None = None,
) -> LeastSquaresResult:
    r"""Minimizes $\lVert r(x)\rVert_2^2$ for residuals ``r = fun(x)``, as
    ``scipy.optimize.least_squares``; the Jacobian comes from autograd.

    The chain is ``modules`` when given (with a least-squares module in it), else the one
    ``method`` names (default ``"lm"``):

    - ``"lm"``: ``LevenbergMarquardt(GaussNewton(reg=0.0), more=True)``, scipy's ``method="lm"``
      (MINPACK's ``lmder``, Moré 1978);
    - ``"gauss-newton"``: ``GaussNewton(), Backtracking()``;
    - ``"lbfgs"``: ``SumOfSquares(), LBFGS(), StrongWolfe()``.

    It stops with ``success=True`` when $\lVert 2 J^T r\rVert_\infty \le$ ``tol``, checked on
    the gradient each step computes anyway (``TerminateByGradientNorm`` first in the chain), and
    otherwise after ``max_steps`` steps or ``max_evals`` evaluations of ``fun``, or when a step
    does not move ``x``. A point already evaluated (the trial point a trust region accepted) is
    not evaluated again: each accepted point costs one evaluation of $r$ and one of $J$, as
    MINPACK counts them.

    Args:
        fun: a function of one tensor returning the residuals (a tensor of any shape).
        x0: the starting point; ``x`` keeps its shape, dtype and device.
        *modules: the chain (optional).
        method: a method string (see above), or ``None`` (``"lm"`` when no modules).
        tol: the gradient tolerance, ``>= 0`` (default: ``1e-8``).
        max_steps: steps at most (default: ``1000``).
        max_evals: evaluations of ``fun`` at most, or ``None`` (default: ``None``).

    Returns:
        A :class:`LeastSquaresResult`.

    Example:
        >>> import torch, torchzero as tz
        >>> t = torch.linspace(0, 4, 20, dtype=torch.float64)
        >>> y = 2.5 * torch.exp(-1.3 * t)
        >>> res = tz.least_squares(lambda p: p[0] * torch.exp(-p[1] * t) - y, torch.tensor([1.0, 0.5], dtype=torch.float64))
        >>> res.success, res.x.round(decimals=6)
        (True, tensor([2.5000, 1.3000], dtype=torch.float64))
    """
    from .modules import TerminateByGradientNorm

    modules = _prepare(
        "least_squares", x0, modules, method, "lm", _least_squares_methods(), LEAST_SQUARES_METHODS, tol, max_steps, max_evals
    )

    x = torch.nn.Parameter(x0.detach().clone())
    opt = Modular([x], TerminateByGradientNorm(tol, ord=math.inf), *modules)
    if not opt._residuals:
        raise ValueError("least_squares: the chain has no least-squares module (tz.m.GaussNewton or tz.m.SumOfSquares)")
    residuals = _Residuals(fun, x)

    def closure(backward: bool = True) -> Tensor:
        return residuals.evaluate(backward)

    nit = njev = 0
    message = f"the maximum number of steps ({max_steps}) was reached"
    success = False
    while True:
        if max_evals is not None and residuals.nfev >= max_evals:
            message = f"the maximum number of evaluations ({max_evals}) was reached"
            break
        before = x.detach().clone()
        opt.step(closure)
        njev += int(opt.stats()["ngev"])
        if opt.terminated:
            success, message = True, "the gradient tolerance was met"
            break
        nit += 1
        if not math.isfinite(float(opt.stats().get("nfev", 0.0))) or x.grad is None or not bool(torch.isfinite(x.grad).all()):
            message = "the residuals or their gradient are not finite at x"
            break
        if _same(before, x.detach()):
            message = "the step did not move x"
            break
        if nit >= max_steps:
            break
    r = residuals.evaluate().detach().reshape(-1)
    grad = x.grad.detach().clone() if x.grad is not None else torch.zeros_like(x)
    return LeastSquaresResult(
        x=x.detach().clone(), fun=r.clone(), cost=float((r * r).sum()), grad=grad, nit=nit, nfev=residuals.nfev, njev=njev,
        success=success, message=message,
    )
