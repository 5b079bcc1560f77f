"""Termination: modules that end the optimization when a criterion is met."""
from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import torch

from ...core.module import Module
from ...core.var import Var
from ...functional.norms import global_norm, parse_ord
from ...utils.validation import MAX_ITERATIONS, check_int, check_number

__all__ = [
    "TerminationCriteriaBase",
    "TerminateAfterNSteps",
    "TerminateByGradientNorm",
    "TerminateByUpdateNorm",
    "TerminateOnNoImprovement",
    "TerminateOnLossReached",
    "TerminateAny",
    "TerminateAll",
]


def _check_tol_ord(s: Mapping[str, Any], owner: str) -> None:
    if "tol" in s:
        check_number("tol", s["tol"], owner=owner, min=0.0)
    if "ord" in s:
        parse_ord(s["ord"], owner=owner)


class TerminationCriteriaBase(Module):
    """A module that ends the optimization when :meth:`should_terminate` says so: the step is
    skipped (the parameters stay where they are), ``opt.terminated`` becomes True, and later
    ``opt.step`` calls only evaluate the closure (if given) and return its loss. Put it first
    in the chain to test the point before a step is taken. Subclasses implement
    :meth:`should_terminate`; ``reset()`` (or ``opt.terminated = False``) lets it go on."""

    @abstractmethod
    def should_terminate(self, var: Var) -> bool:
        """Whether the criterion is met on this step."""

    def step(self, var: Var) -> Var:
        if var.params and self.should_terminate(var):
            var.skip_update = True
            var.terminate = True
        return var


class TerminateAfterNSteps(TerminationCriteriaBase):
    """Terminates on step ``steps + 1``: ``steps`` steps are taken.

    Args:
        steps: the number of steps to take, ``>= 0``.

    Example:
        >>> import torch, torchzero as tz
        >>> w = torch.nn.Parameter(torch.zeros(2))
        >>> opt = tz.Modular([w], tz.m.TerminateAfterNSteps(3), tz.m.LR(1.0))
        >>> for _ in range(5):
        ...     w.grad = torch.ones(2)
        ...     _ = opt.step()
        >>> w.detach(), opt.terminated
        (tensor([-3., -3.]), True)
    """

    def __init__(self, steps: int):
        super().__init__({"steps": steps})

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        if "steps" in s:
            check_int("steps", s["steps"], owner="TerminateAfterNSteps", min=0)

    def should_terminate(self, var: Var) -> bool:
        taken = self.global_state.get("taken", 0)
        if taken >= self.defaults["steps"]:
            return True
        self.global_state["taken"] = taken + 1
        return False


class TerminateByGradientNorm(TerminationCriteriaBase):
    r"""Terminates when the norm of the gradient (all parameters as one vector) is at most
    ``tol``: $\lVert g \rVert_{\text{ord}} \le \text{tol}$ (scipy's ``gtol`` is this with
    ``ord=inf``).

    Args:
        tol: the tolerance, ``>= 0`` (default: ``1e-8``).
        ord: the norm (default: ``2``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(2, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.TerminateByGradientNorm(1e-6), tz.m.LBFGS(), tz.m.StrongWolfe())
    """

    def __init__(self, tol: float = 1e-8, ord: float = 2):
        super().__init__({"tol": tol, "ord": ord})

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        _check_tol_ord(s, "TerminateByGradientNorm")

    def should_terminate(self, var: Var) -> bool:
        norm = global_norm(var.get_grad(), parse_ord(self.defaults["ord"]))
        return bool(norm <= self.defaults["tol"])


