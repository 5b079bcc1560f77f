"""Schedulers that cycle momentum (``OneCycleLR``, ``CyclicLR`` with ``cycle_momentum=True``)
drive a chain's ``betas``/``momentum`` as they drive ``torch.optim.Adam``'s and ``SGD``'s."""
from __future__ import annotations

import pytest
import torch
from torch.optim.lr_scheduler import CyclicLR, OneCycleLR

import torchzero as tz


def make(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g, dtype=torch.float64)) for s in [(5, 4), (4,)]]


def set_grads(params, step: int) -> None:
    g = torch.Generator().manual_seed(500 + step)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)


SCHEDULERS = {
    "OneCycleLR": lambda opt: OneCycleLR(opt, max_lr=0.05, total_steps=60),
    "OneCycleLR-linear": lambda opt: OneCycleLR(opt, max_lr=0.05, total_steps=60, anneal_strategy="linear", three_phase=True),
    "CyclicLR": lambda opt: CyclicLR(opt, base_lr=1e-3, max_lr=0.05, step_size_up=7, base_momentum=0.8, max_momentum=0.95),
}

CHAINS = {
    "Adam": (lambda p: tz.Modular(p, tz.m.Adam(), tz.m.LR(1e-3)), lambda p: torch.optim.Adam(p, lr=1e-3), "betas"),
    "AdamW": (lambda p: tz.Modular(p, tz.m.Adam(), tz.m.WeightDecay(1e-2), tz.m.LR(1e-3)),
              lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=1e-2), "betas"),
    "SGD-momentum": (lambda p: tz.Modular(p, tz.m.HeavyBall(0.9), tz.m.LR(1e-3)),
                     lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.9), "momentum"),
    "SGD-nesterov": (lambda p: tz.Modular(p, tz.m.NAG(0.9), tz.m.LR(1e-3)),
                     lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.9, nesterov=True), "momentum"),
}


@pytest.mark.parametrize("sched", list(SCHEDULERS))
@pytest.mark.parametrize("chain", list(CHAINS))
def test_momentum_cycling_schedulers_match_torch(chain, sched):
    make_tz, make_torch, key = CHAINS[chain]
    params, ref_params = make(), make()
    opt, ref = make_tz(params), make_torch(ref_params)
    assert key in opt.defaults
    s, rs = SCHEDULERS[sched](opt), SCHEDULERS[sched](ref)
    for step in range(60):
        assert opt.param_groups[0]["lr"] == ref.param_groups[0]["lr"]
        assert opt.param_groups[0][key] == ref.param_groups[0][key]
        set_grads(params, step)
        set_grads(ref_params, step)
        opt.step()
        ref.step()
        s.step()
        rs.step()
    for p, q in zip(params, ref_params):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)


def test_nested_modules_keep_their_own_momentum():
    params, ref_params = make(), make()
    # HeavyBall nested in Graft: not published, so a scheduler can't move it and a group key doesn't reach it
    opt = tz.Modular(params, tz.m.Adam(), tz.m.Graft(tz.m.HeavyBall(0.5)), tz.m.LR(1e-2))
    assert opt.param_groups[0]["betas"] == (0.9, 0.999) and "momentum" not in opt.param_groups[0]
    ref = tz.Modular(ref_params, tz.m.Adam(), tz.m.Graft(tz.m.HeavyBall(0.5)), tz.m.LR(1e-2))
    opt.param_groups[0]["betas"] = (0.5, 0.99)  # as a scheduler writes it: Adam reads it on the next step
    ref.chain.modules[0].defaults.update(beta1=0.5, beta2=0.99)
    del ref.param_groups[0]["betas"]
    for step in range(5):
        set_grads(params, step)
        set_grads(ref_params, step)
        opt.step()
        ref.step()
    for p, q in zip(params, ref_params):
        assert torch.equal(p, q)
