"""``LineSearch``: the base of modules that scale the update by a step length they search for,
re-evaluating the closure at trial points."""
from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

import torch
from torch import Tensor

from ...core.module import Module
from ...core.var import Var

__all__ = ["LineSearch", "Trials"]


def _dot(a: list[Tensor], b: list[Tensor]) -> float:
    """``sum(a_i . b_i)`` in float64, read on the host (one sync)."""
    if not a:
        return 0.0
    # one fused pass per tensor (no product tensor); float64 accumulation
    return float(sum(torch.dot(x.reshape(-1).double(), y.reshape(-1).double()) for x, y in zip(a, b)))


def _global_mean(value: float) -> float:
    """``value`` averaged over the ranks of the default process group (as is where there is
    none): under data parallelism each rank's closure returns the loss of its own batch, and
    every rank must decide on the same number (the gradients are already averaged by DDP)."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t) / dist.get_world_size()


_FEW = 8  # parameters at most for the scratch buffers (more: one foreach call beats a loop)


def _fits(buffers: list[Tensor] | None, params: list[Tensor]) -> bool:
    return buffers is not None and len(buffers) == len(params) and all(
        b.shape == p.shape and b.dtype == p.dtype and b.device == p.device for b, p in zip(buffers, params)
    )


class Trials:
    r"""The objective along the update, $\phi(a) = f(x - a\,d)$, for a line search.

    Moves the parameters to $x - a\,d$ (from the saved $x$), calls the closure, and keeps count.
    :meth:`restore` puts the parameters back at $x$.

    Attributes:
        f0: $\phi(0)$, the loss at $x$ (a float).
        g0: $\phi'(0) = -g \cdot d$ (a float).
        evaluations: closure calls made so far.
    """

    def __init__(self, var: Var, direction: list[Tensor], scratch: dict[str, list[Tensor]] | None = None):
        if var.closure is None:
            raise RuntimeError(
                "a line search evaluates the loss at trial points: pass a closure to opt.step(closure), "
                "written as `def closure(backward=True): ...` (see the Modular docstring)"
            )
        self.var = var
        self.params = var.params
        self.direction = direction
        # x and a d in buffers the caller keeps between steps (``scratch``): a trial is then two
        # passes (a d into its buffer, x0 - a d), and the accepted trial's a d is the update
        self._step: list[Tensor] | None = None
        if scratch is not None and len(self.params) <= _FEW:
            for key in ("x0", "step"):
                if not _fits(scratch.get(key), self.params):
                    scratch[key] = [torch.empty_like(p, memory_format=torch.contiguous_format) for p in self.params]
            torch._foreach_copy_(scratch["x0"], [p.detach() for p in self.params])
            self.x0, self._step = scratch["x0"], scratch["step"]
        else:
            self.x0 = [p.detach().clone() for p in self.params]
        self._scratch = scratch
        self._step_a: float | None = None  # the a whose a d the step buffer holds
        self._at = 0.0  # the step the parameters are at
        self.f0 = _global_mean(float(var.get_loss(backward=False)))
        self.g0 = -_dot(var.get_grad(), direction)
        self.evaluations = 0

    def _move(self, a: float) -> None:
        with torch.no_grad():
            if self._at != 0:
                torch._foreach_copy_(self.params, self.x0)
            if a != 0:  # x0 - (a d): the same operations as the step applied in the end
                if self._step is None:
                    step = torch._foreach_mul(self.direction, a)
                else:
                    step = self._step
                    for b, d in zip(step, self.direction):
                        torch.mul(d, a, out=b)
                    self._step_a = a
                torch._foreach_sub_(self.params, step)
        self._at = a

    def direction_max_abs(self) -> float:
        r"""$\max|d|$ over all tensors of the direction (0 for none)."""
        return max((float(d.abs().max()) for d in self.direction if d.numel()), default=0.0)

    def scaled_direction(self, a: float) -> list[Tensor]:
        r"""$a\,d$, the update a search that accepted ``a`` hands on: the buffer a trial at ``a``
        already filled (the same numbers as that trial's point; the caller then owns it), else
        the direction multiplied in place."""
        if self._step is not None and self._step_a == a and self._scratch is not None:
            step, self._step, self._step_a = self._step, None, None
            self._scratch.pop("step", None)  # a new buffer for the next search
            return step
        torch._foreach_mul_(self.direction, a)
        return self.direction

    def value(self, a: float) -> float:
        r"""$\phi(a)$ (``inf`` where the loss is not finite)."""
        self._move(a)
        self.evaluations += 1
        with torch.enable_grad():
            loss = self.var.closure(False)  # type: ignore[misc]
        f = _global_mean(float(loss))
        return f if math.isfinite(f) else math.inf

    def value_and_slope(self, a: float) -> tuple[float, float]:
        r"""$(\phi(a), \phi'(a))$, the slope from the gradient at the trial point."""
        self._move(a)
        self.evaluations += 1
        with torch.enable_grad():
            loss = self.var.closure(True)  # type: ignore[misc]
        f = _global_mean(float(loss))
        if not math.isfinite(f):
            return math.inf, math.nan
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        return f, -_dot(grads, self.direction)

    def restore(self) -> None:
        """Puts the parameters back where the step started."""
        self._move(0.0)


class LineSearch(Module):
    r"""A module that multiplies the update $d$ by a step length $a$ it searches for along
    $x - a\,d$, calling the closure at trial points (subclasses implement :meth:`search`).

    Under data parallelism (an initialized ``torch.distributed`` process group), the losses
    are averaged over the ranks before each decision, so every rank takes the same step (DDP
    averages the gradients). The parameters are where the step started when the module returns; ``Modular`` then moves
    them by $a\,d$. The step length and the closure calls of the search are in ``opt.stats()``
    (``"<Module>/step_size"``, ``"<Module>/evaluations"``). When the update is not a descent
    direction ($g \cdot d \le 0$) or no step is found, the step length is 0 and the parameters
    stay where they are.
    """

    def __init__(self, defaults: dict[str, Any] | None = None):
        super().__init__(defaults)

    @abstractmethod
    def search(self, trials: Trials, settings: dict[str, Any]) -> float:
        """The step length (0 if none is acceptable)."""

    def step(self, var: Var) -> Var:
        if not var.params:
            return var
        direction = var.get_update()
        trials = Trials(var, direction, self.__dict__.setdefault("_scratch", {}))
        settings = self.settings_list(var.params).coupled(self.defaults, type(self).__name__)
        self.clear_stats()
        a = 0.0
        if trials.g0 > 0 and settings.get("plus_minus"):  # an ascent direction: search along -d
            torch._foreach_neg_(direction)
            trials.g0 = -trials.g0
        try:
            if trials.g0 < 0 and math.isfinite(trials.f0):
                a = float(self.search(trials, settings))
        finally:
            trials.restore()
        if not math.isfinite(a):
            a = 0.0
        var.update = trials.scaled_direction(a)
        self.record_stats(**self._last_stats, step_size=torch.tensor(a), evaluations=torch.tensor(float(trials.evaluations)))
        return var
