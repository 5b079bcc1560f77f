"""Reference for Prodigy (Adam version), transcribed from Algorithm 4 of Mishchenko & Defazio
(2023), "Prodigy: An Expeditiously Adaptive Parameter-Free Learner", with the details of the
authors' reference code (``prodigy_reference.py``): the numerator decayed by beta3 = sqrt(beta2)
unless given, both sums scaled by d/d0, the step size of the old d, the new d in the
denominator's eps, decoupled weight decay scaled by the same step size, no step while every
gradient is zero. One group, plain loops, independent of ``torchzero``."""
from __future__ import annotations

import math

import torch


class ProdigyReference(torch.optim.Optimizer):
    def __init__(self, params, lr=1.0, betas=(0.9, 0.999), beta3=None, eps=1e-8, weight_decay=0.0,  # type: ignore[no-untyped-def]
                 use_bias_correction=False, safeguard_warmup=False, d0=1e-6, d_coef=1.0, growth_rate=float("inf")):
        super().__init__(params, dict(lr=lr))
        self.o = dict(betas=betas, beta3=beta3, eps=eps, wd=weight_decay, bc=use_bias_correction, safe=safeguard_warmup,
                      d0=d0, d_coef=d_coef, growth=growth_rate)
        self.d, self.d_max, self.num, self.k = d0, d0, 0.0, 0

    @torch.no_grad()
    def step(self):  # type: ignore[no-untyped-def, override]
        o = self.o
        b1, b2 = o["betas"]
        beta3 = o["beta3"] if o["beta3"] is not None else math.sqrt(b2)
        lr = self.param_groups[0]["lr"]
        d, d0 = self.d, o["d0"]
        bc = math.sqrt(1 - b2 ** (self.k + 1)) / (1 - b1 ** (self.k + 1)) if o["bc"] else 1.0
        dlr = d * lr * bc
        num = self.num * beta3
        denom = 0.0
        params = [p for p in self.param_groups[0]["params"] if p.grad is not None]
        for p in params:
            g, st = p.grad, self.state[p]
            if not st:
                st.update(s=torch.zeros_like(p), p0=p.clone(), m=torch.zeros_like(p), v=torch.zeros_like(p))
            num += (d / d0) * dlr * torch.dot(g.flatten(), (st["p0"] - p).flatten()).item()
            st["m"] = b1 * st["m"] + d * (1 - b1) * g
            st["v"] = b2 * st["v"] + d * d * (1 - b2) * g * g
            st["s"] = beta3 * st["s"] + (d / d0) * (d if o["safe"] else dlr) * g
            denom += st["s"].abs().sum().item()
        if denom == 0:
            return
        d_hat = o["d_coef"] * num / denom
        if d == d0:
            d = max(d, d_hat)
        self.d_max = max(self.d_max, d_hat)
        self.d = d = min(self.d_max, d * o["growth"])
        self.num, self.k = num, self.k + 1
        for p in params:
            st = self.state[p]
            p.sub_(dlr * (st["m"] / (st["v"].sqrt() + d * o["eps"]) + o["wd"] * p))
