"""Clipping and normalizing by an exponential moving average (EMA) of past updates."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.settings import is_uniform, subset
from ...core.transform import Context, Settings, States, Transform
from ...core.var import Var
from ...functional.norms import Ord, global_norm, parse_ord, tensor_norm_vector
from ...functional.stats import summarize_norm_scaling
from ...utils.validation import check_beta, check_bool, check_choice, check_number, check_optional_number

__all__ = ["ClipNormByEMA", "NormalizeByEMA", "ClipValueByEMA"]

EMA_INITS = ("zeros", "update")


def _init_ema(tensor: Tensor, ema_init: str, absolute: bool) -> dict[str, Any]:
    """A new state: the EMA starts at the update (its magnitude, if ``absolute``) or at zero."""
    if ema_init == "update":
        return {"ema": tensor.abs() if absolute else tensor.clone()}
    return {"ema": torch.zeros_like(tensor)}


def _as_tensor(value: Any, like: Tensor) -> Any:
    return value if is_uniform(value) else torch.tensor(list(value), dtype=like.dtype, device=like.device)


class ClipNormByEMA(Transform):
    r"""Clips the norm of the update to the norm of an EMA of past updates.

    Per group (each tensor with ``tensorwise=True``, all tensors as one vector otherwise):

    1. $m \leftarrow \beta m + (1-\beta) u$, $e = \|m\|$.
    2. With ``max_ema_growth`` $= \gamma$: $a = \gamma\, e_{\text{prev}}$ (tensorwise: at least
       $10^{-6}$; on the first step $e_{\text{prev}} = e$); if $e > a$: $m \leftarrow m\, a / e$,
       $e \leftarrow a$. $e$ is kept as the next $e_{\text{prev}}$.
    3. $d = \|u\| / \max(e, \epsilon)$, then $d \leftarrow \max(d, 1)$.
    4. $u \leftarrow u / d$ (with ``inner``: the output of ``inner`` applied to $u$ is divided).

    Args:
        beta: EMA coefficient, in ``[0, 1)`` (default: ``0.99``).
        ord: the norm, as in :class:`ClipNorm` (default: ``2``).
        eps: lower bound of the EMA norm in the division, ``> 0`` (default: ``1e-6``).
        tensorwise: a norm per tensor; ``False``: one norm of all tensors (default: ``True``).
        max_ema_growth: the largest factor the EMA norm may grow by per step, ``> 0``, or
            ``None`` for no limit (default: ``1.5``).
        ema_init: ``"zeros"`` (default) or ``"update"`` (start the EMA at the first update).
        inner: modules whose output is divided by $d$ (default: ``None``).
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.ClipNormByEMA(0.99), tz.m.Adam(), tz.m.LR(1e-3))
    """

    NORMALIZE = False

    STATE_KEYS = {"ema": "like_param"}

    def __init__(
        self,
        beta: float = 0.99,
        ord: Ord = 2,
        eps: float = 1e-6,
        tensorwise: bool = True,
        max_ema_growth: float | None = 1.5,
        ema_init: str = "zeros",
        inner: Any = None,
        target: str = "update",
    ):
        defaults = dict(beta=beta, ord=ord, eps=eps, tensorwise=tensorwise, max_ema_growth=max_ema_growth, ema_init=ema_init)
        super().__init__(defaults, inner=inner, target=target)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = type(self).__name__
        if "beta" in s:
            check_beta("beta", s["beta"], owner=o)
        if "ord" in s:
            parse_ord(s["ord"], owner=o)
        if "eps" in s:
            check_number("eps", s["eps"], owner=o, min=0.0, min_inclusive=False)
        if "tensorwise" in s:
            check_bool("tensorwise", s["tensorwise"], owner=o)
        if "max_ema_growth" in s:
            check_optional_number("max_ema_growth", s["max_ema_growth"], owner=o, min=0.0, min_inclusive=False)
        if "ema_init" in s:
            check_choice("ema_init", s["ema_init"], EMA_INITS, owner=o)

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        return _init_ema(tensor, setting["ema_init"], absolute=False)

    def update_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> None:
        beta, eps = settings.values("beta", "eps")
        stats: dict[str, list[Tensor]] = {"norm": [], "factor": [], "ema_norm": []}
        is_global = True
        for (ord, tensorwise, growth), idx in settings.groups("ord", "tensorwise", "max_ema_growth"):
            ts = [tensors[i] for i in idx]
            sts = [states[i] for i in idx]
            u_norm, e, d = self._update_group(ts, sts, subset(beta, idx), subset(eps, idx), parse_ord(ord), tensorwise, growth)
            stats["norm"].append(u_norm)
            stats["factor"].append(d.reciprocal())
            stats["ema_norm"].append(e)
            is_global = is_global and not tensorwise
        self.record_stats(**stats, is_global=is_global)

    def summarize_stats(self, raw: dict[str, Any]) -> dict[str, Any]:
        """As :class:`ClipNorm`'s (``factor`` is $1/d$), plus ``ema_norm`` (its mean over tensors)."""
        out = summarize_norm_scaling(raw, raw["is_global"])
        out["ema_norm"] = torch.cat([e.reshape(-1).float() for e in raw["ema_norm"]]).mean()
        return out

    def _update_group(
        self, ts: list[Tensor], sts: list[Any], beta: Any, eps: Any, ord: Any, tensorwise: bool, growth: float | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Steps 1-3 for one group; keeps the divisor in state and returns (norm, ema norm, divisor)."""
        ema = [st["ema"] for st in sts]
        torch._foreach_lerp_(ema, ts, 1 - beta if is_uniform(beta) else [1 - b for b in beta])
        if tensorwise:
            e = tensor_norm_vector(ema, ord)
            u_norm = tensor_norm_vector(ts, ord)
        else:
            e = global_norm(ema, ord)
            u_norm = global_norm(ts, ord)
        if growth is not None:
            if tensorwise:
                prev = torch.stack([st["ema_norm"] if "ema_norm" in st else e_i for st, e_i in zip(sts, e.unbind())])
                allowed = (prev * growth).clamp_min(1e-6)
            else:
                prev = sts[0].get("ema_norm", e)
                allowed = prev * growth
            over = e > allowed
            scale = torch.where(over, allowed / e, 1.0)
            torch._foreach_mul_(ema, list(scale.unbind()) if tensorwise else scale)
            e = torch.where(over, allowed, e)
        e_parts = list(e.unbind()) if tensorwise else [e] * len(ts)
        e_c = e.clamp_min(eps) if is_uniform(eps) else torch.maximum(e, _as_tensor(eps, e))
        d = u_norm / e_c
        d = d.clamp_min(1.0) if not self.NORMALIZE else (d.clamp_min(eps) if is_uniform(eps) else torch.maximum(d, _as_tensor(eps, d)))
        d = torch.where(torch.isnan(d), 1.0, d)  # e.g. "std" of one element: leave the tensor unchanged
        d_parts = list(d.unbind()) if d.ndim else [d] * len(ts)
        for st, e_i, d_i in zip(sts, e_parts, d_parts):
            st["ema_norm"] = e_i
            st["divisor"] = d_i
        return u_norm, e, d

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        torch._foreach_div_(tensors, [st["divisor"] for st in states])
        return tensors

    def apply_tensors_copy(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        return torch._foreach_div(tensors, [st["divisor"] for st in states])


class NormalizeByEMA(ClipNormByEMA):
    r"""Sets the norm of the update to the norm of an EMA of past updates.

    The same as :class:`ClipNormByEMA` (same arguments and defaults) except step 3 uses
    $d \leftarrow \max(d, \epsilon)$ instead of $\max(d, 1)$, so updates smaller than the EMA are
    scaled up as well as larger ones down.

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.NormalizeByEMA(0.99), tz.m.LR(1e-2))
    """

    NORMALIZE = True


class ClipValueByEMA(Transform):
    r"""Clips each element of the update to the magnitude of an EMA of past updates' magnitudes.

    $m \leftarrow \beta m + (1-\beta)|u|$; the bound $c$ is ``ema_tfm`` applied to a copy of $m$, or
    $m$ itself without ``ema_tfm``;
    $u \leftarrow \operatorname{clamp}(u, -c, c)$ elementwise (with ``inner``: the output of
    ``inner`` applied to $u$ is clamped).

    Args:
        beta: EMA coefficient, in ``[0, 1)`` (default: ``0.99``).
        ema_init: ``"zeros"`` (default) or ``"update"`` (start at $|u|$ of the first update).
        ema_tfm: modules applied to a copy of the EMA to form the bound (default: ``None``).
        inner: modules whose output is clamped (default: ``None``).
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        Clip to twice the running magnitude:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.ClipValueByEMA(ema_init="update", ema_tfm=tz.m.LR(2.0)), tz.m.Adam(), tz.m.LR(1e-3))
    """

    STATE_KEYS = {"ema": "like_param"}

    def __init__(
        self,
        beta: float = 0.99,
        ema_init: str = "zeros",
        ema_tfm: Any = None,
        inner: Any = None,
        target: str = "update",
    ):
        super().__init__(dict(beta=beta, ema_init=ema_init), inner=inner, target=target)
        if ema_tfm is not None:
            self.set_child("ema_tfm", ema_tfm)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        if "beta" in s:
            check_beta("beta", s["beta"], owner="ClipValueByEMA")
        if "ema_init" in s:
            check_choice("ema_init", s["ema_init"], EMA_INITS, owner="ClipValueByEMA")

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        return _init_ema(tensor, setting["ema_init"], absolute=True)

    def update_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> None:
        beta = settings["beta"]
        ema = states["ema"]
        torch._foreach_lerp_(ema, torch._foreach_abs(tensors), 1 - beta if is_uniform(beta) else [1 - b for b in beta])

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        return self._clamp(tensors, [st["ema"] for st in states])

    def apply_tensors_copy(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        return self._clamp(tensors, [st["ema"] for st in states], copy=True)

    def _clamp(self, tensors: list[Tensor], bound: list[Tensor], copy: bool = False) -> list[Tensor]:
        if self.full_stats:
            clipped = sum((t.abs() > b).sum() for t, b in zip(tensors, bound))
            total = sum(t.numel() for t in tensors)
            self.record_stats(clip_frac=clipped / max(total, 1), bound_mean=torch.stack([b.float().mean() for b in bound]).mean())
        if copy:
            tensors = torch._foreach_clamp_max(tensors, bound)
        else:
            torch._foreach_clamp_max_(tensors, bound)
        torch._foreach_clamp_min_(tensors, torch._foreach_neg(bound))
        return tensors

    def transform(self, tensors: list[Tensor], var: Var, copy: bool = False) -> list[Tensor]:
        if "ema_tfm" not in self.children:
            return super().transform(tensors, var, copy)
        states, settings, ctx = self.begin(tensors, var)
        self.update_tensors(tensors, states, settings, ctx)
        bound = self.run_child("ema_tfm", [e.clone() for e in states["ema"]], var)
        return self._clamp(self.apply_inner(tensors, var), bound)
