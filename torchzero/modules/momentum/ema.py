"""Momentum buffers: ``EMA``, ``HeavyBall`` (``torch.optim.SGD``'s momentum) and ``NAG`` (Nesterov)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ...core.settings import PerTensor, as_list, subset
from ...core.transform import Context, Settings, States, Transform
from ...functional.momentum import debias_, ema_, nesterov_
from ...utils.validation import check_beta, check_bool, check_choice, check_number

__all__ = ["EMA", "HeavyBall", "NAG"]

EMA_INITS = ("zeros", "update")
BUFFER = "momentum_buffer"


def check_momentum_settings(s: Mapping[str, Any], owner: str) -> None:
    """Checks ``momentum``, ``dampening``, ``debiased``, ``lerp`` and ``ema_init``, where present."""
    if "momentum" in s:
        check_beta("momentum", s["momentum"], owner=owner)
    if "dampening" in s:
        check_number("dampening", s["dampening"], owner=owner, min=0.0, max=1.0)
    if "debiased" in s:
        check_bool("debiased", s["debiased"], owner=owner)
    if "lerp" in s:
        check_bool("lerp", s["lerp"], owner=owner)
    if "ema_init" in s:
        check_choice("ema_init", s["ema_init"], EMA_INITS, owner=owner)


def update_buffers(tensors: list[Tensor], states: States, settings: Settings, fresh: Sequence[int]) -> list[Tensor]:
    """Applies :func:`~torchzero.functional.momentum.ema_` to the buffers, except at positions
    ``fresh`` (buffers that start as this update, as ``torch.optim.SGD`` starts its momentum
    buffer). Returns the buffers."""
    bufs = states[BUFFER]
    if not fresh:
        ema_(tensors, bufs, *settings.values("momentum", "dampening", "lerp"))
    elif len(fresh) < len(tensors):
        skip = set(fresh)
        idx = [i for i in range(len(tensors)) if i not in skip]
        ema_([tensors[i] for i in idx], [bufs[i] for i in idx], *settings.subset(idx).values("momentum", "dampening", "lerp"))
    return bufs


def init_buffer(tensor: Tensor, ema_init: str) -> dict[str, Any]:
    """A new momentum buffer: the update itself (``"update"``) or zeros."""
    if ema_init == "update":
        return {BUFFER: tensor.clone(memory_format=torch.preserve_format)}
    return {BUFFER: torch.zeros_like(tensor, memory_format=torch.preserve_format)}


class EMA(Transform):
    r"""Replaces the update by an exponential moving average (EMA) of past updates.

    Per parameter, with $\mu$ = ``momentum`` and $d$ = ``dampening``:

    $$
    \begin{aligned}
    b_t &= \mu\, b_{t-1} + w\, u_t, \qquad w = \begin{cases} (1-\mu)(1-d) & \text{lerp} \\ 1-d & \text{otherwise} \end{cases} \\
    u_t &\leftarrow b_t \,/\, (1-\mu^t) \quad \text{(debiased)}, \qquad \text{else } u_t \leftarrow b_t
    \end{aligned}
    $$

    With ``ema_init="zeros"``, $b_0 = 0$. With ``ema_init="update"``, the buffer starts as the
    first update itself, $b_1 = u_1$ (no dampening on that step), as ``torch.optim.SGD`` starts its
    momentum buffer. ``debiased`` divides by Adam's correction $1-\mu^t$, which makes a
    zero-initialised EMA (``lerp=True``) an unbiased average; it is meant for
    ``ema_init="zeros"`` (an EMA that starts at the update is already unbiased). The step $t$ is
    counted per parameter, so a parameter that misses gradients on some steps is corrected by
    its own count.

    :class:`HeavyBall` is this module with ``lerp=False`` and ``ema_init="update"``.

    Args:
        momentum: $\mu$, in ``[0, 1)`` (default: ``0.9``).
        dampening: $d$, the fraction of the new update left out, in ``[0, 1]`` (default: ``0``).
        debiased: divide by $1-\mu^t$ (default: ``False``).
        lerp: weight the new update by $1-\mu$, making the buffer an average rather than a
            sum (default: ``True``).
        ema_init: ``"zeros"`` (default) or ``"update"`` (start at the first update).
        target: ``"update"`` (default) or ``"grad"`` (average the gradient instead).

    Example:
        Momentum SGD with Adam's debiased first moment as the direction:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.EMA(0.9, debiased=True), tz.m.LR(1e-3))
        >>> model(torch.randn(8, 4)).pow(2).mean().backward(); opt.step()
    """

    STATE_KEYS = {BUFFER: "like_param", "step": "step"}

    def __init__(
        self,
        momentum: float = 0.9,
        dampening: float = 0,
        debiased: bool = False,
        lerp: bool = True,
        ema_init: str = "zeros",
        target: str = "update",
    ):
        defaults = dict(momentum=momentum, dampening=dampening, debiased=debiased, lerp=lerp, ema_init=ema_init)
        super().__init__(defaults, target=target)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        check_momentum_settings(s, type(self).__name__)

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        return init_buffer(tensor, setting["ema_init"])

    def update_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> None:
        fresh = [i for i in ctx.new if settings[i]["ema_init"] == "update"]
        update_buffers(tensors, states, settings, fresh)

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        torch._foreach_copy_(tensors, states[BUFFER])
        momentum, debiased = settings.values("momentum", "debiased")
        if not isinstance(debiased, PerTensor):
            if debiased:
                debias_(tensors, ctx.step, beta1=momentum)
            return tensors
        idx = [i for i, d in enumerate(debiased) if d]
        step = [as_list(ctx.step, len(tensors))[i] for i in idx]
        debias_([tensors[i] for i in idx], step, beta1=subset(momentum, idx))
        return tensors


class HeavyBall(EMA):
    r"""Polyak's heavy-ball momentum, exactly as in ``torch.optim.SGD(momentum, dampening)``.

    $$
    b_1 = u_1, \qquad b_t = \mu\, b_{t-1} + (1-d)\, u_t, \qquad u_t \leftarrow b_t
    $$

    Followed by ``LR(lr)`` this is ``torch.optim.SGD(lr=lr, momentum=momentum, dampening=dampening)``:
    the first update is the gradient itself. (torchzero 0.3.x counted the first gradient twice,
    making its first update $(1+\mu)\,g$; that is fixed.) It is :class:`EMA` with other defaults,
    so ``lerp=True`` gives the averaged form $b_t = \mu b_{t-1} + (1-\mu)(1-d) u_t$.

    Args:
        momentum: $\mu$, in ``[0, 1)`` (default: ``0.9``).
        dampening: $d$, in ``[0, 1]`` (default: ``0``).
        debiased: divide by $1-\mu^t$, see :class:`EMA` (default: ``False``).
        lerp: weight the new update by $1-\mu$ (default: ``False``).
        ema_init: ``"update"`` (default) or ``"zeros"``.
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        SGD with momentum and coupled weight decay, as
        ``torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=1e-4)``:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.WeightDecay(1e-4), tz.m.HeavyBall(0.9), tz.m.LR(0.1))
        >>> model(torch.randn(8, 4)).pow(2).mean().backward(); opt.step()

    References:
        Polyak, B. T. (1964). Some methods of speeding up the convergence of iteration methods.
        USSR Computational Mathematics and Mathematical Physics, 4(5), 1-17.
    """

    # published in the param groups, so schedulers that cycle momentum (OneCycleLR, CyclicLR) move it
    GROUP_KEYS = ("momentum",)

    def __init__(
        self,
        momentum: float = 0.9,
        dampening: float = 0,
        debiased: bool = False,
        lerp: bool = False,
        ema_init: str = "update",
        target: str = "update",
    ):
        super().__init__(momentum, dampening, debiased, lerp, ema_init, target)


class NAG(Transform):
    r"""Nesterov's accelerated gradient, exactly as in ``torch.optim.SGD(momentum, nesterov=True)``.

    $$
    b_1 = u_1, \qquad b_t = \mu\, b_{t-1} + (1-d)\, u_t, \qquad u_t \leftarrow u_t + \mu\, b_t
    $$

    The update is the buffer advanced once more by the current update (the "look-ahead"). With
    ``lerp`` the buffer is an average, $b_t = \mu b_{t-1} + (1-\mu)(1-d)\,u_t$, and
    $u_t \leftarrow (1-\mu)\,u_t + \mu\, b_t$. Followed by ``LR(lr)`` this is
    ``torch.optim.SGD(lr=lr, momentum=momentum, nesterov=True)`` (torch requires
    ``dampening=0`` with Nesterov; here a dampening follows the same formula).

    Args:
        momentum: $\mu$, in ``[0, 1)`` (default: ``0.9``).
        dampening: $d$, in ``[0, 1]`` (default: ``0``).
        lerp: average instead of sum, as above (default: ``False``).
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.NAG(0.9), tz.m.LR(1e-2))
        >>> model(torch.randn(8, 4)).pow(2).mean().backward(); opt.step()

    References:
        Nesterov, Y. (1983). A method for solving the convex programming problem with
        convergence rate O(1/k^2). Soviet Mathematics Doklady, 27, 372-376.

        Sutskever, I., Martens, J., Dahl, G., & Hinton, G. (2013). On the importance of
        initialization and momentum in deep learning. ICML.
    """

    GROUP_KEYS = ("momentum",)

    STATE_KEYS = {BUFFER: "like_param", "step": "step"}

    def __init__(self, momentum: float = 0.9, dampening: float = 0, lerp: bool = False, target: str = "update"):
        super().__init__(dict(momentum=momentum, dampening=dampening, lerp=lerp), target=target)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        check_momentum_settings(s, "NAG")

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        return init_buffer(tensor, "update")

    def update_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> None:
        update_buffers(tensors, states, settings, ctx.new)

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        return nesterov_(tensors, states[BUFFER], *settings.values("momentum", "lerp"))
