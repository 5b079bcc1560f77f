"""``Adagrad``: divides the update by the root of the sum of its past squares (Duchi et al., 2011)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.settings import as_list
from ...core.transform import Context, Settings, States, Transform
from ...functional.adagrad import adagrad_accumulate_, adagrad_denominator, adagrad_step_size
from ...utils.validation import check_bool, check_number

__all__ = ["Adagrad"]

_STRUCTURE = ("pow", "use_sqrt", "divide", "beta", "decay")


class Adagrad(Transform):
    r"""Adagrad: divides the update by the root of the accumulated powers of past updates.

    With step $t$ (counted per parameter) and $p$ = ``pow``:

    $$
    \begin{aligned}
    G_0 &= \mathtt{initial\_accumulator\_value} \\
    G_t &= G_{t-1} + |u_t|^p \quad \text{or, with } \beta \text{ = beta:} \quad
        G_t = \beta G_{t-1} + (1-\beta)|u_t|^p \\
    G_t &\leftarrow (1 - \text{decay})\, G_t \ \text{(if decay is given)} \\
    \bar G_t &= G_t / t \ \text{(divide)}, \quad \text{else } \bar G_t = G_t \\
    u_t &\leftarrow \frac{\alpha}{1 + (t-1)\,\mathtt{lr\_decay}} \cdot \frac{u_t}{\bar G_t^{1/p} + \epsilon}
    \end{aligned}
    $$

    (without ``use_sqrt`` the denominator is $\bar G_t + \epsilon$). Followed by ``LR(lr)`` and
    with the other options at their defaults it is ``torch.optim.Adagrad(lr=lr,
    lr_decay=lr_decay, initial_accumulator_value=initial_accumulator_value, eps=eps)``.

    Args:
        lr_decay: the step-size decay of torch's Adagrad, ``>= 0`` (default: ``0``).
        initial_accumulator_value: the starting value of the accumulator $G$, ``>= 0``
            (default: ``0``).
        eps: added to the denominator, ``>= 0`` (default: ``1e-10``).
        alpha: multiplier of the update (default: ``1``).
        pow: the power $p$ accumulated and the root taken (default: ``2``).
        use_sqrt: take the $p$-th root of the accumulator (default: ``True``).
        divide: divide the accumulator by the number of steps, i.e. use the mean of the powers
            instead of their sum (default: ``False``).
        beta: ``None`` (default) to sum; a number in ``[0, 1)`` to replace the sum by a moving
            average with that coefficient (which makes this RMSprop with ``init`` = the initial
            accumulator value).
        decay: ``None`` (default) or a number in ``[0, 1)``: the accumulator is multiplied by
            ``1 - decay`` after every step, so old updates are forgotten.
        inner: modules applied to the update after the accumulator is updated and before the
            update is divided (default: ``None``).

    Example:
        ``torch.optim.Adagrad(params, lr=1e-2, lr_decay=1e-4)`` as a chain:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Adagrad(lr_decay=1e-4), tz.m.LR(1e-2))

        Adagrad whose accumulator slowly forgets, on top of clipped gradients:

        >>> opt = tz.Modular(model.parameters(), tz.m.ClipNorm(1.0), tz.m.Adagrad(decay=1e-3), tz.m.LR(1e-2))

    References:
        Duchi, J., Hazan, E., & Singer, Y. (2011). Adaptive subgradient methods for online
        learning and stochastic optimization. JMLR 12, 2121-2159.
        https://jmlr.org/papers/v12/duchi11a.html
    """

    STATE_KEYS = {"step": "step", "sum": "like_param"}

    def __init__(
        self,
        lr_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        alpha: float = 1,
        pow: float = 2,
        use_sqrt: bool = True,
        divide: bool = False,
        beta: float | None = None,
        decay: float | None = None,
        inner: Any = None,
    ):
        defaults = dict(
            lr_decay=lr_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            alpha=alpha,
            pow=pow,
            use_sqrt=use_sqrt,
            divide=divide,
            beta=beta,
            decay=decay,
        )
        super().__init__(defaults, inner=inner)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "Adagrad"
        for key in ("lr_decay", "initial_accumulator_value", "eps"):
            if key in s:
                check_number(key, s[key], owner=o, min=0.0)
        if "alpha" in s:
            check_number("alpha", s["alpha"], owner=o)
        if "pow" in s:
            check_number("pow", s["pow"], owner=o, min=0.0, min_inclusive=False)
        for key in ("use_sqrt", "divide"):
            if key in s:
                check_bool(key, s[key], owner=o)
        for key in ("beta", "decay"):
            if key in s and s[key] is not None:
                check_number(key, s[key], owner=o, min=0.0, max=1.0, max_inclusive=False)

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        return {"sum": torch.full_like(tensor, setting["initial_accumulator_value"], memory_format=torch.preserve_format)}

    def update_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> None:
        sums = states["sum"]
        for (pow_, _, _, beta, decay), idx in settings.groups(*_STRUCTURE):
            adagrad_accumulate_([sums[i] for i in idx], [tensors[i] for i in idx], pow_, beta, decay)

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        all_steps = as_list(ctx.step, len(tensors))
        sums = states["sum"]
        for (pow_, use_sqrt, divide, _, _), idx in settings.groups(*_STRUCTURE):
            sub = settings.subset(idx)
            steps = [all_steps[i] for i in idx]
            denom = adagrad_denominator([sums[i] for i in idx], sub["eps"], pow_, use_sqrt, steps if divide else None)
            ts = [tensors[i] for i in idx]
            torch._foreach_div_(ts, denom)
            scale = adagrad_step_size(sub["alpha"], sub["lr_decay"], steps)
            if isinstance(scale, list) or isinstance(scale, Tensor) or scale != 1.0:
                torch._foreach_mul_(ts, scale)
        return tensors
