"""The classical methods' state (curvature history, dense matrices, CG directions, line-search
memory, Newton-CG's forcing term and warm start, the trust radius) and the modern optimizers'
(Muon's momentum, SOAP's factors and bases, Schedule-Free's average and counters, AdEMAMix's
slow EMA, SAM's chain) resumes bitwise in a new process from a saved state dict."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[3]

CHAINS = {
    "LBFGS-StrongWolfe": "[tz.m.LBFGS(history_size=4), tz.m.StrongWolfe(a_init='quadratic')]",
    "LSR1-StrongWolfe": "[tz.m.LSR1(history_size=4), tz.m.StrongWolfe(plus_minus=True)]",
    "BFGS-damped": "[tz.m.BFGS(damping=True), tz.m.StrongWolfe()]",
    "HagerZhang-StrongWolfe": "[tz.m.HagerZhang(), tz.m.StrongWolfe(c2=0.1, a_init='first-order')]",
    "BarzilaiBorwein-AdaptiveBacktracking": "[tz.m.BarzilaiBorwein(), tz.m.AdaptiveBacktracking()]",
    "Newton-Backtracking": "[tz.m.Newton(damping=1e-3), tz.m.Backtracking()]",
    "NewtonCG-StrongWolfe-warm": "[tz.m.NewtonCG(warm_start=True), tz.m.StrongWolfe()]",
    "NewtonCGSteihaug": "[tz.m.NewtonCGSteihaug(init=0.05)]",
    "Dogleg-BFGS": "[tz.m.Dogleg(tz.m.BFGS(), init=0.05)]",
    "CubicRegularization": "[tz.m.CubicRegularization(init=0.2)]",
    "SophiaH-LR": "[tz.m.SophiaH(update_freq=2), tz.m.LR(0.01)]",
    "SPSA-Adam": "[tz.m.SPSA(n_samples=2), tz.m.Adam(), tz.m.LR(0.01)]",
    "MeZO-LR": "[tz.m.MeZO(distribution='gaussian'), tz.m.LR(0.01)]",
    "ForwardGradient-LR": "[tz.m.ForwardGradient(seed=3), tz.m.LR(0.01)]",
    "LevenbergMarquardt-GaussNewton": "[tz.m.LevenbergMarquardt(tz.m.GaussNewton(), init=0.05)]",
    "Muon-WeightDecay-LR": "[tz.m.Muon(), tz.m.WeightDecay(0.01), tz.m.LR(0.02)]",
    "SOAP-LR": "[tz.m.SOAP(precond_freq=2), tz.m.LR(0.01)]",
    "PSGDKron-LR": "[tz.m.PSGDKron(update_probability=0.5), tz.m.LR(0.01)]",
    "Shampoo-Graft": "[tz.m.Shampoo(update_freq=3, block_size=4), tz.m.Graft([tz.m.Grad(), tz.m.Adam()]), tz.m.LR(0.01)]",
    "ScheduleFree-AdamW": "[tz.m.RMSprop(0.999, debiased=True), tz.m.WeightDecay(1e-3), tz.m.ScheduleFree(0.01, warmup_steps=3)]",
    "AdEMAMix-LR": "[tz.m.AdEMAMix(beta3_warmup=5, alpha_warmup=5), tz.m.LR(0.01)]",
    "Prodigy": "[tz.m.Prodigy(weight_decay=0.01)]",
    "MARS-Adam": "[tz.m.MARSCorrection(0.9), tz.m.Adam(), tz.m.LR(0.01)]",
    "SAM-HeavyBall": "[tz.m.SAM(0.05), tz.m.HeavyBall(0.9), tz.m.LR(0.05)]",
}

SCRIPT = """
import sys, torch, torchzero as tz
chain, mode, path, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
x = torch.randn(32, 3, dtype=torch.float64)
y = torch.sin(x.sum(1, keepdim=True))
opt = tz.Modular(model.parameters(), *eval(chain))
def closure(backward=True):
    loss = torch.nn.functional.mse_loss(model(x), y)
    if backward:
        opt.zero_grad()
        loss.backward()
    return loss
if mode == "save":
    for _ in range(steps):
        opt.step(closure)
    torch.save({"opt": opt.state_dict(), "model": model.state_dict()}, path)
else:
    saved = torch.load(path, weights_only=True)
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["opt"])
    for _ in range(steps):
        opt.step(closure)
    torch.save([p.detach() for p in model.parameters()], path + ".params")
"""


def _run(*args: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", list(CHAINS))
def test_resume_in_a_new_process_is_bitwise(tmp_path, name):
    chain = CHAINS[name]
    first, resumed = tmp_path / "first.pt", tmp_path / "resumed.pt"
    _run(chain, "save", str(first), "4")  # 4 steps, saved
    _run(chain, "load", str(first), "5")  # a new process: load, 5 more steps
    _run(chain, "save", str(resumed), "9")  # one process: 9 steps
    got = torch.load(str(first) + ".params", weights_only=True)
    expected = torch.load(resumed, weights_only=True)["model"]
    for g, e in zip(got, expected.values()):
        assert torch.equal(g, e), name
