"""``Rprop``: resilient backpropagation (Riedmiller & Braun, 1993)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.transform import Context, Settings, States, Transform
from ...functional.rprop import rprop_
from ...utils.validation import check_bool, check_number

__all__ = ["Rprop"]


class Rprop(Transform):
    r"""Rprop: a per-element step size that grows while the update keeps its sign and shrinks when it flips.

    Each element keeps a step size $\Delta$ (starting at $\alpha$) and the sign $p$ of its
    previous update. With $s = \operatorname{sign}(u_t)\, p$:

    $$
    \begin{aligned}
    \Delta_t &= \operatorname{clamp}(\Delta_{t-1}\, \eta,\ lb,\ ub), \qquad
        \eta = \eta^+ \ (s > 0), \quad \eta^- \ (s < 0), \quad 1 \ (s = 0) \\
    u_t &\leftarrow \operatorname{sign}(u_t)\, \Delta_t \ (s \ge 0), \qquad
        u_t \leftarrow -u_{t-1} \text{ (backtrack) or } 0 \ (s < 0) \\
    p &\leftarrow \operatorname{sign}(u_t) \ (s \ge 0), \qquad p \leftarrow 0 \ (s < 0)
    \end{aligned}
    $$

    Where the sign flipped, the step overshot a minimum: with ``backtrack=True`` the previous
    update of that element is undone (Rprop with weight backtracking, the original algorithm);
    with ``backtrack=False`` that element does not move (torch's Rprop). Either way $p$ is reset
    to 0, so the next step of that element leaves its $\Delta$ unchanged.

    **Relation to torch.** ``torch.optim.Rprop(lr, etas, step_sizes)`` starts every step size at
    ``lr`` and clamps it to ``step_sizes`` in absolute units. Here step sizes are relative to the
    ``LR`` that follows: they start at ``alpha`` (default 1, so the first step is ``lr``) and
    ``lb``/``ub`` bound them before the multiplication by ``lr``. Hence, exactly,

    - ``Rprop(nplus, nminus, lb=min / lr, ub=max / lr, backtrack=False), LR(lr)`` is
      ``torch.optim.Rprop(lr=lr, etas=(nminus, nplus), step_sizes=(min, max))``;
    - ``Rprop(nplus, nminus, lb=min, ub=max, backtrack=False, alpha=lr)`` alone is the same
      optimizer with the step sizes in absolute units;
    - with the defaults and ``LR(lr)`` the bounds are ``(1e-6 * lr, 50 * lr)``.

    Sign changes are detected from the signs of the updates, so two tiny updates whose product
    underflows still count (torch multiplies the gradients themselves). The backtracking undo
    replays the previous output of this module, so it is exact when the modules after
    ``Rprop`` are fixed scalings (``LR`` without a schedule).

    Args:
        nplus: factor $\eta^+$ for elements whose sign stayed, ``>= 1`` (default: ``1.2``).
        nminus: factor $\eta^-$ for elements whose sign flipped, in ``(0, 1]`` (default: ``0.5``).
        lb: lower bound of the step sizes, ``>= 0`` (default: ``1e-6``).
        ub: upper bound of the step sizes, ``>= lb``, may be ``inf`` (default: ``50``).
        backtrack: undo the previous update where the sign flipped, instead of not moving
            (default: ``True``).
        alpha: initial step size, ``> 0`` (default: ``1``).

    Example:
        Full-batch Rprop with weight backtracking:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Rprop(), tz.m.LR(1e-2))

        ``torch.optim.Rprop(params, lr=1e-2)`` (``step_sizes=(1e-6, 50)``):

        >>> opt = tz.Modular(model.parameters(), tz.m.Rprop(lb=1e-6 / 1e-2, ub=50 / 1e-2, backtrack=False), tz.m.LR(1e-2))

    References:
        Riedmiller, M., & Braun, H. (1993). A direct adaptive method for faster backpropagation
        learning: the RPROP algorithm. IEEE International Conference on Neural Networks,
        586-591. https://doi.org/10.1109/ICNN.1993.298623
    """

    STATE_KEYS = {"prev": "like_param", "step_size": "like_param"}

    def __init__(
        self,
        nplus: float = 1.2,
        nminus: float = 0.5,
        lb: float = 1e-6,
        ub: float = 50,
        backtrack: bool = True,
        alpha: float = 1,
    ):
        super().__init__(dict(nplus=nplus, nminus=nminus, lb=lb, ub=ub, backtrack=backtrack, alpha=alpha))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "Rprop"
        if "nplus" in s:
            check_number("nplus", s["nplus"], owner=o, min=1.0)
        if "nminus" in s:
            check_number("nminus", s["nminus"], owner=o, min=0.0, max=1.0, min_inclusive=False)
        if "lb" in s:
            check_number("lb", s["lb"], owner=o, min=0.0)
        if "ub" in s:
            check_number("ub", s["ub"], owner=o, min=0.0, allow_inf=True)
        if "lb" in s and "ub" in s and s["lb"] > s["ub"]:
            raise ValueError(f"Rprop: lb must be <= ub, got lb={s['lb']!r} and ub={s['ub']!r}")
        if "backtrack" in s:
            check_bool("backtrack", s["backtrack"], owner=o)
        if "alpha" in s:
            check_number("alpha", s["alpha"], owner=o, min=0.0, min_inclusive=False)

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        st = {
            "prev": torch.zeros_like(tensor, memory_format=torch.preserve_format),
            "step_size": torch.full_like(tensor, setting["alpha"], memory_format=torch.preserve_format),
        }
        if setting["backtrack"]:
            st["prev_update"] = torch.zeros_like(tensor, memory_format=torch.preserve_format)
        return st

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        out: list[Any] = [None] * len(tensors)
        for (backtrack,), idx in settings.groups("backtrack"):
            sts = [states[i] for i in idx]
            if backtrack:  # backtrack switched on after the state was made
                for i in states.missing("prev_update"):
                    if i in idx:
                        states[i]["prev_update"] = torch.zeros_like(tensors[i], memory_format=torch.preserve_format)
            res = rprop_(
                [tensors[i] for i in idx],
                [st["prev"] for st in sts],
                [st["step_size"] for st in sts],
                *settings.subset(idx).values("nplus", "nminus", "lb", "ub"),
                [st["prev_update"] for st in sts] if backtrack else None,
            )
            for i, r in zip(idx, res):
                out[i] = r
        return out
