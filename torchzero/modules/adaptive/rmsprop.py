"""``RMSprop``: divides the update by the root of a moving average of its squares (Hinton, 2012)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.settings import as_list
from ...core.transform import Context, Settings, States, Transform
from ...functional.powers import abs_pow
from ...functional.rmsprop import rmsprop_denominator, rmsprop_moments_, rmsprop_second_moment
from ...utils.validation import check_beta, check_bool, check_choice, check_number

__all__ = ["RMSprop"]

RMSPROP_INITS = ("zeros", "update")
_STRUCTURE = ("centered", "debiased", "amsgrad", "pow", "init")


class RMSprop(Transform):
    r"""RMSprop: divides the update by the root of a moving average of its squares.

    With $\beta$ = ``smoothing``, step $t$ (counted per parameter) and $p$ = ``pow``:

    $$
    \begin{aligned}
    v_t &= \beta v_{t-1} + (1-\beta)\,|u_t|^p, \qquad
    m_t = \beta m_{t-1} + (1-\beta)\, u_t \ \text{(centered only)} \\
    c_t &= 1 - \beta^t \ \text{(debiased, with } \texttt{init="zeros"}\text{)}, \quad \text{else } c_t = 1 \\
    D_t &= \max\!\left(\frac{v_t}{c_t} - \left|\frac{m_t}{c_t}\right|^p,\ 0\right) \ \text{(centered)}, \quad
        \text{else } D_t = \frac{v_t}{c_t} \\
    \hat D_t &= \max(\hat D_{t-1}, D_t) \ \text{(amsgrad)}, \quad \text{else } \hat D_t = D_t \\
    u_t &\leftarrow \frac{u_t}{\hat D_t^{1/p} + \epsilon}
    \end{aligned}
    $$

    Followed by ``LR(lr)`` it is ``torch.optim.RMSprop(lr=lr, alpha=smoothing, eps=eps,
    centered=centered)``. The $\max(\cdot, 0)$ of the centered variance only changes values that
    rounding made negative (where torch would return NaN).

    With ``init="update"`` the averages start at the first update ($v_1 = |u_1|^p$,
    $m_1 = u_1$) instead of at zero; they are then not biased towards zero, so ``debiased`` has no
    effect ($c_t = 1$).

    Note:
        The centered variance of a single update is 0: with ``centered`` and either
        ``init="update"`` or ``debiased``, $D_1 = 0$ and the first update is $u_1/\epsilon$.
        Torch's form (``init="zeros"``, not debiased) has $D_1 = \beta(1-\beta)u_1^2 > 0$.

    Args:
        smoothing: the averaging coefficient $\beta$ (torch's ``alpha``), in ``[0, 1)``
            (default: ``0.99``).
        eps: added to the denominator, ``>= 0`` (default: ``1e-8``).
        centered: subtract the square of the moving average of the update, dividing by an
            estimate of the variance instead of the second moment (default: ``False``).
        debiased: divide the averages by $1-\beta^t$ as Adam does (default: ``False``).
        amsgrad: divide by the running maximum of $D$ (default: ``False``).
        pow: the power $p$ of the moving average and of its root (default: ``2``).
        init: ``"zeros"`` (default, as torch) or ``"update"``: where the averages start.
        inner: modules applied to the update after the averages are updated and before it is
            divided (default: ``None``).

    Example:
        ``torch.optim.RMSprop(params, lr=1e-3, centered=True)`` as a chain:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.RMSprop(centered=True), tz.m.LR(1e-3))

        Clip the gradient first, clip the preconditioned update after:

        >>> opt = tz.Modular(model.parameters(), tz.m.ClipNorm(1.0), tz.m.RMSprop(), tz.m.ClipValue(1.0), tz.m.LR(1e-3))

    References:
        Hinton, G., Srivastava, N., & Swersky, K. (2012). Lecture 6e: rmsprop, Neural Networks
        for Machine Learning. https://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf

        Graves, A. (2013). Generating sequences with recurrent neural networks (the centered
        variant). https://arxiv.org/abs/1308.0850
    """

    STATE_KEYS = {"step": "step", "exp_avg_sq": "like_param"}

    def __init__(
        self,
        smoothing: float = 0.99,
        eps: float = 1e-8,
        centered: bool = False,
        debiased: bool = False,
        amsgrad: bool = False,
        pow: float = 2,
        init: str = "zeros",
        inner: Any = None,
    ):
        defaults = dict(
            smoothing=smoothing, eps=eps, centered=centered, debiased=debiased, amsgrad=amsgrad, pow=pow, init=init
        )
        super().__init__(defaults, inner=inner)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "RMSprop"
        if "smoothing" in s:
            check_beta("smoothing", s["smoothing"], owner=o)
        if "eps" in s:
            check_number("eps", s["eps"], owner=o, min=0.0)
        for key in ("centered", "debiased", "amsgrad"):
            if key in s:
                check_bool(key, s[key], owner=o)
        if "pow" in s:
            check_number("pow", s["pow"], owner=o, min=0.0, min_inclusive=False)
        if "init" in s:
            check_choice("init", s["init"], RMSPROP_INITS, owner=o)

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        # init="update": the averages start at this update, which is then not averaged in
        if setting["init"] == "update":
            st = {"exp_avg_sq": abs_pow([tensor], setting["pow"])[0]}
            if setting["centered"]:
                st["exp_avg"] = tensor.clone()
            return st
        st = {"exp_avg_sq": torch.zeros_like(tensor, memory_format=torch.preserve_format)}
        if setting["centered"]:
            st["exp_avg"] = torch.zeros_like(tensor, memory_format=torch.preserve_format)
        return st

    def update_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> None:
        new = set(ctx.new)
        for (centered, debiased, amsgrad, pow_, init), idx in settings.groups(*_STRUCTURE):
            if centered:  # centered switched on after the state was made
                for i in states.missing("exp_avg"):
                    if i in idx:
                        states[i]["exp_avg"] = torch.zeros_like(tensors[i], memory_format=torch.preserve_format)
            avg = idx if init == "zeros" or not new else [i for i in idx if i not in new]
            if avg:
                rmsprop_moments_(
                    [tensors[i] for i in avg],
                    [states[i]["exp_avg_sq"] for i in avg],
                    settings.subset(avg)["smoothing"],
                    pow_,
                    [states[i]["exp_avg"] for i in avg] if centered else None,
                )
            if amsgrad:
                d = self._second_moment(states, settings, ctx, idx, centered, debiased and init == "zeros", pow_)
                for i in states.missing("max_exp_avg_sq"):
                    if i in idx:
                        states[i]["max_exp_avg_sq"] = torch.zeros_like(states[i]["exp_avg_sq"])
                torch._foreach_maximum_([states[i]["max_exp_avg_sq"] for i in idx], d)

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        for (centered, debiased, amsgrad, pow_, init), idx in settings.groups(*_STRUCTURE):
            if amsgrad:
                d = [states[i]["max_exp_avg_sq"] for i in idx]
            else:
                d = self._second_moment(states, settings, ctx, idx, centered, debiased and init == "zeros", pow_)
            # D is a temporary when it was centered or debiased (not the state itself): root in place
            temp = not amsgrad and all(di is not states[i]["exp_avg_sq"] for di, i in zip(d, idx))
            eps = settings.subset(idx)["eps"]
            torch._foreach_div_([tensors[i] for i in idx], rmsprop_denominator(d, eps, pow_, inplace=temp))
        return tensors

    @staticmethod
    def _second_moment(states: States, settings: Settings, ctx: Context, idx: list[int], centered: bool, debiased: bool, pow_: float) -> list[Tensor]:
        steps = as_list(ctx.step, len(states))
        return rmsprop_second_moment(
            [states[i]["exp_avg_sq"] for i in idx],
            [steps[i] for i in idx],
            settings.subset(idx)["smoothing"],
            pow_,
            [states[i]["exp_avg"] for i in idx] if centered else None,
            debiased,
        )
