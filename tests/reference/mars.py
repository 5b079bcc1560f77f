"""Reference for MARS-AdamW, transcribed from Algorithm 1 of Yuan et al. (2024), "MARS:
Unleashing the Power of Variance Reduction for Training Large Models", in its approximate form
(the previous step's gradient in place of the current batch's gradient at the previous point,
the authors' default): c_t = g_t + gamma * beta1/(1 - beta1) * (g_t - g_{t-1}) with g_0 = 0,
clipped to norm 1 (per tensor as the authors' code, or over all parameters as the box writes
it), then AdamW with bias correction on c. Plain loops, independent of ``torchzero``."""
from __future__ import annotations

import torch


class MARSAdamWReference(torch.optim.Optimizer):
    def __init__(self, params, lr=3e-3, betas=(0.95, 0.99), eps=1e-8, weight_decay=0.0, gamma=0.025, per_tensor=True):  # type: ignore[no-untyped-def]
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, gamma=gamma))
        self.per_tensor = per_tensor

    @torch.no_grad()
    def step(self):  # type: ignore[no-untyped-def, override]
        for group in self.param_groups:
            b1, b2 = group["betas"]
            cs = []
            for p in group["params"]:
                st = self.state[p]
                if not st:
                    st["t"], st["m"], st["v"], st["g_prev"] = 0, torch.zeros_like(p), torch.zeros_like(p), torch.zeros_like(p)
                g = p.grad
                cs.append(g + group["gamma"] * b1 / (1 - b1) * (g - st["g_prev"]))
                st["g_prev"] = g.clone()
            if not self.per_tensor:
                total = torch.sqrt(sum((c * c).sum() for c in cs))
                cs = [c / total if total > 1 else c for c in cs]
            for p, c in zip(group["params"], cs):
                if self.per_tensor and c.norm() > 1:
                    c = c / c.norm()
                st = self.state[p]
                st["t"] += 1
                st["m"] = b1 * st["m"] + (1 - b1) * c
                st["v"] = b2 * st["v"] + (1 - b2) * c * c
                m_hat, v_hat = st["m"] / (1 - b1 ** st["t"]), st["v"] / (1 - b2 ** st["t"])
                p.sub_(group["lr"] * (m_hat / (v_hat.sqrt() + group["eps"]) + group["weight_decay"] * p))
