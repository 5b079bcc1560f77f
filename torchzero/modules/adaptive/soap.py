"""``SOAP``: Adam in the eigenbasis of Shampoo's preconditioner (Vyas et al., 2024)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.transform import Context, TensorwiseTransform
from ...core.var import Var
from ...functional.soap import eigenbases, factor_dims, merged_shape, project, project_back, refresh_eigenbases, update_factors_
from ...utils.validation import check_beta, check_bool, check_int, check_number, check_optional_number
from ._factors import check_square_factors

__all__ = ["SOAP"]

_HALF = (torch.float16, torch.bfloat16)


def _shape(t: Tensor, setting: Mapping[str, Any]) -> tuple[int, ...]:
    return merged_shape(t.shape, int(setting["max_dim"])) if setting["merge_small"] else tuple(t.shape)


def _which(t: Tensor, setting: Mapping[str, Any]) -> list[bool]:
    return factor_dims(_shape(t, setting), int(setting["max_dim"]), bool(setting["precondition_1d"]))


class SOAP(TensorwiseTransform):
    r"""SOAP: Adam run in the eigenbasis of Shampoo's preconditioner, which is refreshed every
    ``precond_freq`` steps (:mod:`~torchzero.functional.soap`).

    Per parameter, its update $G$ viewed with dims $d_1 \dots d_k$ (merged when
    ``merge_small``: consecutive dims while their product is at most ``max_dim``), factor $i$ is
    $F_i \leftarrow \beta_s F_i + (1-\beta_s)\, G_{(i)} G_{(i)}^\top$ (dims larger than ``max_dim``
    get none; 1-D tensors only with ``precondition_1d``) and $Q_i$ its eigenbasis. With
    $\tilde X = X \times_1 Q_1^\top \cdots \times_k Q_k^\top$ (for a matrix, $Q_L^\top X Q_R$):

    $$
    \tilde m \leftarrow \beta_1 \tilde m + (1-\beta_1) \tilde G, \quad
    v \leftarrow \beta_2 v + (1-\beta_2)\, \tilde G^2, \qquad
    u = \alpha\, \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\; Q\!\left[\frac{\tilde m}{\sqrt v + \epsilon}\right]
    $$

    ($Q[\cdot]$ rotates back). After the update the factors take in $G$, and every
    ``precond_freq`` steps each $Q_i$ is refreshed by one power iteration and a QR
    decomposition, its columns sorted by their Rayleigh quotients (and $v$ permuted to match);
    the first bases come from ``torch.linalg.eigh``. The first step only builds the factors: its
    update is zero, so a gradient never meets a basis built from itself (as in the authors'
    code; torchzero 0.3.x returned the clipped gradient there).

    Followed by ``LR(lr)`` it is the SOAP authors' ``SOAP(lr=lr, betas=(beta1, beta2),
    shampoo_beta=shampoo_beta, eps=eps, precondition_frequency=precond_freq,
    max_precond_dim=max_dim, merge_dims=merge_small, precondition_1d=precondition_1d,
    weight_decay=0)`` up to rounding: both keep the first moment $\tilde m$ in the eigenbasis
    (rotated out of the old bases and into the new ones at each refresh). Their weight decay
    shrinks the parameters after the step; ``WeightDecay(wd)`` after SOAP shrinks them in the
    same step (AdamW's order), a difference of order $\text{lr}^2$.

    Memory per $m \times n$ matrix: $m$ and $v$ ($2mn$) plus $F$ and $Q$ ($2m^2 + 2n^2$).

    Args:
        beta1: $\beta_1$, in ``[0, 1)`` (default: ``0.95``).
        beta2: $\beta_2$, in ``[0, 1)`` (default: ``0.95``).
        shampoo_beta: $\beta_s$ of the factors, in ``[0, 1)``, or ``None`` to sum them
            (default: ``0.95``).
        precond_freq: steps between refreshes of the bases, an int ``>= 1`` (default: ``10``).
        merge_small: merge consecutive small dims (default: ``True``).
        max_dim: the largest dim that gets a factor, an int ``>= 1`` (default: ``2000``).
        precondition_1d: give 1-D tensors a factor too (default: ``True``).
        eps: added to $\sqrt v$, ``>= 0`` (default: ``1e-8``).
        decay: with ``shampoo_beta=None``, multiply the summed factors by ``1 - decay``
            first, in ``[0, 1)`` or ``None`` (default: ``None``).
        alpha: a multiplier of the update (default: ``1``).
        bias_correction: Adam's bias correction (default: ``True``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
        >>> opt = tz.Modular(model.parameters(), tz.m.SOAP(), tz.m.LR(3e-3))

    References:
        Vyas, N., Morwani, D., Zhao, R., Shapira, I., Brandfonbrener, D., Janson, L., & Kakade,
        S. (2024). SOAP: Improving and stabilizing Shampoo using Adam.
        https://arxiv.org/abs/2409.11321
    """

    WHOLE_TENSORS = True  # under FSDP2 each matrix is gathered whole (see Transform.WHOLE_TENSORS)

    STATE_KEYS = {"step": "step", "exp_avg": "like_param", "exp_avg_sq": "like_param"}

    def __init__(
        self,
        beta1: float = 0.95,
        beta2: float = 0.95,
        shampoo_beta: float | None = 0.95,
        precond_freq: int = 10,
        merge_small: bool = True,
        max_dim: int = 2_000,
        precondition_1d: bool = True,
        eps: float = 1e-8,
        decay: float | None = None,
        alpha: float = 1,
        bias_correction: bool = True,
    ):
        super().__init__(dict(
            beta1=beta1, beta2=beta2, shampoo_beta=shampoo_beta, precond_freq=precond_freq, merge_small=merge_small,
            max_dim=max_dim, precondition_1d=precondition_1d, eps=eps, decay=decay, alpha=alpha,
            bias_correction=bias_correction,
        ))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "SOAP"
        for key in ("beta1", "beta2"):
            if key in s:
                check_beta(key, s[key], owner=o)
        if "shampoo_beta" in s and s["shampoo_beta"] is not None:
            check_beta("shampoo_beta", s["shampoo_beta"], owner=o)
        if "precond_freq" in s:
            check_int("precond_freq", s["precond_freq"], owner=o, min=1)
        if "max_dim" in s:
            check_int("max_dim", s["max_dim"], owner=o, min=1, max=2**16)
        for key in ("merge_small", "precondition_1d", "bias_correction"):
            if key in s:
                check_bool(key, s[key], owner=o)
        if "eps" in s:
            check_number("eps", s["eps"], owner=o, min=0.0)
        if "decay" in s:
            check_optional_number("decay", s["decay"], owner=o, min=0.0, max=1.0, max_inclusive=False)
        if "alpha" in s:
            check_number("alpha", s["alpha"], owner=o)

    # ------------------------------------------------------------------ checks before the step
    def step(self, var: Var) -> Var:
        # a loaded factor of the wrong shape would fail inside the step, after other states moved
        for p in var.params:
            st = self.state.get(p)
            if st is None or "exp_avg" not in st:
                continue
            setting = self.settings(p)
            expected = [(f"{kind}_{i}", d) for i, (has, d) in enumerate(zip(_which(p, setting), _shape(p, setting))) if has for kind in ("GG", "Q")]
            check_square_factors("SOAP", p, st, expected, "max_dim, merge_small, precondition_1d")
        return super().step(var)

    # ------------------------------------------------------------------ the step
    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "exp_avg": torch.zeros_like(tensor, memory_format=torch.contiguous_format),
            "exp_avg_sq": torch.zeros_like(tensor, memory_format=torch.contiguous_format),
        }

    def apply_tensor(self, tensor: Tensor, state: dict[str, Any], setting: Mapping[str, Any], ctx: Context, i: int) -> Tensor:
        wide = tensor.dtype in _HALF
        work = torch.float32 if wide else tensor.dtype
        shape = _shape(tensor, setting)
        g = tensor.to(work).reshape(shape)
        which = _which(tensor, setting)
        shampoo_beta = setting["shampoo_beta"]
        beta_s = None if shampoo_beta is None else float(shampoo_beta)
        decay = None if setting["decay"] is None else float(setting["decay"])
        factors: list[Tensor | None] = [state.get(f"GG_{d}") for d in range(len(shape))]
        if int(state["step"]) == 1:
            # the first step: build the factors and their bases; no update
            factors = [torch.zeros(s, s, dtype=work, device=tensor.device) if has else None for s, has in zip(shape, which)]
            update_factors_(factors, g, beta_s, decay)
            for d, (f, q) in enumerate(zip(factors, eigenbases(factors))):
                if f is not None:
                    state[f"GG_{d}"], state[f"Q_{d}"] = f, q
            return torch.zeros_like(tensor)
        qs: list[Tensor | None] = [state.get(f"Q_{d}") for d in range(len(shape))]
        t = int(state["step"]) - 1  # the steps that updated, the first one excluded
        b1, b2 = float(setting["beta1"]), float(setting["beta2"])
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        m = exp_avg.to(work).reshape(shape)  # in the eigenbasis, as the authors keep it
        v = exp_avg_sq.to(work).reshape(shape)
        g_rot = project(g, qs)
        m.mul_(b1).add_(g_rot, alpha=1 - b1)
        v.mul_(b2).addcmul_(g_rot, g_rot, value=1 - b2)
        u = project_back(m / (v.sqrt() + float(setting["eps"])), qs)
        scale = float(setting["alpha"])
        if setting["bias_correction"]:
            scale *= (1 - b2**t) ** 0.5 / (1 - b1**t)
        u = u.mul_(scale).reshape(tensor.shape)
        update_factors_(factors, g, beta_s, decay)
        if t % int(setting["precond_freq"]) == 0:  # new bases: m rotated out of the old and into the new
            m_plain = project_back(m, qs)
            qs, v = refresh_eigenbases(factors, qs, v)
            m = project(m_plain, qs)
            for d, q in enumerate(qs):
                if q is not None:
                    state[f"Q_{d}"] = q
        if m.data_ptr() != exp_avg.data_ptr():
            exp_avg.copy_(m.reshape(exp_avg.shape))
        exp_avg_sq.copy_(v.reshape(exp_avg_sq.shape))
        return u.to(tensor.dtype)
