"""``AdEMAMix``: Adam with a slow EMA of the gradient mixed in (Pagliardini et al., 2024)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ...core.settings import as_list
from ...core.transform import Context, Settings, States, Transform
from ...functional.ademamix import ademamix_alpha, ademamix_beta3, ademamix_direction
from ...utils.validation import check_beta, check_int, check_number

__all__ = ["AdEMAMix"]

_KEYS = ("betas", "alpha", "beta3_warmup", "alpha_warmup", "eps")
_HALF = (torch.float16, torch.bfloat16)


class AdEMAMix(Transform):
    r"""AdEMAMix: Adam whose numerator adds $\alpha$ times a slow EMA of the gradient, so that
    gradients from thousands of steps ago still count
    (:func:`~torchzero.functional.ademamix.ademamix_direction`):

    $$
    m_1 \leftarrow \beta_1 m_1 + (1-\beta_1) g, \quad m_2 \leftarrow \beta_3 m_2 + (1-\beta_3) g,
    \quad v \leftarrow \beta_2 v + (1-\beta_2) g^2, \qquad
    u \leftarrow \frac{m_1/(1-\beta_1^t) + \alpha_t\, m_2}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}
    $$

    $m_2$ is not bias-corrected. With ``alpha_warmup`` $= T_\alpha$, $\alpha_t = \alpha\,t/T_\alpha$
    until $T_\alpha$; with ``beta3_warmup`` $= T_\beta$, $\beta_3$ rises from $\beta_1$ linearly in
    half-life (:func:`~torchzero.functional.ademamix.ademamix_beta3`) until $T_\beta$. The paper
    warms both up over the whole run for large $\beta_3$: without it the slow EMA destabilizes
    the first steps.

    Followed by ``WeightDecay(wd)`` and ``LR(lr)`` it is the authors' ``AdEMAMix(lr=lr,
    betas=betas, alpha=alpha, beta3_warmup=..., alpha_warmup=..., eps=eps, weight_decay=wd)``
    (decoupled weight decay). With $\beta_1 = 0$ no fast EMA is stored ($m_1 = g$).

    Args:
        betas: $(\beta_1, \beta_2, \beta_3)$, each in ``[0, 1)`` (default: ``(0.9, 0.999, 0.9999)``).
        alpha: the weight of the slow EMA, ``>= 0`` (default: ``2.0``).
        beta3_warmup: steps of $\beta_3$'s warm-up, an int ``>= 1`` or ``None`` (default: ``None``).
        alpha_warmup: steps of $\alpha$'s warm-up, an int ``>= 1`` or ``None`` (default: ``None``).
        eps: added to the denominator, ``>= 0`` (default: ``1e-8``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(
        ...     model.parameters(),
        ...     tz.m.AdEMAMix(alpha=5.0, beta3_warmup=10_000, alpha_warmup=10_000), tz.m.WeightDecay(0.1), tz.m.LR(1e-3),
        ... )

    References:
        Pagliardini, M., Ablin, P., & Grangier, D. (2024). The AdEMAMix optimizer: better,
        faster, older. https://arxiv.org/abs/2409.03137
    """

    STATE_KEYS = {"step": "step", "exp_avg_slow": "like_param", "exp_avg_sq": "like_param"}
    OPTIONAL_STATE_KEYS = {"exp_avg_fast": "like_param"}

    def __init__(
        self,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        alpha: float = 2.0,
        beta3_warmup: int | None = None,
        alpha_warmup: int | None = None,
        eps: float = 1e-8,
    ):
        super().__init__(dict(
            betas=tuple(betas) if isinstance(betas, list) else betas, alpha=alpha,
            beta3_warmup=beta3_warmup, alpha_warmup=alpha_warmup, eps=eps,
        ))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "AdEMAMix"
        if "betas" in s:
            b = s["betas"]
            if not isinstance(b, (tuple, list)) or len(b) != 3:
                raise TypeError(f"{o}: betas must be three numbers (beta1, beta2, beta3), got {b!r:.80}")
            for i, x in enumerate(b):
                check_beta(f"betas[{i}]", x, owner=o)
        if "alpha" in s:
            check_number("alpha", s["alpha"], owner=o, min=0.0)
        for key in ("beta3_warmup", "alpha_warmup"):
            if key in s and s[key] is not None:
                check_int(key, s[key], owner=o, min=1)
        if "eps" in s:
            check_number("eps", s["eps"], owner=o, min=0.0)

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        z = lambda: torch.zeros_like(tensor, memory_format=torch.preserve_format)  # noqa: E731
        state = {"exp_avg_slow": z(), "exp_avg_sq": z()}
        if float(setting["betas"][0]) != 0.0:
            state["exp_avg_fast"] = z()
        return state

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> Sequence[Tensor]:
        steps = as_list(ctx.step, len(tensors))
        groups: dict[tuple[Any, ...], list[int]] = {}
        for (betas, alpha, b3w, aw, eps), idx in settings.groups(*_KEYS):
            for i in idx:
                groups.setdefault((int(steps[i]), tuple(map(float, betas)), float(alpha), b3w, aw, float(eps)), []).append(i)
        out: list[Tensor] = list(tensors)
        for (t, (b1, b2, b3), alpha, b3w, aw, eps), idx in groups.items():
            if b1 != 0.0 and states.missing("exp_avg_fast"):
                for i in idx:  # beta1 was 0 when the state was made: start the fast EMA now
                    if "exp_avg_fast" not in states[i]:
                        states[i]["exp_avg_fast"] = torch.zeros_like(tensors[i])
            a_t, b3_t = ademamix_alpha(t, alpha, aw), ademamix_beta3(t, b3, b1, b3w)
            wide = [tensors[i].dtype in _HALF for i in idx]
            g = [tensors[i].float() if w else tensors[i] for i, w in zip(idx, wide)]
            keys = ["exp_avg_slow", "exp_avg_sq"] + (["exp_avg_fast"] if b1 != 0.0 else [])
            st = {k: [states[i][k].float() if w else states[i][k] for i, w in zip(idx, wide)] for k in keys}
            d = ademamix_direction(g, st.get("exp_avg_fast"), st["exp_avg_slow"], st["exp_avg_sq"], t, b1, b2, b3_t, a_t, eps)
            for j, (i, w) in enumerate(zip(idx, wide)):
                if w:  # half precision computed in float32 (an eps of 1e-8 is 0 in float16), stored back
                    for k in keys:
                        states[i][k].copy_(st[k][j])
                out[i] = d[j].to(tensors[i].dtype) if w else d[j]
        return out
