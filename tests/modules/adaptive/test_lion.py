"""Lion against a reference written from Algorithm 2 of the paper.

Chen, X., et al. (2023). Symbolic discovery of optimization algorithms. https://arxiv.org/abs/2302.06675
"""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from conftest import make_params, set_grads

SHAPES = ((6, 4), (4,), (), (3, 2, 2))


class RefLion:
    """Algorithm 2 (Lion), without weight decay, one plain loop per parameter:

        c_t = beta1 * m_{t-1} + (1 - beta1) * g_t
        theta_t = theta_{t-1} - lr * sign(c_t)
        m_t = beta2 * m_{t-1} + (1 - beta2) * g_t
    """

    def __init__(self, groups):
        self.groups = groups
        self.m = {}

    @torch.no_grad()
    def step(self):
        for group in self.groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                m = self.m.setdefault(p, torch.zeros_like(p))
                c = group["beta1"] * m + (1 - group["beta1"]) * p.grad
                p -= group["lr"] * torch.sign(c)
                self.m[p] = group["beta2"] * m + (1 - group["beta2"]) * p.grad


@pytest.mark.parametrize("betas", [(0.9, 0.99), (0.95, 0.98), (0.0, 0.5)], ids=["defaults", "paper-lm", "beta1-zero"])
def test_matches_reference_500_steps(betas):
    params = make_params(SHAPES, dtype=torch.float64)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.Lion(*betas), tz.m.LR(1e-3))
    ropt = RefLion([{"params": ref, "lr": 1e-3, "beta1": betas[0], "beta2": betas[1]}])
    for s in range(500):
        set_grads(params, s)
        set_grads(ref, s)
        opt.step()
        ropt.step()
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_param_groups_with_different_settings_match_reference():
    params = make_params(((6, 4), (4,), (5,), (2, 2)), dtype=torch.float64)
    ref = [p.detach().clone().requires_grad_() for p in params]
    missing = params[3], ref[3]
    opt = tz.Modular([{"params": params[:2]}, {"params": params[2:], "lr": 3e-4, "beta1": 0.5, "beta2": 0.9}], tz.m.Lion(), tz.m.LR(1e-3))
    ropt = RefLion(
        [
            {"params": ref[:2], "lr": 1e-3, "beta1": 0.9, "beta2": 0.99},
            {"params": ref[2:], "lr": 3e-4, "beta1": 0.5, "beta2": 0.9},
        ]
    )
    for s in range(500):
        set_grads(params, s)
        set_grads(ref, s)
        if s % 4 == 0:
            for p in missing:
                p.grad = None
        opt.step()
        ropt.step()
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_update_is_a_sign():
    (p,) = make_params([(50,)], dtype=torch.float32)
    mod = tz.m.Lion()
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        u = tz.apply_transform(mod, [torch.randn(50, generator=g)], params=[p])[0]
        assert set(u.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert tz.apply_transform(tz.m.Lion(), [torch.zeros(3)])[0].abs().sum() == 0
