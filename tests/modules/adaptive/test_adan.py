"""Adan against a reference written from Algorithm 1 of the paper (in the paper's convention).

Xie, X., Zhou, P., Li, H., Lin, Z., & Yan, S. (2022). Adan: Adaptive Nesterov momentum algorithm
for faster optimizing deep models. https://arxiv.org/abs/2208.06677
"""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from conftest import make_params, set_grads

SHAPES = ((6, 4), (4,), (), (3, 2, 2))


class RefAdan:
    """Algorithm 1 of the paper, with weight decay 0, in the paper's convention where each
    coefficient weighs the NEW value (``b1 = 0.02`` means ``m = 0.98 m + 0.02 g``):

        m_k = (1 - b1) m_{k-1} + b1 g_k
        v_k = (1 - b2) v_{k-1} + b2 (g_k - g_{k-1})
        n_k = (1 - b3) n_{k-1} + b3 [g_k + (1 - b2)(g_k - g_{k-1})]^2
        theta_{k+1} = theta_k - lr (m_k + (1 - b2) v_k) / (sqrt(n_k) + eps)

    plus what the authors' official code adds: g_0 = g_1 (no difference on the first step) and
    the bias corrections 1 - (1 - b)^k of the three averages.
    """

    def __init__(self, groups):
        self.groups = groups
        self.state = {}

    @torch.no_grad()
    def step(self):
        for group in self.groups:
            b1, b2, b3 = group["b1"], group["b2"], group["b3"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                st = self.state.setdefault(p, dict(k=0, m=torch.zeros_like(p), v=torch.zeros_like(p), n=torch.zeros_like(p), prev=g.clone()))
                st["k"] += 1
                k = st["k"]
                diff = g - st["prev"]
                st["m"] = (1 - b1) * st["m"] + b1 * g
                st["v"] = (1 - b2) * st["v"] + b2 * diff
                st["n"] = (1 - b3) * st["n"] + b3 * (g + (1 - b2) * diff) ** 2
                st["prev"] = g.clone()
                m_hat = st["m"] / (1 - (1 - b1) ** k)
                v_hat = st["v"] / (1 - (1 - b2) ** k)
                n_hat = st["n"] / (1 - (1 - b3) ** k)
                p -= group["lr"] * (m_hat + (1 - b2) * v_hat) / (n_hat.sqrt() + group["eps"])


def _paper(beta1, beta2, beta3):
    return dict(b1=1 - beta1, b2=1 - beta2, b3=1 - beta3)


@pytest.mark.parametrize(
    "betas, eps", [((0.98, 0.92, 0.99), 1e-8), ((0.9, 0.5, 0.999), 1e-6), ((0.0, 0.0, 0.0), 1e-3)], ids=["defaults", "custom", "betas-zero"]
)
def test_matches_the_paper_500_steps(betas, eps):
    params = make_params(SHAPES, dtype=torch.float64)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.Adan(*betas, eps=eps), tz.m.LR(1e-3))
    ropt = RefAdan([{"params": ref, "lr": 1e-3, "eps": eps, **_paper(*betas)}])
    for s in range(500):
        set_grads(params, s)
        set_grads(ref, s)
        opt.step()
        ropt.step()
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_float32_matches_the_float64_reference():
    params = make_params(SHAPES, dtype=torch.float32)
    ref = [p.detach().double().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.Adan(), tz.m.LR(1e-3))
    ropt = RefAdan([{"params": ref, "lr": 1e-3, "eps": 1e-8, **_paper(0.98, 0.92, 0.99)}])
    for s in range(500):
        set_grads(params, s)
        for p, q in zip(params, ref):
            q.grad = p.grad.double()
        opt.step()
        ropt.step()
    for p, q in zip(params, ref):
        torch.testing.assert_close(p.double(), q, rtol=1e-5, atol=1e-5)


def test_param_groups_with_different_settings_match_the_paper():
    params = make_params(((6, 4), (4,), (5,), (2, 2)), dtype=torch.float64)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(
        [{"params": params[:2]}, {"params": params[2:], "lr": 3e-3, "beta1": 0.9, "beta2": 0.8, "beta3": 0.95, "eps": 1e-6}],
        tz.m.Adan(),
        tz.m.LR(1e-3),
    )
    ropt = RefAdan(
        [
            {"params": ref[:2], "lr": 1e-3, "eps": 1e-8, **_paper(0.98, 0.92, 0.99)},
            {"params": ref[2:], "lr": 3e-3, "eps": 1e-6, **_paper(0.9, 0.8, 0.95)},
        ]
    )
    for s in range(500):
        set_grads(params, s)
        set_grads(ref, s)
        if s % 5 == 0:  # a parameter that misses gradients keeps its own step count and previous gradient
            params[2].grad = None
            ref[2].grad = None
        opt.step()
        ropt.step()
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_first_step_is_sign_like():
    """On step 1 the difference is 0 and every average is debiased to its first value: u / (|u| + eps)."""
    u = torch.tensor([3.0, -0.5, 2e-3], dtype=torch.float64)
    out = tz.apply_transform(tz.m.Adan(eps=0.0), [u])[0]
    torch.testing.assert_close(out, torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64), rtol=1e-12, atol=0)


def test_state_does_not_alias_the_update():
    (p,) = make_params([(3,)])
    p.grad = torch.ones(3, dtype=p.dtype)
    opt = tz.Modular([p], tz.m.Adan(), tz.m.LR(0.1))
    opt.step()
    assert set(opt.state_dict()["state"][0]) == {"0.step", "0.exp_avg", "0.exp_avg_diff", "0.exp_avg_sq", "0.prev"}
    p.grad.fill_(7.0)
    torch.testing.assert_close(opt.state[p]["0.prev"], torch.ones(3, dtype=p.dtype))
