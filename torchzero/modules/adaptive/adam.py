"""``Adam``: adaptive moment estimation (Kingma & Ba, 2014)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ...core.capabilities import Capabilities
from ...core.settings import PerTensor, host_numbers
from ...core.transform import Context, Settings, States, Transform
from ...core.var import Var
from ...functional.adam import adam_direction, ema_moments_
from ...utils.validation import check_beta, check_bool, check_number

__all__ = ["Adam"]


_HALF = (torch.float16, torch.bfloat16)


def _upcast(tensors: list[Tensor], at: list[int]) -> list[Tensor]:
    """``tensors`` with those at positions ``at`` replaced by float32 copies."""
    out = list(tensors)
    for i in at:
        out[i] = out[i].float()
    return out


class Adam(Transform):
    r"""Adam: the update is the bias-corrected first moment over the root of the second.

    $$
    \begin{aligned}
    m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, u_t \\
    v_t &= \beta_2 v_{t-1} + (1-\beta_2)\, |u_t|^{p} \\
    \hat v_t &= \max(\hat v_{t-1}, v_t) \ \text{(amsgrad)}, \quad \text{else } v_t \\
    u_t &\leftarrow \alpha\, \frac{m_t / (1-\beta_1^t)}{\left(\hat v_t / (1-\beta_2^t)\right)^{1/p} + \epsilon}
    \end{aligned}
    $$

    With ``debiased=False`` the $(1-\beta^t)$ corrections are left out. Followed by
    ``LR(lr)`` it is ``torch.optim.Adam(lr=lr)``; followed by ``WeightDecay`` and ``LR`` it is
    AdamW. The step count is kept per parameter, so parameters that miss gradients on some
    steps are corrected as ``torch.optim.Adam`` corrects them.

    Args:
        beta1: first-moment decay, in ``[0, 1)`` (default: ``0.9``).
        beta2: second-moment decay, in ``[0, 1)`` (default: ``0.999``).
        eps: added to the denominator, ``>= 0`` (default: ``1e-8``).
        amsgrad: use the running maximum of the second moment (default: ``False``).
        alpha: multiplier of the update (default: ``1.0``).
        pow: the power $p$ of the second moment (default: ``2``, the usual Adam).
        debiased: apply the bias corrections (default: ``True``).
        inner: modules applied to (a copy of) the first moment before it is divided
            (default: ``None``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Adam(beta2=0.99), tz.m.LR(1e-3))

    References:
        Kingma, D. P., & Ba, J. (2014). Adam: A method for stochastic optimization.
        https://arxiv.org/abs/1412.6980
    """

    INNER_ON_TENSORS = False
    # fused_options: the settings fused_spec handles (maps to the kernel, or declines for)
    CAPABILITIES = Capabilities(fused_role="adam", fused_options=frozenset({"beta1", "beta2", "eps", "amsgrad", "alpha", "pow", "debiased"}))
    STATE_KEYS = {"step": "step", "exp_avg": "like_param", "exp_avg_sq": "like_param"}
    OPTIONAL_STATE_KEYS = {"max_exp_avg_sq": "like_param"}
    TENSOR_SETTINGS = ("beta1", "beta2")  # torch.optim.Adam accepts Tensor betas
    # published as ``betas`` in the param groups, so schedulers that cycle beta1 (OneCycleLR) move it
    GROUP_ALIASES = {"beta1": ("betas", 0), "beta2": ("betas", 1)}

    def __init__(
        self,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        amsgrad: bool = False,
        alpha: float = 1.0,
        pow: float = 2,
        debiased: bool = True,
        inner: Any = None,
    ):
        defaults = dict(beta1=beta1, beta2=beta2, eps=eps, amsgrad=amsgrad, alpha=alpha, pow=pow, debiased=debiased)
        super().__init__(defaults, inner=inner)
        self._f32: dict[int, Tensor] = {}  # float32 working values of half-precision moments, within a step

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "Adam"
        if "beta1" in s and "beta2" in s and isinstance(s["beta1"], Tensor) != isinstance(s["beta2"], Tensor):
            raise ValueError(f"{o}: betas must be either both floats or both Tensors, got beta1={s['beta1']!r}, beta2={s['beta2']!r}")
        if "beta1" in s:
            check_beta("beta1", s["beta1"], owner=o)
        if "beta2" in s:
            check_beta("beta2", s["beta2"], owner=o)
        if "eps" in s:
            check_number("eps", s["eps"], owner=o, min=0.0)
        if "alpha" in s:
            check_number("alpha", s["alpha"], owner=o)
        if "pow" in s:
            check_number("pow", s["pow"], owner=o, min=0.0, min_inclusive=False)
        if "amsgrad" in s:
            check_bool("amsgrad", s["amsgrad"], owner=o)
        if "debiased" in s:
            check_bool("debiased", s["debiased"], owner=o)

    def fused_spec(self, s: Mapping[str, Any]) -> dict[str, Any] | None:
        """Settings for torch's fused Adam kernel, or ``None`` if these settings have no fused form."""
        if s["pow"] != 2 or not s["debiased"] or "inner" in self.children or s["eps"] == 0:
            return None  # (eps=0: the fused kernels compute 0/0 = NaN where the general path defines 0)
        return dict(beta1=float(s["beta1"]), beta2=float(s["beta2"]), eps=s["eps"], amsgrad=s["amsgrad"], alpha=s["alpha"])

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        st = {"exp_avg": torch.zeros_like(tensor, memory_format=torch.preserve_format)}
        st["exp_avg_sq"] = torch.zeros_like(tensor, memory_format=torch.preserve_format)
        if setting["amsgrad"]:
            st["max_exp_avg_sq"] = torch.zeros_like(tensor, memory_format=torch.preserve_format)
        return st

    @staticmethod
    def add_max_exp_avg_sq(states: States, idx: Sequence[int] | None = None) -> None:
        """Creates ``max_exp_avg_sq`` where it is missing (``amsgrad`` switched on after the
        state was made), among the states at ``idx`` (all by default)."""
        for i in states.missing("max_exp_avg_sq"):
            if idx is None or i in idx:
                states[i]["max_exp_avg_sq"] = torch.zeros_like(states[i]["exp_avg_sq"])

    def update_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> None:
        beta1, beta2, pow_, amsgrad = settings.values("beta1", "beta2", "pow", "amsgrad")
        beta1, beta2 = host_numbers(beta1), host_numbers(beta2)
        m, v = states["exp_avg"], states["exp_avg_sq"]
        ams = settings.each("amsgrad") if isinstance(amsgrad, PerTensor) or amsgrad else None
        idx = [] if ams is None else [i for i, a in enumerate(ams) if a]
        if idx:
            self.add_max_exp_avg_sq(states, idx)
        vmax = [states[i]["max_exp_avg_sq"] for i in idx]
        self._f32 = {}
        half = [i for i, x in enumerate(m) if x.dtype in _HALF]
        if not half:
            ema_moments_(tensors, m, v, beta1, beta2, pow_)
            if idx:
                torch._foreach_maximum_(vmax, [v[i] for i in idx])
            return
        # half precision: the moments are updated in float32, as torch's fused Adam does, and the
        # direction is computed from these float32 values; the state keeps them in the
        # parameter's dtype (a second moment of 1e-11 would round to 0 in float16 before use)
        t32, m32, v32 = _upcast(tensors, half), _upcast(m, half), _upcast(v, half)
        vmax32 = _upcast(vmax, [k for k, i in enumerate(idx) if i in half])
        ema_moments_(t32, m32, v32, beta1, beta2, pow_)
        if idx:
            torch._foreach_maximum_(vmax32, [v32[i] for i in idx])
        for stored, work in zip([*m, *v, *vmax], [*m32, *v32, *vmax32]):
            if stored is not work:
                stored.copy_(work)
                self._f32[id(stored)] = work

    def _working(self, tensors: list[Tensor]) -> list[Tensor]:
        """The float32 values of this step for half-precision moments (see update_tensors)."""
        f32 = self._f32
        return [f32.get(id(t), t) for t in tensors] if f32 else tensors

    def _direction(self, numerator: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        beta1, beta2, eps, alpha, pow_, amsgrad, debiased = settings.values(
            "beta1", "beta2", "eps", "alpha", "pow", "amsgrad", "debiased"
        )
        beta1, beta2 = host_numbers(beta1), host_numbers(beta2)
        if not isinstance(amsgrad, PerTensor) and not amsgrad:
            v = states["exp_avg_sq"]
        else:
            v = [st["max_exp_avg_sq"] if a else st["exp_avg_sq"] for st, a in zip(states, settings.each("amsgrad"))]
        out = adam_direction(numerator, self._working(v), ctx.step, beta1, beta2, eps, alpha, pow_, debiased)
        if self._f32:
            self._f32 = {}
            out = [o if o.dtype == n.dtype else o.to(n.dtype) for o, n in zip(out, states["exp_avg"])]
        return out

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        return self._direction(self._working(states["exp_avg"]), states, settings, ctx)

    def transform(self, tensors: list[Tensor], var: Var, copy: bool = False) -> list[Tensor]:
        if "inner" not in self.children:
            return super().transform(tensors, var, copy)
        # inner modules transform a copy of the first moment, which then replaces it as numerator
        states, settings, ctx = self.begin(tensors, var)
        self.update_tensors(tensors, states, settings, ctx)
        numerator = self.apply_inner([m.clone() for m in states["exp_avg"]], var)
        return self._direction(numerator, states, settings, ctx)
