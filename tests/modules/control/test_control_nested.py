"""Nested control flow and ops keep every piece of state through a checkpoint into a new model."""
from __future__ import annotations

import copy
import io

import torch
from torch import nn

import torchzero as tz


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 1))


def _chain():
    return [
        tz.m.Split(
            ["*.bias", "1.*"],
            true=[
                tz.m.Adam(inner=tz.m.Add(tz.m.Mul(0.5))),
                tz.m.Alternate(tz.m.Identity(), tz.m.Graft([tz.m.Grad(), tz.m.Adam(beta1=0.5)]), steps=2),
            ],
            false=[
                tz.m.ClipNorm(1.0),
                tz.m.GradientAccumulation(2, stop=False),
                tz.m.Multistep(tz.m.Wrap(torch.optim.SGD, lr=1.0, momentum=0.9), 1),
            ],
        ),
        tz.m.Clip(max=tz.m.ClipValueByEMA(ema_init="update")),
        tz.m.LR(1e-2),
    ]


def _train(model, opt, start, stop):
    for s in range(start, stop):
        g = torch.Generator().manual_seed(s)
        x = torch.randn(16, 5, generator=g)
        opt.zero_grad()
        (model(x) - x.sum(1, keepdim=True).sin()).pow(2).mean().backward()
        opt.step()


def test_nested_chain_resumes_bitwise_from_a_checkpoint():
    model = _model()
    opt = tz.Modular(model.named_parameters(), *_chain())
    _train(model, opt, 0, 5)  # mid accumulation cycle and mid alternation
    sd = opt.state_dict()
    keys = {k for st in sd["state"].values() for k in st}
    expected = {
        "0.true.0.exp_avg",
        "0.true.1.1.magnitude.1.exp_avg",
        "0.false.1.accumulator",
        "0.false.2.module.opt_momentum_buffer",
        "1.max.ema",
    }
    assert expected <= keys, expected - keys
    assert sd["param_groups"][0]["torchzero"]["global_state"]["0.true.1"] == {"step": 5} and sd["param_groups"][0]["torchzero"]["global_state"]["0.false.1"] == {"step": 5}
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": sd}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)

    model2 = _model()
    model2.load_state_dict(ckpt["model"])
    opt2 = tz.Modular(model2.named_parameters(), *_chain())
    opt2.load_state_dict(ckpt["opt"])
    clone_model = copy.deepcopy(model)
    _train(model, opt, 5, 15)
    _train(model2, opt2, 5, 15)
    for p, q in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p, q)
    sd1, sd2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    for i in sd1:
        for k, v in sd1[i].items():
            assert torch.equal(v, sd2[i][k]) if isinstance(v, torch.Tensor) else v == sd2[i][k], k
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), clone_model.parameters()))
