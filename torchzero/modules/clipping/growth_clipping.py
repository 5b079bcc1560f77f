"""Clipping how fast the update may grow from one step to the next."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor


from ...core.transform import Context, Settings, States, TensorwiseTransform, Transform
from ...functional.norms import Ord, global_norm, parse_ord, tensor_norm_vector
from ...functional.stats import summarize_norm_scaling
from ...utils.validation import check_bool, check_optional_number

__all__ = ["ClipValueGrowth", "ClipNormGrowth"]


def _check_growth(s: Mapping[str, Any], owner: str) -> None:
    if "add" in s:
        check_optional_number("add", s["add"], owner=owner, min=0.0)
    if "mul" in s:
        check_optional_number("mul", s["mul"], owner=owner, min=0.0, min_inclusive=False)
    if "min_value" in s:
        check_optional_number("min_value", s["min_value"], owner=owner, min=0.0)
    if "max_decay" in s:
        check_optional_number("max_decay", s["max_decay"], owner=owner, min=0.0, min_inclusive=False)


class ClipValueGrowth(TensorwiseTransform):
    r"""Limits how much each element of the update may grow relative to the previous update.

    On the first step the update is kept as ``prev`` and passed unchanged. Then, elementwise:

    1. ``add``: $g = \max(|u| - |u_{prev}|, 0)$; where $g > \text{add}$:
       $u \leftarrow u - \operatorname{sign}(u)(g - \text{add})$.
    2. ``mul``: $r = \max(|u| / \max(|u_{prev}|, \mathtt{min\_value}), 10^{-8})$; where
       $r > \text{mul}$: $u \leftarrow u \cdot \text{mul} / r$.
    3. The new ``prev`` is $u$, except (with ``max_decay``) where $r < 1/\mathtt{max\_decay}$, where
       it is $u_{prev} / \mathtt{max\_decay}$, so the bound decays at most that fast.

    With ``add`` and ``mul`` both ``None`` the update is never changed.

    Args:
        add: largest additive growth of $|u|$ per step, ``>= 0`` or ``None`` (default: ``None``).
        mul: largest multiplicative growth per step, ``> 0`` or ``None`` (default: ``1.5``).
        min_value: lower bound of $|u_{prev}|$ in ``mul``, ``>= 0`` or ``None`` (default: ``1e-4``).
        max_decay: fastest decay of the tracked ``prev``, ``> 0`` or ``None`` (default: ``2``).
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Adam(), tz.m.ClipValueGrowth(mul=2.0), tz.m.LR(1e-3))
    """

    STATE_KEYS = {"prev": "like_param"}

    def __init__(
        self,
        add: float | None = None,
        mul: float | None = 1.5,
        min_value: float | None = 1e-4,
        max_decay: float | None = 2,
        target: str = "update",
    ):
        super().__init__(dict(add=add, mul=mul, min_value=min_value, max_decay=max_decay), target=target)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        _check_growth(s, "ClipValueGrowth")

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        return {"prev": tensor.clone()}

    def apply_tensor(self, tensor: Tensor, state: dict[str, Any], setting: Mapping[str, Any], ctx: Context, i: int) -> Tensor:
        add, mul, min_value, max_decay = setting["add"], setting["mul"], setting["min_value"], setting["max_decay"]
        if i in ctx.new:  # the first update is kept as it is
            return tensor
        if add is None and mul is None:
            return tensor
        u = tensor
        prev = state["prev"]
        prev_abs = prev.abs()
        if add is not None:
            g = (u.abs() - prev_abs).clamp_min(0)
            u = torch.where(g > add, u - u.sign() * (g - add), u)
        r = None
        if mul is not None or max_decay is not None:
            pm = prev_abs.clamp_min(min_value) if min_value is not None else prev_abs
            r = (u.abs() / pm).clamp_min(1e-8)
        if mul is not None:
            assert r is not None
            u = torch.where(r > mul, u / (r / mul), u)
        if max_decay is None:
            state["prev"] = u.clone()
        else:
            assert r is not None
            state["prev"] = torch.where(r < 1 / max_decay, prev / max_decay, u)
        if self.full_stats:
            state_changed = (u != tensor).sum()
            self._changed.append(state_changed)
            self._total += tensor.numel()
        if u is not tensor:
            tensor.copy_(u)
        return tensor

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        self._changed: list[Tensor] = []
        self._total = 0
        out = super().apply_tensors(tensors, states, settings, ctx)
        if self.full_stats and self._changed:
            self.record_stats(clip_frac=torch.stack(self._changed).sum() / max(self._total, 1))
        return out


class ClipNormGrowth(Transform):
    r"""Limits how much the norm of the update may grow relative to the previous one.

    On the first step $n_{prev} = \|u\|$ and the update is unchanged. Then, with $n = \|u\|$:

    1. $d = 1$; ``add``: if $n > n_{prev} + \text{add}$, $d = n / (n_{prev} + \text{add})$;
       ``mul``: if $n > n_{prev} \cdot \text{mul}$, $d = \max(d, n / (n_{prev}\,\text{mul}))$;
       ``min_value``: $d = \max(d, \mathtt{min\_value})$.
    2. $n_{prev} \leftarrow n / d$, but $n_{prev} / \mathtt{max\_decay}$ if $n / n_{prev} <
       1/\mathtt{max\_decay}$, and at least ``min_value``.
    3. $u \leftarrow u / d$.

    With ``add`` and ``mul`` both ``None`` the update is never changed.

    Args:
        add: largest additive growth of the norm per step, ``>= 0`` or ``None`` (default: ``None``).
        mul: largest multiplicative growth per step, ``> 0`` or ``None`` (default: ``1.5``).
        min_value: lower bound of the tracked norm, ``>= 0`` or ``None`` (default: ``1e-4``).
        max_decay: fastest decay of the tracked norm, ``> 0`` or ``None`` (default: ``2``).
        ord: the norm, as in :class:`ClipNorm` (default: ``2``).
        parameterwise: a norm per tensor; ``False``: one norm of all tensors (default: ``True``).
            ``tensorwise`` is the same setting under the name the other modules use.
        target: ``"update"`` (default) or ``"grad"``.
        tensorwise: alias of ``parameterwise``; if given, it wins.

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.ClipNormGrowth(mul=1.5, parameterwise=False), tz.m.Adam(), tz.m.LR(1e-3))
    """

    def __init__(
        self,
        add: float | None = None,
        mul: float | None = 1.5,
        min_value: float | None = 1e-4,
        max_decay: float | None = 2,
        ord: Ord = 2,
        parameterwise: bool = True,
        target: str = "update",
        *,
        tensorwise: bool | None = None,
    ):
        if tensorwise is not None:
            check_bool("tensorwise", tensorwise, owner="ClipNormGrowth")
            parameterwise = tensorwise
        defaults = dict(add=add, mul=mul, min_value=min_value, max_decay=max_decay, ord=ord, parameterwise=parameterwise)
        super().__init__(defaults, target=target)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        _check_growth(s, "ClipNormGrowth")
        if "ord" in s:
            parse_ord(s["ord"], owner="ClipNormGrowth")
        if "parameterwise" in s:
            check_bool("parameterwise", s["parameterwise"], owner="ClipNormGrowth")

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        return self._clip(tensors, states, settings, copy=False)

    def apply_tensors_copy(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        return self._clip(tensors, states, settings, copy=True)

    def _clip(self, tensors: list[Tensor], states: States, settings: Settings, copy: bool) -> list[Tensor]:
        keys = ("add", "mul", "min_value", "max_decay", "ord", "parameterwise")
        stats: dict[str, list[Tensor]] = {"norm": [], "factor": []}
        is_global = True
        result: list[Tensor | None] = [None] * len(tensors) if copy else list(tensors)
        for (add, mul, min_value, max_decay, ord, tensorwise), idx in settings.groups(*keys):
            if add is None and mul is None:
                continue
            ts = [tensors[i] for i in idx]
            sts = [states[i] for i in idx]
            n, d = _clip_norm_growth_(ts, sts, add, mul, min_value, max_decay, parse_ord(ord), tensorwise, copy)
            if copy:
                for i, t in zip(idx, ts):
                    result[i] = t
            stats["norm"].append(n)
            stats["factor"].append(d.reciprocal())
            is_global = is_global and not tensorwise
        if stats["norm"]:
            self.record_stats(**stats, is_global=is_global)
        return [t.clone() if r is None else r for t, r in zip(tensors, result)]

    def summarize_stats(self, raw: dict[str, Any]) -> dict[str, Any]:
        """As :class:`ClipNorm`'s, with ``factor`` $= 1/d$."""
        return summarize_norm_scaling(raw, raw["is_global"])


