"""Cautious against the paper's algorithm (Liang et al. 2024, arXiv 2411.16085) and its modes' definitions."""
from __future__ import annotations

import math

import pytest
import torch

import torchzero as tz
from conftest import make_params, set_grads

SHAPES = ((6, 4), (4,), (), (3, 2, 2))


def _cautious_ref(u, g, normalize, eps):
    """phi = 1[u * g > 0]; u * phi, rescaled by 1 / max(mean(phi), eps) with normalize (per tensor)."""
    phi = (u * g > 0).to(u.dtype)
    if normalize:
        phi = phi / max(phi.mean().item(), eps)
    return u * phi


class RefCautiousAdamW:
    """Algorithm 1 of the paper (C-AdamW), one tensor at a time, written from the paper."""

    def __init__(self, params, lr, betas, eps, weight_decay, normalize, mask_eps=1e-6):
        self.params, self.lr, self.betas, self.eps, self.wd = params, lr, betas, eps, weight_decay
        self.normalize, self.mask_eps = normalize, mask_eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self):
        self.t += 1
        b1, b2 = self.betas
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad
            m.mul_(b1).add_((1 - b1) * g)
            v.mul_(b2).add_((1 - b2) * g * g)
            u = (m / (1 - b1**self.t)) / ((v / (1 - b2**self.t)).sqrt() + self.eps)
            u = _cautious_ref(u, g, self.normalize, self.mask_eps)
            p.sub_(self.lr * u + self.lr * self.wd * p)


class RefCautiousSGDM:
    """Cautious SGD with momentum (the paper's C-SGDM): heavy ball, masked by the gradient's sign."""

    def __init__(self, params, lr, momentum, normalize):
        self.params, self.lr, self.momentum, self.normalize = params, lr, momentum, normalize
        self.buf = [None] * len(params)

    @torch.no_grad()
    def step(self):
        for i, p in enumerate(self.params):
            g = p.grad
            self.buf[i] = g.clone() if self.buf[i] is None else self.momentum * self.buf[i] + g
            p.sub_(self.lr * _cautious_ref(self.buf[i], g, self.normalize, 1e-6))


def _pair(modules, ref_cls, steps, **ref_kw):
    params = make_params(SHAPES, dtype=torch.float64)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt, ropt = tz.Modular(params, *modules), ref_cls(ref, **ref_kw)
    for step in range(steps):
        set_grads(params, step)
        set_grads(ref, step)
        opt.step()
        ropt.step()
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("normalize", [False, True], ids=["plain", "normalize"])
def test_cautious_adamw_matches_paper_500_steps(normalize):
    _pair(
        [tz.m.Adam(0.9, 0.99, 1e-8), tz.m.Cautious(normalize=normalize), tz.m.WeightDecay(1e-2), tz.m.LR(1e-3)],
        RefCautiousAdamW,
        500,
        lr=1e-3,
        betas=(0.9, 0.99),
        eps=1e-8,
        weight_decay=1e-2,
        normalize=normalize,
    )


@pytest.mark.parametrize("normalize", [False, True], ids=["plain", "normalize"])
def test_cautious_sgdm_matches_paper_500_steps(normalize):
    _pair([tz.m.HeavyBall(0.9), tz.m.Cautious(normalize=normalize), tz.m.LR(1e-2)], RefCautiousSGDM, 500, lr=1e-2, momentum=0.9, normalize=normalize)


def _apply(module, u, g):
    (p,) = make_params([tuple(u.shape)])
    return tz.apply_transform(module, [u], params=[p], grads=[g])[0]


