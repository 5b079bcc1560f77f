"""``Prodigy``: Adam with its step size estimated on the fly (Mishchenko & Defazio, 2023)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ...core.transform import Context, Settings, States, Transform
from ...utils.validation import check_beta, check_bool, check_number
from ._betas import check_betas

__all__ = ["Prodigy"]

_HALF = (torch.float16, torch.bfloat16)


def _wide(g: Tensor, p: Tensor, st: Any) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """The gradient, the parameter and the state, in float32 for half precision."""
    if g.dtype not in _HALF:
        return g, p, {k: st[k] for k in ("exp_avg", "exp_avg_sq", "s", "p0")}
    return g.float(), p.float(), {k: st[k].float() for k in ("exp_avg", "exp_avg_sq", "s", "p0")}

_KEYS = ("lr", "betas", "beta3", "eps", "weight_decay", "use_bias_correction", "safeguard_warmup", "d0", "d_coef", "growth_rate")


class Prodigy(Transform):
    r"""Prodigy: Adam whose step size $d$ is an estimate of the distance to the solution,
    grown from ``d0`` as the iterates move (Algorithm 4 of the paper, its reference code):

    $$
    \begin{aligned}
    r &\leftarrow \sqrt{\beta_3}\, r + \tfrac{d}{d_0}\,\gamma_d\, \langle g, x_0 - x\rangle, \qquad
    s \leftarrow \beta_3 s + \tfrac{d}{d_0}\,\gamma_d\, g \quad (\gamma_d = d\cdot \text{lr}\cdot c_k), \\
    m &\leftarrow \beta_1 m + d(1-\beta_1) g, \qquad v \leftarrow \beta_2 v + d^2(1-\beta_2) g^2, \\
    \hat d &= d_{\text{coef}}\, \frac{r}{\lVert s\rVert_1}, \quad d \leftarrow \min(\max(d, \hat d), \kappa d),
    \qquad u = \gamma_d \left(\frac{m}{\sqrt v + d\,\epsilon} + \lambda x\right)
    \end{aligned}
    $$

    with $\beta_3$ = ``beta3`` ($\sqrt{\beta_2}$ when ``None``; the numerator decays by it), $c_k$
    Adam's bias correction with ``use_bias_correction`` (else 1), $\lambda$ = ``weight_decay``
    (decoupled: it is scaled by $\gamma_d$, so it lives here; L2 decay is ``WeightDecay`` before
    it), $\kappa$ = ``growth_rate``, and $\gamma_d$ the step size of the old $d$. The sums are over every parameter the
    module sees (one $d$ for all); with ``safeguard_warmup`` $s$ takes $d$ instead of
    $\gamma_d$. A step whose gradients are all zero changes nothing.

    The module takes ``lr`` itself (a multiplier of the estimated step, 1 by default; it enters
    $r$ and $s$) and must be last in the chain, with no ``LR`` after it. All param groups must
    share its settings.

    Args:
        lr: the multiplier of the step, ``> 0`` (default: ``1.0``).
        betas: $(\beta_1, \beta_2)$ (default: ``(0.9, 0.999)``).
        beta3: $\beta_3$ in ``[0, 1)``, or ``None`` for $\sqrt{\beta_2}$ (default: ``None``).
        eps: $\epsilon$, ``> 0`` (default: ``1e-8``).
        weight_decay: decoupled $\lambda \ge 0$ (default: ``0``).
        use_bias_correction: Adam's bias correction in $\gamma_d$ (default: ``False``).
        safeguard_warmup: leave lr out of $s$ (default: ``False``).
        d0: the initial $d$, ``> 0`` (default: ``1e-6``).
        d_coef: $d_{\text{coef}}$, ``> 0`` (default: ``1.0``).
        growth_rate: the largest factor $d$ may grow by per step, ``>= 1`` (default: ``inf``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.ClipNorm(1.0, dim="global"), tz.m.Prodigy(weight_decay=0.01))

    References:
        Mishchenko, K., & Defazio, A. (2023). Prodigy: An expeditiously adaptive parameter-free
        learner. https://arxiv.org/abs/2306.06101
    """

    STATE_KEYS = {"s": "like_param", "p0": "like_param", "exp_avg": "like_param", "exp_avg_sq": "like_param"}

    def __init__(
        self,
        lr: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        beta3: float | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        use_bias_correction: bool = False,
        safeguard_warmup: bool = False,
        d0: float = 1e-6,
        d_coef: float = 1.0,
        growth_rate: float = float("inf"),
    ):
        super().__init__(dict(
            lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, beta3=beta3, eps=eps, weight_decay=weight_decay,
            use_bias_correction=use_bias_correction, safeguard_warmup=safeguard_warmup, d0=d0, d_coef=d_coef,
            growth_rate=growth_rate,
        ))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "Prodigy"
        for key in ("lr", "eps", "d0", "d_coef"):
            if key in s:
                check_number(key, s[key], owner=o, min=0.0, min_inclusive=False)
        if "betas" in s:
            check_betas(s["betas"], o)
        if "beta3" in s and s["beta3"] is not None:
            check_beta("beta3", s["beta3"], owner=o)
        if "weight_decay" in s:
            check_number("weight_decay", s["weight_decay"], owner=o, min=0.0)
        for key in ("use_bias_correction", "safeguard_warmup"):
            if key in s:
                check_bool(key, s[key], owner=o)
        if "growth_rate" in s:
            check_number("growth_rate", s["growth_rate"], owner=o, min=1.0, allow_inf=True)

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        z = lambda: torch.zeros_like(tensor, memory_format=torch.preserve_format)  # noqa: E731
        return {"s": z(), "p0": z(), "exp_avg": z(), "exp_avg_sq": z()}

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> Sequence[Tensor]:
        c = settings.coupled(_KEYS, "Prodigy")
        params = ctx.params
        for i in ctx.new:  # x_0: the parameters when the module first sees them
            states[i]["p0"].copy_(params[i])
        b1, b2 = (float(b) for b in c["betas"])
        beta3 = math.sqrt(b2) if c["beta3"] is None else float(c["beta3"])
        lr, d0, eps = float(c["lr"]), float(c["d0"]), float(c["eps"])
        gs = self.global_state
        d, d_max, k = float(gs.get("d", d0)), float(gs.get("d_max", d0)), int(gs.get("k", 0))
        numerator = float(gs.get("d_numerator", 0.0)) * beta3
        bc = math.sqrt(1 - b2 ** (k + 1)) / (1 - b1 ** (k + 1)) if c["use_bias_correction"] else 1.0
        dlr = d * lr * bc
        s_alpha = (d / d0) * (d if c["safeguard_warmup"] else dlr)
        delta, denom = 0.0, 0.0
        # half precision in float32 (d^2 (1 - beta2) g^2 and d * eps underflow in float16), stored back
        work = [_wide(g, p, st) for g, p, st in zip(tensors, params, states)]
        for g, p, st in work:
            delta += (d / d0) * dlr * float(torch.dot(g.flatten(), (st["p0"] - p).flatten()))
            st["exp_avg"].mul_(b1).add_(g, alpha=d * (1 - b1))
            st["exp_avg_sq"].mul_(b2).addcmul_(g, g, value=d * d * (1 - b2))
            st["s"].mul_(beta3).add_(g, alpha=s_alpha)
            denom += float(st["s"].abs().sum())
        for (_, _, w), st in zip(work, states):
            for key in ("exp_avg", "exp_avg_sq", "s"):
                if w[key] is not st[key]:
                    st[key].copy_(w[key])
        if denom == 0.0:  # no gradient anywhere yet: no step, d unchanged
            return [torch.zeros_like(g) for g in tensors]
        numerator += delta
        d_hat = float(c["d_coef"]) * numerator / denom
        if d == d0:
            d = max(d, d_hat)
        d_max = max(d_max, d_hat)
        d = min(d_max, d * float(c["growth_rate"]))
        gs.update(d=d, d_max=d_max, d_numerator=numerator, k=k + 1)
        wd = float(c["weight_decay"])
        out = []
        for (_, p, st), t in zip(work, tensors):
            u = st["exp_avg"] / (st["exp_avg_sq"].sqrt() + d * eps)
            if wd != 0:
                u.add_(p, alpha=wd)
            out.append(u.mul_(dlr).to(t.dtype))
        return out
