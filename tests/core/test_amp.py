"""torch.amp.GradScaler: clipping after unscale_ sees true gradients; an inf step changes nothing."""
from __future__ import annotations

import copy

import torch

import torchzero as tz


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def _chain():
    return [tz.m.ClipNorm(0.5, dim="global"), tz.m.ClipNormByEMA(), tz.m.Adam(), tz.m.LR(1e-2)]


def _batch(step):
    g = torch.Generator().manual_seed(step)
    return torch.randn(16, 6, generator=g), torch.randn(16, 1, generator=g)


def test_clipping_after_unscale_sees_true_gradients():
    # the scale is a power of two, so scaling and unscaling are exact: the run must be bitwise
    # the run without a scaler
    m1, m2 = _model(), _model()
    o1, o2 = tz.Modular(m1.parameters(), *_chain()), tz.Modular(m2.parameters(), *_chain())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=3)
    for step in range(10):
        x, y = _batch(step)
        o1.zero_grad()
        scaler.scale((m1(x) - y).pow(2).mean()).backward()
        scaler.unscale_(o1)
        scaler.step(o1)
        scaler.update()
        o2.zero_grad()
        (m2(x) - y).pow(2).mean().backward()
        o2.step()
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(a, b)
    torch.testing.assert_close(o1.stats()["ClipNorm/norm"], o2.stats()["ClipNorm/norm"], rtol=0, atol=0)


def test_inf_step_leaves_params_and_state_unchanged():
    model = _model()
    opt = tz.Modular(model.parameters(), *_chain())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for step in range(3):
        x, y = _batch(step)
        opt.zero_grad()
        scaler.scale((model(x) - y).pow(2).mean()).backward()
        scaler.step(opt)
        scaler.update()
    params = copy.deepcopy(list(model.parameters()))
    state = copy.deepcopy(opt.state_dict())
    x, y = _batch(3)
    opt.zero_grad()
    scaler.scale((model(x) - y).pow(2).mean()).backward()
    next(model.parameters()).grad[0, 0] = float("inf")
    scale = scaler.get_scale()
    scaler.step(opt)
    scaler.update()
    assert scaler.get_scale() == scale / 2
    for a, b in zip(params, model.parameters()):
        assert torch.equal(a, b)
    after = opt.state_dict()["state"]
    for i in state["state"]:
        for k, v in state["state"][i].items():
            assert torch.equal(v, after[i][k]) if isinstance(v, torch.Tensor) else v == after[i][k]


def test_bfloat16_autocast_trains():
    model = _model()
    opt = tz.Modular(model.parameters(), *_chain())
    losses = []
    for step in range(30):
        x, y = _batch(step % 3)
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = (model(x).float() - y).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
