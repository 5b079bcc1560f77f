"""Soak: 10,000 steps of a long chain with a scheduler, without growth in memory or state."""
from __future__ import annotations

import gc

import torch

import torchzero as tz


def _state_size(opt):
    n_tensors = nbytes = 0
    for st in opt.state.values():
        for v in st.values():
            if isinstance(v, torch.Tensor):
                n_tensors += 1
                nbytes += v.numel() * v.element_size()
    return n_tensors, nbytes


def test_ten_thousand_steps_without_growth():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = tz.Modular(
        model.parameters(),
        tz.m.ClipNorm(1.0, dim="global", target="grad"),
        tz.m.ClipNormByEMA(),
        tz.m.Adam(amsgrad=True),
        tz.m.ClipNormGrowth(parameterwise=False),
        tz.m.WeightDecay(1e-2),
        tz.m.LR(1e-2),
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=500)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    sizes = {}
    for step in range(10_000):
        opt.zero_grad()
        (model(x) - y).pow(2).mean().backward()
        opt.step()
        sched.step()
        if step in (100, 9_999):
            gc.collect()
            sizes[step] = (_state_size(opt), len(gc.get_objects()))
    (state_a, objs_a), (state_b, objs_b) = sizes[100], sizes[9_999]
    assert state_a == state_b, "the number or size of state tensors changed"
    assert objs_b - objs_a < 200, f"{objs_b - objs_a} more live Python objects after 9,900 steps"
    assert all(torch.isfinite(p).all() for p in model.parameters())