def _random_pair(n=1000, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(n, generator=gen, dtype=dtype)
    g = torch.randn(n, generator=gen, dtype=dtype)
    u[:10] = 0.0  # zeros count as disagreeing
    g[10:20] = 0.0
    return u, g


def test_mode_zero_drops_exactly_the_disagreeing_elements():
    u, g = _random_pair()
    out = _apply(tz.m.Cautious(), u.clone(), g)
    agree = u * g > 0
    assert torch.equal(out[agree], u[agree])
    assert (out[~agree] == 0).all()
    assert (out * g >= 0).all()


@pytest.mark.parametrize("eps", [1e-6, 0.3], ids=["eps1e-6", "eps0.3"])
def test_mode_zero_normalize_rescales_by_the_fraction_kept(eps):
    u, g = _random_pair(seed=1)
    out = _apply(tz.m.Cautious(normalize=True, eps=eps), u.clone(), g)
    torch.testing.assert_close(out, _cautious_ref(u, g, True, eps), rtol=1e-14, atol=0)
    frac = (u * g > 0).double().mean().item()
    torch.testing.assert_close(out.abs().sum() * max(frac, eps), (u * (u * g > 0)).abs().sum(), rtol=1e-12, atol=0)


def test_normalize_is_per_tensor():
    """Each tensor is rescaled by its own fraction kept, as the paper's implementation does per parameter."""
    u1, g1 = _random_pair(100, seed=2)
    u2 = torch.tensor([1.0, -1.0, 2.0, -2.0], dtype=torch.float64)
    g2 = torch.tensor([1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    params = make_params([(100,), (4,)])
    out = tz.apply_transform(tz.m.Cautious(normalize=True), [u1, u2], params=params, grads=[g1, g2])
    torch.testing.assert_close(out[0], _cautious_ref(u1, g1, True, 1e-6), rtol=1e-14, atol=0)
    torch.testing.assert_close(out[1], torch.tensor([2.0, 0.0, 4.0, 0.0], dtype=torch.float64))


def test_mode_grad_replaces_disagreeing_elements_by_the_gradient():
    u, g = _random_pair(seed=3)
    out = _apply(tz.m.Cautious(mode="grad"), u.clone(), g)
    torch.testing.assert_close(out, torch.where(u * g > 0, u, g), rtol=0, atol=0)


def test_mode_backtrack_negates_disagreeing_elements():
    u, g = _random_pair(seed=4)
    out = _apply(tz.m.Cautious(mode="backtrack"), u.clone(), g)
    torch.testing.assert_close(out, torch.where(u * g > 0, u, -u), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_tiny_values_do_not_underflow_the_mask(dtype):
    """u * g underflows to 0 in half precision; the mask uses signs, so agreement is still seen."""
    u = torch.full((8,), 1e-4, dtype=dtype)
    g = torch.full((8,), 1e-4, dtype=dtype)
    g[:4] = -g[:4]
    assert (u * g == 0).all() or dtype == torch.bfloat16
    out = _apply(tz.m.Cautious(normalize=True), u.clone(), g)
    torch.testing.assert_close(out, torch.cat([torch.zeros(4, dtype=dtype), torch.full((4,), 2e-4, dtype=dtype)]))


def test_all_disagreeing_with_normalize_gives_zeros_not_nan():
    u = torch.ones(5, dtype=torch.float64)
    out = _apply(tz.m.Cautious(normalize=True), u, -u)
    assert torch.equal(out, torch.zeros(5, dtype=torch.float64))


def test_param_groups_choose_the_mode():
    a, b = make_params([(50,), (50,)])
    gen = torch.Generator().manual_seed(5)
    ua, ub, ga, gb = (torch.randn(50, generator=gen, dtype=torch.float64) for _ in range(4))
    mod = tz.m.Cautious().set_param_groups([{"params": [b], "mode": "backtrack"}])
    out = tz.apply_transform(mod, [ua, ub], params=[a, b], grads=[ga, gb])
    torch.testing.assert_close(out[0], torch.where(ua * ga > 0, ua, 0.0))
    torch.testing.assert_close(out[1], torch.where(ub * gb > 0, ub, -ub))


def test_normalize_with_another_mode_is_rejected():
    with pytest.raises(ValueError, match="Cautious.*normalize.*mode"):
        tz.m.Cautious(normalize=True, mode="grad")
    with pytest.raises(ValueError, match="Cautious.*eps"):
        tz.m.Cautious(eps=math.nan)
