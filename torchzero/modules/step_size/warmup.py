"""Warmup: a linearly growing multiplier (``Warmup``) or norm limit (``WarmupNormClip``) of the update."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.settings import as_list
from ...core.transform import Context, Settings, States, Transform
from ...functional.clipping import scale_by_norm_
from ...functional.warmup import linear_warmup
from ...utils.validation import check_int, check_number

__all__ = ["Warmup", "WarmupNormClip"]


def _check(s: Mapping[str, Any], owner: str, start: str, end: str) -> None:
    if "steps" in s:
        check_int("steps", s["steps"], owner=owner, min=0)
    for name in (start, end):
        if name in s:
            if isinstance(s[name], torch.Tensor):
                raise TypeError(f"{owner}: {name} must be a Python number, got a tensor")
            check_number(name, s[name], owner=owner, min=0.0)


def _count_steps(states: list[dict[str, Any]]) -> list[int]:
    """Increments each parameter's step counter; returns the 0-based index of this step."""
    ks = []
    for st in states:
        k = st.get("step", 0)
        st["step"] = k + 1
        ks.append(k)
    return ks


class Warmup(Transform):
    r"""Multiplies the update by a factor that grows linearly from ``start_lr`` to ``end_lr``.

    On the $k$-th step of a parameter ($k = 0$ first, counted per parameter in this module's
    state), with $n$ = ``steps``:

    $$
    u \leftarrow \left(\mathtt{start\_lr} + (\mathtt{end\_lr} - \mathtt{start\_lr})\,\frac{\min(k, n)}{n}\right) u
    $$

    so the first step uses ``start_lr``, and from step $n$ on the factor is ``end_lr``
    (``steps=0``: always ``end_lr``). It multiplies whatever ``LR`` does, so it composes with
    ``torch.optim.lr_scheduler`` schedulers.

    Args:
        steps: the number of warmup steps $n$, an int ``>= 0`` (default: ``100``).
        start_lr: the factor on the first step, ``>= 0`` (default: ``1e-5``).
        end_lr: the factor after warmup, ``>= 0`` (default: ``1``).

    Example:
        Adam with 1000 warmup steps:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Adam(), tz.m.LR(1e-2), tz.m.Warmup(steps=1000))
        >>> model(torch.randn(8, 4)).pow(2).mean().backward(); opt.step()
    """

    def __init__(self, steps: int = 100, start_lr: float = 1e-5, end_lr: float = 1):
        super().__init__(dict(steps=steps, start_lr=start_lr, end_lr=end_lr))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        _check(s, "Warmup", "start_lr", "end_lr")

    def update_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> None:
        _count_steps(states)

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        n = len(tensors)
        steps, start, end = (as_list(v, n) for v in settings.values("steps", "start_lr", "end_lr"))
        factors = [linear_warmup(st["step"] - 1, s, a, b) for st, s, a, b in zip(states, steps, start, end)]
        if all(f == factors[0] for f in factors):
            if factors[0] != 1:
                torch._foreach_mul_(tensors, factors[0])
        else:
            torch._foreach_mul_(tensors, factors)
        return tensors


class WarmupNormClip(Transform):
    r"""Clips the norm of the update to a limit that grows linearly from ``start_norm`` to ``end_norm``.

    On the $k$-th step ($k = 0$ first, counted per parameter), for $k < n$ = ``steps``:

    $$
    c_k = \mathtt{start\_norm} + (\mathtt{end\_norm} - \mathtt{start\_norm})\,\frac{k}{n}, \qquad
    u \leftarrow u \cdot \min\!\left(1, \frac{c_k}{\|u\|_2}\right)
    $$

    where $\|u\|_2$ is the norm of all tensors with the same settings and step count
    concatenated (one global norm in the usual case). From step $n$ on the update is left
    unchanged (no clipping after warmup). A norm $\le 10^{-12}$ leaves the update unchanged. No
    host sync: the comparison is made on the device.

    Since clipping stops at step $n$, pick ``end_norm`` near the typical norm of the update so
    the end of warmup is smooth. Before a momentum module it limits the gradients the buffer
    accumulates; after one, the buffer keeps growing while the parameters barely move, and the
    first unclipped step can be large.

    Args:
        steps: the number of warmup steps $n$, an int ``>= 0`` (default: ``100``).
        start_norm: the norm limit on the first step, ``>= 0`` (default: ``1e-5``).
        end_norm: the limit the ramp reaches at step $n$, ``>= 0`` (default: ``1``).

    Example:
        Adam whose updates are limited to a norm growing from 1e-5 to 1 over 1000 steps:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Adam(), tz.m.WarmupNormClip(steps=1000), tz.m.LR(1e-2))
        >>> model(torch.randn(8, 4)).pow(2).mean().backward(); opt.step()
    """

    def __init__(self, steps: int = 100, start_norm: float = 1e-5, end_norm: float = 1):
        super().__init__(dict(steps=steps, start_norm=start_norm, end_norm=end_norm))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        _check(s, "WarmupNormClip", "start_norm", "end_norm")

    def update_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> None:
        _count_steps(states)

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        n = len(tensors)
        steps, start, end = (as_list(v, n) for v in settings.values("steps", "start_norm", "end_norm"))
        # tensors with equal (step, settings) share one norm; compared rather than hashed, so that
        # under torch.compile a symbolic step counter is not specialised (a recompile per step),
        # and the counters as floats (see functional._scalars.collapse)
        groups: list[tuple[Any, ...]] = []
        members: list[list[int]] = []
        for i, st in enumerate(states):
            k = st["step"] - 1
            if k < steps[i]:
                key = (k, steps[i], start[i], end[i])
                for key_, idx in zip(groups, members):
                    if float(key_[0]) == float(k) and key_[1:] == key[1:]:
                        idx.append(i)
                        break
                else:
                    groups.append(key)
                    members.append([i])
        for (k, s, a, b), idx in zip(groups, members):
            sub = tensors if len(idx) == n else [tensors[i] for i in idx]
            scale_by_norm_(sub, linear_warmup(k, s, a, b), 2.0, "global", False, 1, "clip")
        return tensors
