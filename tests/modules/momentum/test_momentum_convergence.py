"""Convergence smoke tests: each momentum module, in a sensible chain, on Rosenbrock and a small MLP.

Thresholds come from plain SGD (or Adam) run on the same problem in the same test with the same
learning rate and number of steps: momentum must beat plain SGD clearly on these ill-conditioned
problems (100x lower loss on Rosenbrock, 2x on the MLP), and the Adam variants (Debias folded into
undebiased Adam, cautious Adam) must end within 1.5x of Adam's loss.
"""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from training import mlp_data, rosenbrock, run_mlp, run_rosenbrock


ROSEN_LR = 1e-3
ROSENBROCK_CHAINS = {
    "HeavyBall": lambda: [tz.m.HeavyBall(0.9), tz.m.LR(ROSEN_LR)],
    "NAG": lambda: [tz.m.NAG(0.9), tz.m.LR(ROSEN_LR)],
    "EMA-sum": lambda: [tz.m.EMA(0.9, lerp=False), tz.m.LR(ROSEN_LR)],
    # an averaged EMA has a gain of 1 instead of 1 / (1 - momentum): the same step needs lr / (1 - momentum)
    "EMA-debiased": lambda: [tz.m.EMA(0.9, debiased=True), tz.m.LR(ROSEN_LR / (1 - 0.9))],
    "Cautious-SGDM": lambda: [tz.m.HeavyBall(0.9), tz.m.Cautious(), tz.m.LR(ROSEN_LR)],
    "Cautious-SGDM-normalize": lambda: [tz.m.HeavyBall(0.9), tz.m.Cautious(normalize=True), tz.m.LR(ROSEN_LR)],
}


@pytest.fixture(scope="module")
def rosenbrock_sgd_loss():
    return run_rosenbrock([tz.m.LR(ROSEN_LR)])


@pytest.mark.parametrize("name", list(ROSENBROCK_CHAINS))
def test_rosenbrock_momentum_beats_plain_sgd(name, rosenbrock_sgd_loss):
    start = rosenbrock(torch.tensor([-1.5, 2.0])).item()
    loss = run_rosenbrock(ROSENBROCK_CHAINS[name]())
    assert loss < start
    # plain SGD creeps along the curved valley; momentum with the same lr must get 100x further down
    assert loss < 0.01 * rosenbrock_sgd_loss, (loss, rosenbrock_sgd_loss)


MLP_LR = 0.05
MLP_SGD_CHAINS = {
    "HeavyBall": lambda: [tz.m.HeavyBall(0.9), tz.m.LR(MLP_LR)],
    "NAG": lambda: [tz.m.NAG(0.9), tz.m.LR(MLP_LR)],
    "EMA": lambda: [tz.m.EMA(0.9, debiased=True), tz.m.LR(MLP_LR / (1 - 0.9))],
    "Cautious-SGDM": lambda: [tz.m.HeavyBall(0.9), tz.m.Cautious(), tz.m.LR(MLP_LR)],
}


@pytest.fixture(scope="module")
def mlp_losses():
    X, y = mlp_data()
    return {
        "initial": torch.nn.functional.mse_loss(torch.zeros_like(y), y).item(),
        "sgd": run_mlp([tz.m.LR(MLP_LR)]),
        "adam": run_mlp([tz.m.Adam(), tz.m.LR(1e-2)]),
    }


@pytest.mark.parametrize("name", list(MLP_SGD_CHAINS))
def test_mlp_momentum_beats_plain_sgd(name, mlp_losses):
    loss = run_mlp(MLP_SGD_CHAINS[name]())
    assert loss < 0.5 * mlp_losses["sgd"], (loss, mlp_losses)


@pytest.mark.parametrize(
    "name, chain",
    [
        ("Adam-Debias", lambda: [tz.m.Adam(debiased=False), tz.m.Debias(0.9, 0.999), tz.m.LR(1e-2)]),
        ("C-Adam", lambda: [tz.m.Adam(), tz.m.Cautious(normalize=True), tz.m.LR(1e-2)]),
    ],
    ids=["Adam-Debias", "C-Adam"],
)
def test_mlp_adam_variants_do_as_well_as_adam(name, chain, mlp_losses):
    loss = run_mlp(chain())
    # within 1.5x of Adam's final loss, which itself is far below the initial loss
    assert mlp_losses["adam"] < 0.1 * mlp_losses["initial"]
    assert loss < 1.5 * mlp_losses["adam"], (loss, mlp_losses)
