"""Modern optimizers on the showdown's small transformer: AdamW, Muon (with AdamW for the rest),
SOAP and Schedule-Free AdamW, each a torchzero chain, on the same data from the same weights.

Trains the char-level transformer of ``examples/showdown.py`` (next-byte prediction on the
standard library's source) with each chain, prints the held-out loss at the end and writes a plot
of the training loss (a running mean) against steps. Schedule-Free is evaluated at its average
(``opt.eval()``), the point it is meant to be used at, and trained at its own (``opt.train()``).

    python examples/modern_optimizers.py                 # about two minutes
    python examples/modern_optimizers.py --steps 100 --out /tmp/modern
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from showdown import lm_task  # noqa: E402  (the showdown's model and data)

import torchzero as tz  # noqa: E402

WD = 0.01


def is_hidden_matrix(p: torch.Tensor, model: nn.Module) -> bool:
    """Muon's parameters: the transformer blocks' weight matrices (not the embeddings, the
    positions, the output layer, biases or norms)."""
    return p.ndim == 2 and any(p is q for q in model.blocks.parameters())


CHAINS: dict[str, Callable[[nn.Module], list]] = {
    "AdamW": lambda model: [tz.m.Adam(0.9, 0.95), tz.m.WeightDecay(WD), tz.m.LR(3e-3)],
    "Muon + AdamW": lambda model: [
        tz.m.Split(
            lambda p: is_hidden_matrix(p, model),
            [tz.m.Muon(), tz.m.WeightDecay(WD), tz.m.LR(0.02)],
            [tz.m.Adam(0.9, 0.95), tz.m.WeightDecay(WD), tz.m.LR(3e-3)],
        )
    ],
    "SOAP": lambda model: [tz.m.SOAP(0.95, 0.95, precond_freq=10), tz.m.WeightDecay(WD), tz.m.LR(3e-3)],
    "Schedule-Free AdamW": lambda model: [
        tz.m.RMSprop(0.999, 1e-8, debiased=True), tz.m.WeightDecay(WD), tz.m.ScheduleFree(lr=3e-3, momentum=0.9, warmup_steps=20),
    ],
}


def train(name: str, steps: int, seed: int) -> tuple[list[float], float]:
    task = lm_task()
    model = task.model(seed)
    opt = tz.Modular(model.parameters(), *CHAINS[name](model))
    batches = task.batches(seed)
    losses = []
    for _ in range(steps):
        batch = batches()
        opt.zero_grad()
        loss = task.loss_fn(model, batch)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    opt.eval()  # Schedule-Free: the average; the other chains have no modes
    held_out = task.batches(seed + 1000)
    with torch.no_grad():
        val = sum(float(task.loss_fn(model, held_out())) for _ in range(20)) / 20
    return losses, val


def smooth(xs: list[float], k: int = 20) -> list[float]:
    out, acc = [], 0.0
    for i, x in enumerate(xs):
        acc += x
        if i >= k:
            acc -= xs[i - k]
        out.append(acc / min(i + 1, k))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=400)  # about two minutes on a 2-core CPU
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="out/modern_optimizers")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    results = {}
    print(f"held-out loss after {args.steps} steps (cross-entropy per byte, 20 batches):")
    for name in CHAINS:
        results[name] = train(name, args.steps, args.seed)
        print(f"   {name:<22} {results[name][1]:.4f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, (losses, _) in results.items():
        ax.plot(smooth(losses), label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (20-step mean)")
    ax.set_title("char-level transformer on the stdlib's source")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "modern_optimizers.png", dpi=120)
    print(f"\nwrote {out / 'modern_optimizers.png'}")


if __name__ == "__main__":
    main()
