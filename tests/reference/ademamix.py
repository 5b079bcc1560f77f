"""Reference for AdEMAMix, transcribed from Algorithm 1 of Pagliardini, Ablin & Grangier (2024),
"The AdEMAMix optimizer: better, faster, older", with the schedulers of the authors' code
(github.com/apple/ml-ademamix): alpha warmed up linearly from 0, beta3 linearly in half-life
(ln 0.5 / ln(beta + 1e-8) - 1) from beta1. Per-tensor loops, independent of ``torchzero``."""
from __future__ import annotations

import math

import torch


def _half_life(beta: float) -> float:
    return math.log(0.5) / math.log(beta + 1e-8) - 1


class AdEMAMixReference(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999, 0.9999), alpha=2.0, beta3_warmup=None, alpha_warmup=None, eps=1e-8, weight_decay=0.0):  # type: ignore[no-untyped-def]
        super().__init__(params, dict(lr=lr, betas=betas, alpha=alpha, beta3_warmup=beta3_warmup, alpha_warmup=alpha_warmup, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):  # type: ignore[no-untyped-def, override]
        for group in self.param_groups:
            b1, b2, b3_final = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g, st = p.grad, self.state[p]
                if not st:
                    st["t"] = 0
                    st["m1"] = torch.zeros_like(p)
                    st["m2"] = torch.zeros_like(p)
                    st["nu"] = torch.zeros_like(p)
                st["t"] += 1
                t = st["t"]
                alpha, b3 = group["alpha"], b3_final
                if group["alpha_warmup"] is not None and t < group["alpha_warmup"]:
                    alpha = group["alpha"] * t / group["alpha_warmup"]
                if group["beta3_warmup"] is not None and t < group["beta3_warmup"]:
                    a = t / group["beta3_warmup"]
                    b3 = 0.5 ** (1 / ((1 - a) * _half_life(b1) + a * _half_life(b3_final) + 1))
                st["m1"] = b1 * st["m1"] + (1 - b1) * g
                st["m2"] = b3 * st["m2"] + (1 - b3) * g
                st["nu"] = b2 * st["nu"] + (1 - b2) * g * g
                m1_hat = st["m1"] / (1 - b1**t)
                nu_hat = st["nu"] / (1 - b2**t)
                update = (m1_hat + alpha * st["m2"]) / (nu_hat.sqrt() + group["eps"]) + group["weight_decay"] * p
                p.sub_(group["lr"] * update)
