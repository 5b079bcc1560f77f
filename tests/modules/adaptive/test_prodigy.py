"""Prodigy against a transcription of the paper's Algorithm 4 with the authors' reference details
(tests/reference/prodigy.py) over 300 steps with every option; d grows from d0; errors."""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from conftest import small_mlp as _model
from conftest import train_small_mlp as _train
from reference.prodigy import ProdigyReference

F64 = torch.float64

OPTIONS = {
    "defaults": {},
    "decay-bias_correction": dict(weight_decay=0.01, use_bias_correction=True),
    "safeguard-growth-coef-beta3": dict(safeguard_warmup=True, growth_rate=1.02, d_coef=0.5, beta3=0.99, lr=0.5),
    "betas-eps-d0": dict(betas=(0.8, 0.99), eps=1e-6, d0=1e-4),
}


@pytest.mark.parametrize("options", list(OPTIONS.values()), ids=list(OPTIONS))
def test_300_steps_match_the_paper(options):
    ref, ours = _model(), _model()
    opt_ref = ProdigyReference(ref.parameters(), **options)
    opt = tz.Modular(ours.parameters(), tz.m.Prodigy(**options))
    _train(ref, opt_ref, 300)
    _train(ours, opt, 300)
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert abs(opt.chain.modules[0].global_state["d"] - opt_ref.d) <= 1e-10 * opt_ref.d


def test_d_grows_from_d0_and_the_loss_falls():
    model = _model()
    opt = tz.Modular(model.parameters(), tz.m.Prodigy())
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 5, generator=g, dtype=F64)
    losses = []
    for _ in range(200):
        opt.zero_grad()
        loss = (model(x).sin() ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert opt.chain.modules[0].global_state["d"] > 100 * 1e-6
    assert losses[-1] < 0.5 * losses[0]


def test_settings_must_be_shared_by_the_groups():
    model = _model()
    ps = list(model.parameters())
    opt = tz.Modular([{"params": ps[:2], "lr": 0.5}, {"params": ps[2:]}], tz.m.Prodigy())
    with pytest.raises(ValueError, match="Prodigy: lr differs between param groups"):
        _train(model, opt, 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"lr": 0.0}, "Prodigy.*lr"), ({"d0": 0.0}, "Prodigy.*d0"), ({"growth_rate": 0.5}, "Prodigy.*growth_rate"), ({"beta3": 1.0}, "Prodigy.*beta3"), ({"betas": (0.9,)}, "Prodigy: betas must be a pair")],
    ids=["lr=0", "d0=0", "growth<1", "beta3=1", "one-beta"],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tz.m.Prodigy(**kwargs)
