r"""Adafactor's math (Shazeer & Stern, 2018) as torch.optim.Adafactor computes it, one tensor at a
time: a factored second moment for matrices (a row and a column average), a full one for
vectors, the relative step size $\alpha_t = \max(\epsilon_2, \mathrm{RMS}(x))\,\min(\text{lr}, 1/\sqrt t)$
and the update clipped to RMS $\le d$."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["adafactor_step"]


def adafactor_step(
    grad: Tensor,
    param: Tensor,
    row_var: Tensor | None,
    col_var: Tensor | None,
    variance: Tensor | None,
    step: float,
    lr: float,
    beta2_decay: float,
    eps1: float | None,
    eps2: float,
    d: float,
) -> Tensor:
    r"""The update $u$ (the parameter moves to $x - u$) of one tensor, its second-moment
    averages updated in place:

    $$
    \begin{aligned}
    \hat\beta_t &= t^{c}, \quad \alpha_t = \max(\epsilon_2, \lVert x\rVert/\sqrt{n}) \min(\text{lr}, t^{-1/2}) \\
    R &\leftarrow R + \hat\beta_t (\overline{g^2}_{\text{rows}} - R), \quad
    C \leftarrow C + \hat\beta_t (\overline{g^2}_{\text{cols}} - C), \quad \hat V = \frac{R C}{\overline{R}} \ \text{(matrices)} \\
    V &\leftarrow V + \hat\beta_t (g^2 - V), \quad \hat V = V \ \text{(vectors)} \\
    w &= g / \sqrt{\max(\hat V, \epsilon_1^2)}, \quad u = \frac{\alpha_t}{\max(1, \mathrm{RMS}(w)/d)}\, w
    \end{aligned}
    $$

    with $c$ = ``beta2_decay``; $\epsilon_1$ is the machine epsilon of ``param``'s dtype when ``None``; the reduction is
    over the last two dimensions (the leading ones are a batch of matrices). Half-precision
    tensors are computed in float32 (the factors stored back in their dtype).
    """
    if param.numel() == 0:  # nothing to step (torch's would divide by its size, 0)
        return torch.zeros_like(grad)
    if eps1 is None:
        eps1 = torch.finfo(param.dtype).eps
    if grad.dtype in (torch.float16, torch.bfloat16):  # in float32: eps1**2 is 0 in float16, and rsqrt(0) * 0 NaN
        wide = [None if t is None else t.float() for t in (row_var, col_var, variance)]
        u = adafactor_step(grad.float(), param.float(), *wide, step, lr, beta2_decay, eps1, eps2, d)
        for state, w in zip((row_var, col_var, variance), wide):
            if state is not None and w is not None:
                state.copy_(w)
        return u.to(grad.dtype)
    one_minus_beta2_t = step**beta2_decay
    rho_t = min(lr, 1 / (step**0.5))
    alpha = max(eps2, param.norm(2).item() / (param.numel() ** 0.5)) * rho_t
    if grad.dim() > 1:
        assert row_var is not None and col_var is not None
        row_mean = torch.norm(grad, dim=-1, keepdim=True).square_().div_(grad.size(-1))
        row_var.lerp_(row_mean, one_minus_beta2_t)
        col_mean = torch.norm(grad, dim=-2, keepdim=True).square_().div_(grad.size(-2))
        col_var.lerp_(col_mean, one_minus_beta2_t)
        var_estimate = row_var @ col_var
        var_estimate.div_(row_var.mean(dim=-2, keepdim=True).clamp_(min=eps1))
    else:
        assert variance is not None
        variance.lerp_(grad * grad, one_minus_beta2_t)
        var_estimate = variance.clone()
    update = var_estimate.clamp_(min=eps1 * eps1).rsqrt_()
    update.mul_(grad)
    denom = max(1.0, update.norm(2).item() / ((update.numel() ** 0.5) * d))
    return update.mul_(alpha / denom)
