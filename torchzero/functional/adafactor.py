r"""Adafactor's math (Shazeer & Stern, 2018) as torch.optim.Adafactor computes it, one tensor at a
time: a factored second moment for matrices (a row and a column average), a full one for
vectors, the relative step size $\alpha_t = \max(\epsilon_2, \mathrm{RMS}(x))\,\min(\text{lr}, 1/\sqrt t)$
and the update clipped to RMS $\le d$."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["adafactor_step"]

_vector_norm = torch.linalg.vector_norm  # torch.norm(g, dim=...) without its Python wrapper


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
    tensors are computed in float32 (the factors stored back in their dtype). Matrices with at
    least :data:`FACTORED_MIN_SIZE` elements take fewer passes (:func:`_large_matrix_update`),
    with the same result up to rounding; smaller ones take torch's operations.
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
    if grad.dim() > 1 and grad.numel() >= FACTORED_MIN_SIZE:
        assert row_var is not None and col_var is not None
        return _large_matrix_update(grad, param, row_var, col_var, one_minus_beta2_t, rho_t, eps1, eps2, d)
    alpha = max(eps2, _vector_norm(param).item() / (param.numel() ** 0.5)) * rho_t
    if grad.dim() > 1:
        assert row_var is not None and col_var is not None
        row_mean = _vector_norm(grad, 2, -1, True).square_().div_(grad.size(-1))
        row_var.lerp_(row_mean, one_minus_beta2_t)
        col_mean = _vector_norm(grad, 2, -2, True).square_().div_(grad.size(-2))
        col_var.lerp_(col_mean, one_minus_beta2_t)
        update = _written_out(row_var, col_var, eps1)
    else:
        assert variance is not None
        variance.lerp_(grad * grad, one_minus_beta2_t)
        update = torch.clamp(variance, min=eps1 * eps1).rsqrt_()
    update.mul_(grad)
    denom = max(1.0, _vector_norm(update).item() / ((update.numel() ** 0.5) * d))
    return update.mul_(alpha / denom)


def _written_out(row_var: Tensor, col_var: Tensor, eps1: float, out: Tensor | None = None) -> Tensor:
    r"""$\hat V^{-1/2}$ with $\hat V = R C / \overline R$ written out (in ``out`` if given), as torch does."""
    var_estimate = torch.matmul(row_var, col_var, out=out)
    var_estimate.div_(row_var.mean(dim=-2, keepdim=True).clamp_(min=eps1))
    return var_estimate.clamp_(min=eps1 * eps1).rsqrt_()


FACTORED_MIN_SIZE = 1 << 14
"""Matrices with at least this many elements take :func:`_large_matrix_update` (smaller ones
the form torch writes, which makes fewer calls)."""


def _large_matrix_update(
    grad: Tensor, param: Tensor, row_var: Tensor, col_var: Tensor, weight: float, rho: float, eps1: float, eps2: float, d: float
) -> Tensor:
    r"""A large matrix's step (the averages updated, the update returned) in fewer passes over
    it than torch's form, equal to it up to rounding.

    The row and column averages of $g^2$ are sums over one buffer holding $g^2$ (a sum over
    the rows of a row-major matrix is fast, a norm over them is not). Then $\hat V_{ij} = r_i c_j$
    with $r = R/\overline R$, so where no entry is floored ($\min r \min c \ge \epsilon_1^2$),
    $\hat V^{-1/2} = r^{-1/2} (c^{-1/2})^\top$ and the update
    $u = \alpha\, (g \odot c^{-1/2}) \odot r^{-1/2} / \max(1, \mathrm{RMS}/d)$ takes its RMS from
    the row norms of $g \odot c^{-1/2}$, written into the same buffer. Where an entry would
    be floored (a row or a column without gradient), $\hat V$ is written out as torch does.
    The parameter's norm and that test are read in one host sync, as many as torch's form makes.
    """
    buf = torch.mul(grad, grad)
    row_var.lerp_(buf.sum(-1, keepdim=True).div_(grad.size(-1)), weight)
    col_var.lerp_(buf.sum(-2, keepdim=True).div_(grad.size(-2)), weight)
    r = row_var / row_var.mean(dim=-2, keepdim=True).clamp_(min=eps1)
    norm = _vector_norm(param)
    param_norm, lo = torch.stack((norm, (r.amin() * col_var.amin()).to(norm.dtype))).tolist()
    alpha = max(eps2, param_norm / (param.numel() ** 0.5)) * rho
    if lo >= eps1 * eps1:  # False for NaN
        inv_r = r.rsqrt_()
        update = torch.mul(grad, col_var.rsqrt(), out=buf)
        rms = _vector_norm(_vector_norm(update, 2, -1, True).mul_(inv_r)).item()
    else:
        inv_r = None
        update = _written_out(row_var, col_var, eps1, out=buf).mul_(grad)
        rms = _vector_norm(update).item()
    scale = alpha / max(1.0, rms / ((update.numel() ** 0.5) * d))
    return update.mul_(scale) if inv_r is None else update.mul_(inv_r.mul_(scale))