def _clip_norm_growth_(
    ts: list[Tensor],
    sts: list[Any],
    add: float | None,
    mul: float | None,
    min_value: float | None,
    max_decay: float | None,
    ord: Ord,
    tensorwise: bool,
    copy: bool = False,
) -> tuple[Tensor, Tensor]:
    """One group of ClipNormGrowth, in place (``copy``: ``ts[:]`` replaced by new tensors, the
    old ones only read); returns the norm(s) before and the divisor(s)."""
    if tensorwise:
        n = tensor_norm_vector(ts, ord)
        first = [("prev_norm" not in st) for st in sts]
        prev = torch.stack([n_i if f else st["prev_norm"] for st, f, n_i in zip(sts, first, n.unbind())])
    else:
        n = global_norm(ts, ord)
        first = [("prev_norm" not in sts[0])] * len(ts)
        prev = n if first[0] else sts[0]["prev_norm"]
    d = torch.ones_like(n)
    if add is not None:
        d = torch.where(n > prev + add, n / (prev + add), d)
    if mul is not None:
        d = torch.where(n > prev * mul, torch.maximum(d, n / (prev * mul)), d)
    if min_value is not None:
        d = d.clamp_min(min_value)
    new = n / d
    if max_decay is not None:
        new = torch.where(n / prev < 1 / max_decay, prev / max_decay, new)
    if min_value is not None:
        new = new.clamp_min(min_value)
    if any(first):
        mask = torch.tensor(first, device=n.device) if tensorwise else torch.tensor(first[0], device=n.device)
        d = torch.where(mask, 1.0, d)
        new = torch.where(mask, n, new)
    if tensorwise:
        for st, x in zip(sts, new.unbind()):
            st["prev_norm"] = x
        divisor: Tensor | list[Tensor] = list(d.unbind())
    else:
        for st in sts:
            st["prev_norm"] = new
        divisor = d
    if copy:
        ts[:] = torch._foreach_div(ts, divisor)
    else:
        torch._foreach_div_(ts, divisor)
    return n, d
