"""Reference for Muon, transcribed from the algorithm in the Muon author's public code
(K. Jordan, github.com/KellerJordan/Muon, ``muon.py``: ``SingleDeviceMuonWithAuxAdam``):
SGD momentum by ``lerp``, the Nesterov look-ahead, conv weights flattened to ``(out, -1)``, the
quintic Newton-Schulz iteration on the wide orientation, the shape factor
$\\sqrt{\\max(1, \\text{rows}/\\text{cols})}$, decoupled weight decay; and for the other
parameters the auxiliary Adam of the same file. Plain per-tensor loops, independent of
``torchzero``.

Two constants of the original are arguments here so the algorithm can be compared exactly:
``ns_dtype`` (the original casts to bfloat16) and ``eps`` (added to the norm). The original's
shape factor of a 4-D weight reads the last two dims (``kh / kw``); ``conv_factor_from_matrix``
takes the flattened matrix's instead, as torch.optim.Muon and torchzero do.
"""
from __future__ import annotations

import torch

QUINTIC = (3.4445, -4.7750, 2.0315)


def newton_schulz5(G: torch.Tensor, steps: int, ns_dtype: torch.dtype, eps: float) -> torch.Tensor:
    a, b, c = QUINTIC
    X = G.to(ns_dtype)
    wide = G.size(-2) <= G.size(-1)
    if not wide:
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + eps)
    for _ in range(steps):
        A = X @ X.mT
        B = b * A + c * A @ A
        X = a * X + B @ X
    return X if wide else X.mT


class MuonWithAuxAdam(torch.optim.Optimizer):
    """Param groups carry ``use_muon``; Muon groups: lr, momentum, weight_decay; Adam groups:
    lr, betas, eps, weight_decay (the defaults of the original)."""

    def __init__(self, groups, ns_dtype=torch.bfloat16, eps=1e-7, ns_steps=5, conv_factor_from_matrix=False):  # type: ignore[no-untyped-def]
        for g in groups:
            if g["use_muon"]:
                g.setdefault("lr", 0.02), g.setdefault("momentum", 0.95), g.setdefault("weight_decay", 0.0)
            else:
                g.setdefault("lr", 3e-4), g.setdefault("betas", (0.9, 0.95)), g.setdefault("eps", 1e-10)
                g.setdefault("weight_decay", 0.0)
        super().__init__(groups, {})
        self.ns_dtype, self.ns_eps, self.ns_steps, self.conv_factor_from_matrix = ns_dtype, eps, ns_steps, conv_factor_from_matrix

    @torch.no_grad()
    def step(self):  # type: ignore[no-untyped-def, override]
        for g in self.param_groups:
            for p in g["params"]:
                grad = p.grad.clone()
                st = self.state[p]
                if g["use_muon"]:
                    if not st:
                        st["momentum_buffer"] = torch.zeros_like(p)
                    buf, beta = st["momentum_buffer"], g["momentum"]
                    buf.lerp_(grad, 1 - beta)
                    m = grad.lerp_(buf, beta)
                    if m.ndim == 4:
                        m = m.view(len(m), -1)
                    u = newton_schulz5(m, self.ns_steps, self.ns_dtype, self.ns_eps)
                    shape = m.shape if self.conv_factor_from_matrix else grad.shape
                    u = u * max(1, shape[-2] / shape[-1]) ** 0.5
                    p.mul_(1 - g["lr"] * g["weight_decay"])
                    p.add_(u.reshape(p.shape), alpha=-g["lr"])
                else:
                    if not st:
                        st["m"], st["v"], st["t"] = torch.zeros_like(p), torch.zeros_like(p), 0
                    st["t"] += 1
                    (b1, b2), t = g["betas"], st["t"]
                    st["m"].lerp_(grad, 1 - b1)
                    st["v"].lerp_(grad.square(), 1 - b2)
                    u = (st["m"] / (1 - b1**t)) / ((st["v"] / (1 - b2**t)).sqrt() + g["eps"])
                    p.mul_(1 - g["lr"] * g["weight_decay"])
                    p.add_(u, alpha=-g["lr"])
