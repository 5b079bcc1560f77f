"""``GradientAccumulation``: sum or average the update over several steps before passing it on."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.module import Module
from ...core.var import Var
from ...utils.validation import check_bool, check_int

__all__ = ["GradientAccumulation"]


class GradientAccumulation(Module):
    r"""Accumulates the incoming update over ``n`` steps and passes on their mean (or sum).

    Steps are counted in cycles of ``n``. On steps $1..n-1$ of a cycle the update is added to an
    accumulator; on step $n$ the update becomes

    $$u \leftarrow \frac{1}{n} \sum_{k=1}^{n} u_k \quad (\text{or } \textstyle\sum_k u_k \text{ with } \texttt{mean=False})$$

    and the next cycle starts from zero. With ``stop=True`` the non-final steps are skipped
    entirely (``var.skip_update``): the modules after this one do not run and the parameters do
    not move, so ``GradientAccumulation(4)`` followed by ``Adam`` is one Adam step on the mean of
    four gradients, every fourth step — the same as a four times larger batch. With
    ``stop=False`` the non-final steps pass their own update on unchanged.

    A parameter without a gradient on some step of a cycle contributes zero for that step (the
    mean still divides by ``n``); one without a gradient on the final step of a cycle is not
    moved, and what it accumulated in that cycle is dropped. ``n``, ``mean`` and ``stop`` apply to
    all parameters (they are not per-parameter settings). The step counter is in
    ``global_state`` (saved by ``Modular.state_dict()``), the accumulators in the per-parameter
    state. ``stop`` takes effect where the module runs in a chain that honours ``skip_update``
    (``Modular``, ``Chain``, ``Split``, ``Alternate``); inside an ``inner=`` chain or an operand of
    an op the skip is not seen by the outer module.

    Args:
        n: number of steps to accumulate, an int ``>= 1``.
        mean: pass the mean of the ``n`` updates; ``False``: their sum (default: ``True``).
        stop: skip the step (later modules and the parameter update) on non-final steps
            (default: ``True``).

    Example:
        Adam on gradients accumulated over 4 mini-batches:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.GradientAccumulation(4), tz.m.Adam(), tz.m.LR(1e-3))
        >>> for i in range(8):
        ...     opt.zero_grad()
        ...     model(torch.randn(16, 4)).pow(2).mean().backward()
        ...     opt.step()  # the parameters move on the 4th and the 8th step only
    """

    STATE_KEYS = {"accumulator": "like_param", "cycle": "count"}

    def __init__(self, n: int, mean: bool = True, stop: bool = True):
        super().__init__(dict(n=n, mean=mean, stop=stop))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        if "n" in s:
            check_int("n", s["n"], owner="GradientAccumulation", min=1)
        if "mean" in s:
            check_bool("mean", s["mean"], owner="GradientAccumulation")
        if "stop" in s:
            check_bool("stop", s["stop"], owner="GradientAccumulation")

    def step(self, var: Var) -> Var:
        if not var.params:
            return var
        n, mean, stop = self.defaults["n"], self.defaults["mean"], self.defaults["stop"]
        step = self.global_state.get("step", 0)
        self.global_state["step"] = step + 1
        cycle = step // n
        update = var.get_update()
        restart: tuple[list[Tensor], list[Tensor]] = ([], [])
        add: tuple[list[Tensor], list[Tensor]] = ([], [])
        accumulators: list[Tensor] = []
        for p, u in zip(var.params, update):
            st = self.state[p]
            if "accumulator" not in st:
                st["accumulator"] = u.clone()
            elif st["cycle"] == cycle:
                add[0].append(st["accumulator"])
                add[1].append(u)
            else:
                restart[0].append(st["accumulator"])
                restart[1].append(u)
            st["cycle"] = cycle
            accumulators.append(st["accumulator"])
        if restart[0]:
            torch._foreach_copy_(*restart)
        if add[0]:
            torch._foreach_add_(*add)
        if (step + 1) % n == 0:
            var.update = list(torch._foreach_div(accumulators, n)) if mean else [a.clone() for a in accumulators]
        elif stop:
            var.skip_update = True
        return var
