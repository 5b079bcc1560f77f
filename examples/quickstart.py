"""Quickstart: train a small MLP with a torchzero chain.

The optimizer is a chain of three modules: global gradient-norm clipping (as
``torch.nn.utils.clip_grad_norm_``), Adam, and the learning rate. Fixed synthetic data,
seeded, so every run prints the same losses.

    python examples/quickstart.py            # 200 steps, a few seconds on a CPU
    python examples/quickstart.py --steps 20
"""
from __future__ import annotations

import argparse

import torch
from torch import nn

import torchzero as tz


def make_data(n: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth 2-D -> 1-D regression problem: y = sin(3 x0) * cos(2 x1) + noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g) * 2 - 1
    y = torch.sin(3 * x[:, :1]) * torch.cos(2 * x[:, 1:]) + 0.01 * torch.randn(n, 1, generator=g)
    return x, y


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="number of optimizer steps (default: 200)")
    parser.add_argument("--print-every", type=int, default=None, help="print the loss every N steps (default: steps // 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the model (default: 0)")
    parser.add_argument("--out", default=None, help="if given, a folder to write the loss curve to (loss.png; needs matplotlib)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    every = args.print_every or max(1, args.steps // 10)

    torch.manual_seed(args.seed)
    x, y = make_data(seed=args.seed)
    model = nn.Sequential(nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))

    opt = tz.Modular(
        model.parameters(),
        tz.m.ClipNorm(1.0, dim="global"),  # clip the global gradient norm to 1
        tz.m.Adam(),                       # Adam's direction
        tz.m.LR(1e-2),                     # times the learning rate
    )

    loss = torch.tensor(float("nan"))
    losses = []
    for step in range(1, args.steps + 1):
        loss = nn.functional.mse_loss(model(x), y)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 1 or step % every == 0 or step == args.steps:
            print(f"step {step:4d}  loss {loss.item():.6f}", flush=True)
    if args.out:
        _plot(losses, args.out)
    return loss.item()


def _plot(losses: list[float], out: str) -> None:
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogy(range(1, len(losses) + 1), losses)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (MSE)")
    ax.set_title("quickstart: ClipNorm(1, global), Adam, LR(1e-2)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(out, "loss.png")
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
