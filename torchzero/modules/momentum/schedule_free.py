"""``ScheduleFree``: Schedule-Free averaging of any direction (Defazio et al., 2024)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ...core.capabilities import Capabilities
from ...core.transform import Context, Settings, States, Transform
from ...functional.schedule_free import schedule_free_step, schedule_free_weight, to_eval_point_, to_train_point_
from ...utils.validation import check_int, check_number

__all__ = ["ScheduleFree"]

TRAIN_MODE = "train_mode"


class ScheduleFree(Transform):
    r"""Schedule-Free training: no learning-rate schedule, an average of the iterates to
    evaluate, and momentum through interpolation (:mod:`~torchzero.functional.schedule_free`).

    The update $d$ that reaches this module is the direction (the gradient, or Adam's
    normalized gradient). With $\beta$ = ``momentum``, $\gamma$ = ``lr`` (ramped up linearly
    over ``warmup_steps``) and $c_{t+1} = w_{t+1} / \sum_i w_i$,
    $w_t = t^r \max_{i \le t}\gamma_i^{p}$ ($p$ = ``weight_lr_power``):

    $$
    z_{t+1} = z_t - \gamma_t d_t, \qquad x_{t+1} = (1-c_{t+1})\, x_t + c_{t+1} z_{t+1}, \qquad
    y_{t+1} = (1-\beta) z_{t+1} + \beta x_{t+1}.
    $$

    While training, the parameters hold $y$ (where gradients are taken); the average $x$, the
    point to evaluate and to deploy, is $(y - (1-\beta) z)/\beta$. **Call ``opt.eval()`` before
    evaluating or saving the model and ``opt.train()`` before training again**: they move the
    parameters between $y$ and $x$ (``opt.step()`` in eval mode raises ``RuntimeError``). The
    optimizer starts in train mode; the mode is saved in ``state_dict``. Switching BatchNorm
    statistics to $x$ needs a few forward passes in train mode of the model after ``opt.eval()``
    (see the guide).

    The module takes ``lr`` itself (it enters the averaging weights), so no ``LR`` follows it;
    ``lr`` is published in the param groups for schedulers. The two chains of the
    ``schedulefree`` package:

    - ``SGDScheduleFree(lr, momentum, weight_decay=wd)``:
      ``tz.Modular(p, tz.m.WeightDecay(wd), tz.m.ScheduleFree(lr, momentum))``;
    - ``AdamWScheduleFree(lr, betas=(b1, b2), eps, weight_decay=wd)``:
      ``tz.Modular(p, tz.m.RMSprop(b2, eps, debiased=True), tz.m.WeightDecay(wd), tz.m.ScheduleFree(lr, b1))``.

    Any other direction works the same way (Lion, Muon, a clipped gradient). The counters
    ($t$, $\sum w$, $\max\gamma$) are kept per parameter (the package keeps them per group: the
    same while every parameter has a gradient at every step).

    Args:
        lr: $\gamma$, ``>= 0`` (default: ``1.0``, the package's SGD default; its AdamW's is
            ``0.0025``).
        momentum: $\beta$, in ``(0, 1)`` (default: ``0.9``).
        warmup_steps: steps of linear warm-up of $\gamma$, an int ``>= 0`` (default: ``0``).
        r: the power of $t$ in the weights, ``>= 0`` (default: ``0``).
        weight_lr_power: the power of $\max\gamma$ in the weights, ``>= 0`` (default: ``2``).

    Example:
        Schedule-Free AdamW, evaluated at the average:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(
        ...     model.parameters(),
        ...     tz.m.RMSprop(0.999, 1e-8, debiased=True), tz.m.WeightDecay(1e-4), tz.m.ScheduleFree(2.5e-3, 0.9),
        ... )
        >>> x = torch.randn(32, 4)
        >>> for _ in range(3):
        ...     opt.zero_grad(); model(x).pow(2).mean().backward(); opt.step()
        >>> opt.eval()   # the parameters are now the average x
        >>> with torch.no_grad(): val = model(x).pow(2).mean()
        >>> opt.train()  # back to y before the next step

    References:
        Defazio, A., Yang, X. A., Mehta, H., Mishchenko, K., Khaled, A., & Cutkosky, A. (2024).
        The road less scheduled. NeurIPS. https://arxiv.org/abs/2405.15682
    """

    CAPABILITIES = Capabilities(eval_point=True)
    GROUP_KEYS = ("lr",)
    STATE_KEYS = {"k": "count", "weight_sum": "count", "lr_max": "count", "z": "like_param"}

    def __init__(
        self, lr: float = 1.0, momentum: float = 0.9, warmup_steps: int = 0, r: float = 0.0, weight_lr_power: float = 2.0
    ):
        super().__init__(dict(lr=lr, momentum=momentum, warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power))
        self.global_state[TRAIN_MODE] = True

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "ScheduleFree"
        if "lr" in s:
            check_number("lr", s["lr"], owner=o, min=0.0)
        if "momentum" in s:
            check_number("momentum", s["momentum"], owner=o, min=0.0, max=1.0)
            if not 0.0 < float(s["momentum"]) < 1.0:
                raise ValueError(f"ScheduleFree: momentum must be in (0, 1) (the average is recovered by dividing by it), got {s['momentum']!r}")
        if "warmup_steps" in s:
            check_int("warmup_steps", s["warmup_steps"], owner=o, min=0)
        for key in ("r", "weight_lr_power"):
            if key in s:
                check_number(key, s[key], owner=o, min=0.0)

    def reset(self) -> None:
        super().reset()
        self.global_state[TRAIN_MODE] = True

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        return {"k": 0, "weight_sum": 0.0, "lr_max": -1.0}

    # ------------------------------------------------------------------ train / eval
    @property
    def training(self) -> bool:
        return bool(self.global_state.get(TRAIN_MODE, True))

    def set_training(self, training: bool, params: Sequence[Tensor]) -> None:
        """Moves the parameters that have a state between $y$ (``training``) and $x$."""
        if training == self.training:
            return
        by_momentum: dict[float, tuple[list[Tensor], list[Tensor]]] = {}
        for p in params:
            st = self.state.get(p)
            if st is None or "z" not in st:
                continue
            ps, zs = by_momentum.setdefault(float(self.settings(p)["momentum"]), ([], []))
            ps.append(p)
            zs.append(st["z"])
        for momentum, (ps, zs) in by_momentum.items():
            (to_train_point_ if training else to_eval_point_)(ps, zs, momentum)
        self.global_state[TRAIN_MODE] = training

    # ------------------------------------------------------------------ the step
    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> Sequence[Tensor]:
        params = ctx.params
        for i in ctx.new:
            states[i]["z"] = params[i].clone(memory_format=torch.preserve_format)
        groups: dict[tuple[float, float, float], list[int]] = {}
        for i, (st, se) in enumerate(zip(states, settings)):
            lr_k, st["lr_max"], st["weight_sum"], c = schedule_free_weight(
                int(st["k"]), float(se["lr"]), float(st["lr_max"]), float(st["weight_sum"]),
                int(se["warmup_steps"]), float(se["r"]), float(se["weight_lr_power"]),
            )
            st["k"] = int(st["k"]) + 1
            groups.setdefault((c, lr_k, float(se["momentum"])), []).append(i)
        out: list[Tensor] = list(tensors)
        zs = states["z"]
        for (c, lr_k, momentum), idx in groups.items():
            u = schedule_free_step([params[i] for i in idx], [zs[i] for i in idx], [tensors[i] for i in idx], c, lr_k, momentum)
            for i, t in zip(idx, u):
                out[i] = t
        return out
