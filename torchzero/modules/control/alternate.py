"""``Alternate`` (cycle through modules) and ``Multistep`` (several inner steps per step)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from ...core.module import Module
from ...core.var import Var
from ...utils.validation import MAX_ITERATIONS, check_int

__all__ = ["Alternate", "Multistep"]


class Alternate(Module):
    r"""Cycles through ``modules``: the first for ``steps`` steps, then the second, and so on.

    On step $t$ (counting from 0) with ``steps`` $= s$ and $k$ modules, module
    $\lfloor t / s \rfloor \bmod k$ transforms the update; with one count per module the cycle
    is their sum. Only the active module runs (and updates its state) on a step. The step counter
    is kept in ``global_state["step"]``, which ``Modular.state_dict()`` saves under
    ``"global_state"``, so a resumed run continues the cycle where it was.

    Args:
        *modules: modules or lists of modules (a list is a chain), at least one.
        steps: how many consecutive steps each module runs: an int ``>= 1``, or one int per
            module (default: ``1``).

    Example:
        Alternate between Adam and signSGD every 10 steps:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Alternate(tz.m.Adam(), [tz.m.Sign(), tz.m.Mul(0.1)], steps=10), tz.m.LR(1e-3))
    """

    def __init__(self, *modules: Any, steps: int | Iterable[int] = 1):
        if not modules:
            raise ValueError("Alternate: modules is empty; pass at least one module, e.g. Alternate(tz.m.Adam(), tz.m.Sign())")
        if isinstance(steps, Iterable) and not isinstance(steps, (str, bytes)):
            steps = tuple(steps)
            if len(steps) != len(modules):
                raise ValueError(f"Alternate: steps must be an int or one int per module ({len(modules)}), got {steps!r}")
        super().__init__({"steps": steps})
        for i, m in enumerate(modules):
            try:
                self.set_child(str(i), m)
            except (TypeError, ValueError) as e:
                raise type(e)(f"Alternate: modules[{i}] must be a module or a non-empty list of modules, got {m!r}") from e

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        if "steps" in s:
            v = s["steps"]
            for x in v if isinstance(v, tuple) else (v,):
                check_int("steps", x, owner="Alternate", min=1)

    def current(self, step: int) -> int:
        """Index of the module that runs on step ``step`` (counting from 0)."""
        steps = self.defaults["steps"]
        n = len(self.children)
        if isinstance(steps, int):
            return (step // steps) % n
        r = step % sum(steps)
        for i, s in enumerate(steps):
            if r < s:
                return i
            r -= s
        raise AssertionError("unreachable")

    def step(self, var: Var) -> Var:
        if not var.params:
            return var
        step = self.global_state.get("step", 0)
        self.global_state["step"] = step + 1
        # indexed by position, not by str(index): under torch.compile the step counter may be symbolic
        return list(self.children.values())[self.current(step)].step(var)


class Multistep(Module):
    r"""Takes ``steps`` inner steps with ``module`` per step; the update is their total displacement.

    As in torchzero 0.3.x: the first inner step uses this step's gradient; then, for each further
    inner step, the parameters are moved by the inner update, the closure is evaluated at the new
    point and ``module`` runs again on the new gradient. Afterwards the parameters are restored and

    $$u \leftarrow x_0 - x_{\text{steps}}$$

    is passed on, so ``Multistep([Adam(), LR(1e-3)], 5)`` alone takes five Adam steps per call
    (each on a fresh gradient), and modules after it scale or transform the whole displacement
    (e.g. a Lookahead-like outer step size). Note that this is not "apply ``module`` ``steps``
    times to the same update": that would update stateful modules' state ``steps`` times with
    their own outputs, which has no sensible meaning.

    ``steps > 1`` needs a closure (``opt.step(closure)``), which is evaluated ``steps - 1``
    extra times. After the step ``var.grad`` is (a copy of) the gradient at the starting point,
    while ``p.grad`` holds the last inner gradient. Inner steps that skip (``skip_update``) do
    not move the parameters; if all of them skip, the step is skipped. The inner module keeps its
    state under the child name ``module``.

    Args:
        module: a module or list of modules (a chain) that forms each inner step's update,
            usually ending with a step size such as ``LR``.
        steps: the number of inner steps, an int in ``[1, 10_000]``.

    Example:
        Three SGD steps per call, taken as one update and halved (a Lookahead-like outer step):

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> x, y = torch.randn(16, 4), torch.randn(16, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Multistep(tz.m.LR(0.1), steps=3), tz.m.LR(0.5))
        >>> def closure(backward=True):
        ...     loss = (model(x) - y).pow(2).mean()
        ...     if backward:
        ...         opt.zero_grad()
        ...         loss.backward()
        ...     return loss
        >>> loss = opt.step(closure)
    """

    def __init__(self, module: Any, steps: int):
        super().__init__({"steps": steps})
        self.set_child("module", module)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        if "steps" in s:
            check_int("steps", s["steps"], owner="Multistep", min=1, max=MAX_ITERATIONS)

    def step(self, var: Var) -> Var:
        module = self.children["module"]
        steps = self.defaults["steps"]
        if steps == 1 or not var.params:
            return module.step(var)
        if var.closure is None:
            raise RuntimeError(
                f"Multistep: steps={steps} evaluates the gradient at {steps - 1} new points per step, which needs a "
                "closure: opt.step(closure) with closure(backward=True) computing the loss and gradients"
            )
        params = var.params
        start = [p.clone() for p in params]
        grad0 = [g.clone() for g in var.get_grad()]
        cur = module.step(var)
        loss0 = cur.loss  # the loss at the starting point, if known
        moved = False
        for _ in range(steps - 1):
            if not cur.skip_update:
                torch._foreach_sub_(params, cur.get_update())
                moved = True
            cur = module.step(Var(params=params, closure=var.closure, storage=var.storage))
        if not cur.skip_update:
            torch._foreach_sub_(params, cur.get_update())
            moved = True
        update = list(torch._foreach_sub(start, params))
        torch._foreach_copy_(params, start)
        var.update = update
        var.grad = grad0
        var.loss = loss0
        var.skip_update = not moved
        return var