class TerminateByUpdateNorm(TerminationCriteriaBase):
    r"""Terminates when the parameters moved by at most ``tol`` on the last step:
    $\lVert x_k - x_{k-1}\rVert_{\text{ord}} \le \text{tol}$ (all parameters as one vector).

    Args:
        tol: the tolerance, ``>= 0`` (default: ``1e-8``).
        ord: the norm (default: ``2``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(2, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.TerminateByUpdateNorm(1e-10), tz.m.BFGS(), tz.m.StrongWolfe())
    """

    STATE_KEYS = {"prev": "like_param"}

    def __init__(self, tol: float = 1e-8, ord: float = 2):
        super().__init__({"tol": tol, "ord": ord})

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        _check_tol_ord(s, "TerminateByUpdateNorm")

    def should_terminate(self, var: Var) -> bool:
        states = self.state.many(var.params)
        if not states.has_all("prev"):
            for p, st in zip(var.params, states):
                st["prev"] = p.detach().clone()
            return False
        prev = states["prev"]
        diff = torch._foreach_sub([p.detach() for p in var.params], prev)
        done = bool(global_norm(diff, parse_ord(self.defaults["ord"])) <= self.defaults["tol"])
        torch._foreach_copy_(prev, [p.detach() for p in var.params])
        return done


class TerminateOnNoImprovement(TerminationCriteriaBase):
    """Terminates when the loss has not improved on its best value by more than ``tol`` for
    ``n`` steps in a row (needs the closure).

    Args:
        tol: the improvement that counts, ``>= 0`` (default: ``1e-8``).
        n: steps without improvement, ``>= 1`` (default: ``10``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(2, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.TerminateOnNoImprovement(n=5), tz.m.LBFGS(), tz.m.StrongWolfe())
    """

    def __init__(self, tol: float = 1e-8, n: int = 10):
        super().__init__({"tol": tol, "n": n})

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        if "tol" in s:
            check_number("tol", s["tol"], owner="TerminateOnNoImprovement", min=0.0)
        if "n" in s:
            check_int("n", s["n"], owner="TerminateOnNoImprovement", min=1, max=MAX_ITERATIONS)

    def should_terminate(self, var: Var) -> bool:
        loss = float(var.get_loss(backward=False))
        gs = self.global_state
        best = gs.get("best", math.inf)
        if loss < best - self.defaults["tol"]:
            gs["best"], gs["stale"] = loss, 0
            return False
        gs["stale"] = gs.get("stale", 0) + 1
        return gs["stale"] >= self.defaults["n"]


class TerminateOnLossReached(TerminationCriteriaBase):
    """Terminates when the loss is at most ``value`` (needs the closure).

    Args:
        value: the target loss.

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(2, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.TerminateOnLossReached(1e-3), tz.m.LBFGS(), tz.m.StrongWolfe())
    """

    def __init__(self, value: float):
        super().__init__({"value": value})

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        if "value" in s:
            check_number("value", s["value"], owner="TerminateOnLossReached", allow_inf=True)

    def should_terminate(self, var: Var) -> bool:
        return float(var.get_loss(backward=False)) <= self.defaults["value"]


class _Combined(TerminationCriteriaBase):
    def __init__(self, *criteria: TerminationCriteriaBase):
        if not criteria or not all(isinstance(c, TerminationCriteriaBase) for c in criteria):
            raise TypeError(
                f"{type(self).__name__}: give one or more termination modules (tz.m.Terminate...), got {criteria!r}"
            )
        super().__init__()
        for i, c in enumerate(criteria):
            self.set_child(str(i), c)

    def _results(self, var: Var) -> list[bool]:
        # every criterion is evaluated each step, so the stateful ones keep counting
        return [c.should_terminate(var) for c in self.children.values()]  # type: ignore[attr-defined]


class TerminateAny(_Combined):
    """Terminates when any of the given criteria is met (each is evaluated every step).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(2, 1)
        >>> stop = tz.m.TerminateAny(tz.m.TerminateAfterNSteps(100), tz.m.TerminateByGradientNorm(1e-6))
        >>> opt = tz.Modular(model.parameters(), stop, tz.m.LBFGS(), tz.m.StrongWolfe())
    """

    def should_terminate(self, var: Var) -> bool:
        return any(self._results(var))


class TerminateAll(_Combined):
    """Terminates when all of the given criteria are met on the same step.

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(2, 1)
        >>> stop = tz.m.TerminateAll(tz.m.TerminateByGradientNorm(1e-4), tz.m.TerminateByUpdateNorm(1e-8))
        >>> opt = tz.Modular(model.parameters(), stop, tz.m.BFGS(), tz.m.StrongWolfe())
    """

    def should_terminate(self, var: Var) -> bool:
        return all(self._results(var))
