"""AdEMAMix against a transcription of the paper's Algorithm 1 with the authors' warm-ups
(tests/reference/ademamix.py) over 500 steps, with every option; errors."""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from conftest import small_mlp as _model
from conftest import train_small_mlp as _train
from reference.ademamix import AdEMAMixReference

F64 = torch.float64

OPTIONS = {
    "defaults": {},
    "warmups-alpha5": {"alpha": 5.0, "beta3_warmup": 300, "alpha_warmup": 200},
    "betas-eps": {"betas": (0.8, 0.99, 0.999), "eps": 1e-6},
    "beta1=0": {"betas": (0.0, 0.999, 0.99), "alpha": 1.0},
}


@pytest.mark.parametrize("wd", [0.0, 0.1], ids=["no-decay", "decay"])
@pytest.mark.parametrize("options", list(OPTIONS.values()), ids=list(OPTIONS))
def test_500_steps_match_the_paper(options, wd):
    ref, ours = _model(), _model()
    _train(ref, AdEMAMixReference(ref.parameters(), lr=1e-3, weight_decay=wd, **options), 500)
    chain = [tz.m.AdEMAMix(**options)] + ([tz.m.WeightDecay(wd)] if wd else []) + [tz.m.LR(1e-3)]
    _train(ours, tz.Modular(ours.parameters(), *chain), 500)
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_beta3_warmup_starts_at_beta1_and_ends_at_beta3():
    from torchzero.functional.ademamix import ademamix_beta3

    assert abs(ademamix_beta3(0, 0.9999, 0.9, 100) - 0.9) < 1e-6
    assert ademamix_beta3(100, 0.9999, 0.9, 100) == 0.9999
    values = [ademamix_beta3(t, 0.9999, 0.9, 100) for t in range(101)]
    assert all(a <= b for a, b in zip(values, values[1:]))


def test_no_fast_ema_is_stored_with_beta1_zero():
    model = _model()
    opt = tz.Modular(model.parameters(), tz.m.AdEMAMix((0.0, 0.999, 0.99)), tz.m.LR(1e-3))
    _train(model, opt, 2)
    keys = {k.split(".")[-1] for k in opt.state[next(model.parameters())]}
    assert "exp_avg_fast" not in keys and {"exp_avg_slow", "exp_avg_sq"} <= keys


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"betas": (0.9, 0.999)}, "AdEMAMix: betas must be three numbers"),
        ({"betas": (0.9, 0.999, 1.0)}, r"AdEMAMix.*betas\[2\]"),
        ({"alpha": -1.0}, "AdEMAMix.*alpha"),
        ({"beta3_warmup": 0}, "AdEMAMix.*beta3_warmup"),
        ({"alpha_warmup": 2.5}, "AdEMAMix.*alpha_warmup"),
        ({"eps": -1e-8}, "AdEMAMix.*eps"),
    ],
    ids=["two-betas", "beta3=1", "alpha<0", "beta3_warmup=0", "alpha_warmup-float", "eps<0"],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tz.m.AdEMAMix(**kwargs)
