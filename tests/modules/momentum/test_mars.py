"""MARSCorrection with Adam against a transcription of MARS-AdamW (tests/reference/mars.py), per
tensor and global clipping, over 500 steps; the correction's formula; errors."""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from conftest import small_mlp as _model
from conftest import train_small_mlp
from reference.mars import MARSAdamWReference

F64 = torch.float64


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int) -> None:
    train_small_mlp(model, opt, steps, scale=10.0)  # gradients large enough to be clipped


@pytest.mark.parametrize("tensorwise", [True, False], ids=["per-tensor", "global"])
@pytest.mark.parametrize("wd", [0.0, 0.1], ids=["no-decay", "decay"])
def test_500_steps_match_mars_adamw(tensorwise, wd):
    ref, ours = _model(), _model()
    _train(ref, MARSAdamWReference(ref.parameters(), lr=3e-3, weight_decay=wd, gamma=0.025, per_tensor=tensorwise), 500)
    chain = [tz.m.MARSCorrection(0.95, 0.025, 1.0, tensorwise), tz.m.Adam(0.95, 0.99)]
    chain += [tz.m.WeightDecay(wd)] if wd else []
    _train(ours, tz.Modular(ours.parameters(), *chain, tz.m.LR(3e-3)), 500)
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_the_correction_formula_and_clipping():
    g1, g2 = torch.tensor([0.1, -0.2], dtype=F64), torch.tensor([0.3, 0.1], dtype=F64)
    mod = tz.m.MARSCorrection(0.9, 0.5, max_norm=None)
    w = torch.zeros(2, dtype=F64, requires_grad=True)
    opt = tz.Modular([w], mod, tz.m.LR(1.0))
    w.grad = g1.clone()
    opt.step()
    torch.testing.assert_close(-w.detach(), g1 + 0.5 * 9 * g1)  # g_0 = 0
    before = w.detach().clone()
    w.grad = g2.clone()
    opt.step()
    torch.testing.assert_close(before - w.detach(), g2 + 0.5 * 9 * (g2 - g1))
    w2 = torch.zeros(2, dtype=F64, requires_grad=True)
    opt2 = tz.Modular([w2], tz.m.MARSCorrection(0.9, 0.5, max_norm=0.1), tz.m.LR(1.0))
    w2.grad = g1.clone()
    opt2.step()
    torch.testing.assert_close(w2.detach().norm(), torch.tensor(0.1, dtype=F64))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"beta": 1.0}, "MARSCorrection.*beta"), ({"scaling": -1.0}, "MARSCorrection.*scaling"), ({"max_norm": 0.0}, "MARSCorrection.*max_norm"), ({"tensorwise": 1}, "MARSCorrection.*tensorwise")],
    ids=["beta=1", "scaling<0", "max_norm=0", "tensorwise-int"],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tz.m.MARSCorrection(**kwargs)
