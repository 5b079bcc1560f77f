"""Reference for SOAP, transcribed from the SOAP authors' published optimizer (Vyas et al.,
2024, github.com/nikhilvyas/SOAP, ``soap.py``): per tensor, the first step only builds the
factors; then Adam on the gradient rotated into the factors' eigenbases with the first moment
kept in the rotated basis (rotated back and forth when the bases change), the factors updated
after the step, the bases refreshed by one power iteration and QR every
``precondition_frequency`` steps (columns sorted by Rayleigh quotient, the second moment
permuted to follow), dims merged from the first one while their product is at most
``max_precond_dim``. Weight decay is left out (0 in the comparisons). The factors are kept in
the gradient's dtype (the original allocates them in the default dtype). Independent of
``torchzero``.
"""
from __future__ import annotations

import torch


def _merge(shape, max_dim):  # type: ignore[no-untyped-def]
    new, cur = [], 1
    for s in shape:
        if cur * s > max_dim:
            if cur > 1:
                new.append(cur)
                cur = s
            else:
                new.append(s)
                cur = 1
        else:
            cur *= s
    if cur > 1 or not new:
        new.append(cur)
    return new


class SOAPReference(torch.optim.Optimizer):
    def __init__(self, params, lr=3e-3, betas=(0.95, 0.95), shampoo_beta=-1, eps=1e-8, precondition_frequency=10,  # type: ignore[no-untyped-def]
                 max_precond_dim=10000, merge_dims=False, precondition_1d=False):
        super().__init__(params, dict(lr=lr, betas=betas, shampoo_beta=shampoo_beta, eps=eps, precondition_frequency=precondition_frequency,
                                      max_precond_dim=max_precond_dim, merge_dims=merge_dims, precondition_1d=precondition_1d))

    def _view(self, x, group):  # type: ignore[no-untyped-def]
        return x.reshape(_merge(x.shape, group["max_precond_dim"])) if group["merge_dims"] else x

    def _rotate(self, x, state, group, back):  # type: ignore[no-untyped-def]
        shape = x.shape
        x = self._view(x, group)
        for q in state["Q"]:
            if q is None:
                x = x.permute(*range(1, x.ndim), 0)
            else:
                x = torch.tensordot(x, q, dims=([0], [1 if back else 0]))
        return x.reshape(shape)

    @torch.no_grad()
    def step(self):  # type: ignore[no-untyped-def, override]
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g, state = p.grad, self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(g)
                    state["exp_avg_sq"] = torch.zeros_like(g)
                    state["beta"] = group["shampoo_beta"] if group["shampoo_beta"] >= 0 else b2
                    gv = self._view(g, group)
                    if g.dim() == 1 and (not group["precondition_1d"] or g.shape[0] > group["max_precond_dim"]):
                        state["GG"] = [None]
                    else:
                        state["GG"] = [torch.zeros(s, s, dtype=g.dtype) if s <= group["max_precond_dim"] else None for s in gv.shape]
                    state["Q"] = None
                    self._update(g, state, group)
                    continue
                g_rot = self._rotate(g, state, group, back=False)
                state["step"] += 1
                t = state["step"]
                state["exp_avg"].mul_(b1).add_(g_rot, alpha=1 - b1)
                state["exp_avg_sq"].mul_(b2).add_(g_rot.square(), alpha=1 - b2)
                denom = state["exp_avg_sq"].sqrt().add_(group["eps"])
                step_size = group["lr"] * (1 - b2**t) ** 0.5 / (1 - b1**t)
                p.add_(self._rotate(state["exp_avg"] / denom, state, group, back=True), alpha=-step_size)
                self._update(g, state, group)

    def _update(self, g, state, group):  # type: ignore[no-untyped-def]
        if state["Q"] is not None:
            state["exp_avg"] = self._rotate(state["exp_avg"], state, group, back=True)
        gv = self._view(g, group)
        for i, f in enumerate(state["GG"]):
            if f is not None:
                other = [d for d in range(gv.ndim) if d != i]
                f.lerp_(torch.tensordot(gv, gv, dims=(other, other)), 1 - state["beta"])
        if state["Q"] is None:
            state["Q"] = [None if f is None else torch.flip(torch.linalg.eigh(f + 1e-30 * torch.eye(f.shape[0], dtype=f.dtype))[1], [1])
                          for f in state["GG"]]
        if state["step"] > 0 and state["step"] % group["precondition_frequency"] == 0:
            v = self._view(state["exp_avg_sq"], group)
            new_q = []
            for i, (f, q) in enumerate(zip(state["GG"], state["Q"])):
                if f is None:
                    new_q.append(None)
                    continue
                order = torch.argsort(torch.diag(q.T @ f @ q), descending=True)
                v = v.index_select(i, order)
                new_q.append(torch.linalg.qr(f @ q[:, order])[0])
            state["exp_avg_sq"] = v.reshape(state["exp_avg_sq"].shape)
            state["Q"] = new_q
        if state["step"] > 0:
            state["exp_avg"] = self._rotate(state["exp_avg"], state, group, back=False)
