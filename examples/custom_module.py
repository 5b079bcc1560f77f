"""Writing your own module: annealed gradient noise as a ``tz.Transform``.

A module is a class with per-parameter settings (a dict of defaults), per-parameter state, and
one method, ``apply_tensors``, which returns the transformed tensors. This one adds Gaussian noise whose variance decays with the
step, as in Neelakantan et al. 2015, "Adding gradient noise improves learning for very deep
networks" (https://arxiv.org/abs/1511.06807):

    u <- u + N(0, sigma_t^2),    sigma_t^2 = eta / (1 + t)^gamma

The script checks the module on known input (the noise has the standard deviation the formula
says), turns it off for the biases with per-parameter settings, and trains a deep, narrow tanh
MLP with and without it. It writes ``custom_module.png`` (loss curves and sigma) into ``--out``.

    python examples/custom_module.py                 # 400 steps, a few seconds
    python examples/custom_module.py --steps 20 --out /tmp/cm
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

import torchzero as tz


class GradientNoise(tz.Transform):
    r"""Adds annealed Gaussian noise: $u \leftarrow u + \mathcal N(0, \sigma_t^2)$, $\sigma_t^2 = \eta / (1+t)^\gamma$.

    Args:
        eta: $\eta$, the noise variance at the first step, ``>= 0``; ``0`` turns the noise off
            for a parameter (default: ``0.01``).
        gamma: $\gamma$, how fast the variance decays, ``>= 0`` (default: ``0.55``, the paper's).
        seed: seed of the module's random generator, so runs are reproducible (default: ``0``).
        target: ``"update"`` (default) or ``"grad"``.
    """

    STATE_KEYS = {"step": "step"}  # a step counter per parameter, created and advanced for us

    def __init__(self, eta: float = 0.01, gamma: float = 0.55, seed: int = 0, target: str = "update"):
        super().__init__({"eta": eta, "gamma": gamma}, target=target)  # per-parameter settings
        self.generator = torch.Generator().manual_seed(seed)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        # called with the defaults, param-group keys and set_param_groups() overrides
        for key in ("eta", "gamma"):
            if key in s:
                v = s[key]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                    raise ValueError(f"GradientNoise: {key} must be a finite number >= 0, got {v!r}")

    def apply_tensors(self, tensors, states, settings, ctx):  # type: ignore[no-untyped-def]
        sigmas = []
        for t, state, s in zip(tensors, states, settings):  # s: this parameter's settings
            sigma = math.sqrt(s["eta"] / float(state["step"]) ** s["gamma"])
            if sigma > 0:
                noise = torch.randn(t.shape, generator=self.generator, dtype=t.dtype).to(t.device)
                t.add_(noise, alpha=sigma)
            sigmas.append(sigma)
        self.record_stats(sigma=torch.tensor(max(sigmas)))  # shows up in opt.stats() as "GradientNoise/sigma"
        return tensors


# ------------------------------------------------------------------------------------------ demo
def check_on_known_input() -> None:
    """The noise added to a zero update has standard deviation sigma_t, step after step."""
    noise = GradientNoise(eta=0.01, gamma=0.55)
    w = torch.zeros(100_000)
    print("1) the module on a zero update of 100,000 elements (tz.apply_transform):")
    for t in range(4):
        out = tz.apply_transform(noise, [torch.zeros_like(w)], params=[w])[0]  # same params -> same state
        expected = math.sqrt(0.01 / (1 + t) ** 0.55)
        print(f"   step {t + 1}: std of the output {out.std().item():.5f}   sigma_t by the formula {expected:.5f}")


def make_data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(512, 4, generator=g) * 2 - 1
    y = torch.sin(2 * x[:, :1]) * torch.cos(3 * x[:, 1:2]) + 0.5 * x[:, 2:3] * x[:, 3:]
    return x, y


def deep_mlp(seed: int, depth: int = 8, width: int = 32) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(4, width), nn.Tanh()]
    for _ in range(depth - 2):
        layers += [nn.Linear(width, width), nn.Tanh()]
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def train(steps: int, seed: int, eta: float | None, lr: float) -> tuple[list[float], list[float]]:
    """Trains the deep MLP; ``eta=None``: plain Adam, else Adam -> GradientNoise(eta) -> LR.

    The noise goes on Adam's update, whose elements are of order 1 whatever the scale of the
    gradient, so ``eta`` means the same for every layer (on the raw gradients, whose scale
    differs by orders of magnitude between layers, one ``eta`` would drown some and not others).
    """
    x, y = make_data(seed)
    model = deep_mlp(seed)
    modules: list[Any] = [tz.m.Adam(), tz.m.LR(lr)]
    if eta is not None:
        biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
        # per-parameter settings: no noise on the biases (an override for this module only)
        noise = GradientNoise(eta=eta, seed=seed).set_param_groups([{"params": biases, "eta": 0.0}])
        modules.insert(1, noise)  # Adam -> GradientNoise -> LR
    opt = tz.Modular(model.parameters(), *modules)
    losses, sigmas = [], []
    for _ in range(steps):
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        stats = opt.stats()
        sigmas.append(stats["GradientNoise/sigma"].item() if "GradientNoise/sigma" in stats else 0.0)
    return losses, sigmas


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400, help="training steps per run (default: 400)")
    parser.add_argument("--eta", type=float, default=0.01, help="noise variance at the first step (default: 0.01)")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam's learning rate (default: 3e-3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the model and the noise (default: 0)")
    parser.add_argument("--out", default="out/custom_module", help="output folder for the picture (default: out/custom_module, which .gitignore ignores)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    torch.set_num_threads(1)

    check_on_known_input()

    print("\n2) settings are validated where they are given:")
    try:
        GradientNoise(eta=-1.0)
    except ValueError as e:
        print(f"   GradientNoise(eta=-1.0) -> ValueError: {e}")

    print(f"\n3) an 8-layer tanh MLP, Adam lr={args.lr:g}, {args.steps} full-batch steps; noise on Adam's update of the weights (not the biases):")
    plain, _ = train(args.steps, args.seed, None, args.lr)
    noisy, sigmas = train(args.steps, args.seed, args.eta, args.lr)
    every = max(1, args.steps // 8)
    print(f"   {'step':>5} {'sigma_t':>8} {'loss (Adam)':>12} {'loss (Adam -> noise)':>21}")
    for i in list(range(0, args.steps, every)) + ([args.steps - 1] if (args.steps - 1) % every else []):
        print(f"   {i + 1:>5} {sigmas[i]:>8.4f} {plain[i]:>12.5f} {noisy[i]:>21.5f}")
    k = max(1, args.steps // 10)
    final = {"adam": sum(plain[-k:]) / k, "noise": sum(noisy[-k:]) / k}
    print(f"   mean loss of the last {k} steps: Adam {final['adam']:.5f}, Adam -> GradientNoise {final['noise']:.5f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    steps = range(1, args.steps + 1)
    a.plot(steps, plain, label="Adam")
    a.plot(steps, noisy, label=f"Adam -> GradientNoise(eta={args.eta:g})")
    a.set_yscale("log")
    a.set(xlabel="step", ylabel="training loss (MSE)", title="8-layer tanh MLP")
    a.legend()
    a.grid(alpha=0.3)
    b.plot(steps, sigmas, color="C1")
    b.set(xlabel="step", ylabel="sigma_t", title='opt.stats()["GradientNoise/sigma"]')
    b.grid(alpha=0.3)
    fig.savefig(out / "custom_module.png", dpi=90)
    plt.close(fig)
    print(f"\nwrote {out / 'custom_module.png'}")
    return final


if __name__ == "__main__":
    main()
