"""Training without backpropagation: MeZO next to backprop, in loss and in memory.

Part 1 fits a small MLP (2 -> 32 -> 32 -> 1, tanh) to a smooth 2-D function, full batch, with
``tz.m.MeZO()`` followed by Adam, with ``tz.m.MeZO()`` followed by a plain step (the paper's
ZO-SGD), and with Adam on true gradients, and plots the loss against forward passes (a backward
pass costs about two more). Part 2 measures, each in a fresh process, the memory one training
step needs on top of the model and its data, for a wider MLP (6 layers of 1024, batch 1024):
inference alone, backpropagation with SGD, and MeZO. MeZO keeps no activations and no copy of
the parameters; it needs the estimate (the size of a gradient) and one layer's random direction.

    python examples/mezo.py                  # about half a minute
    python examples/mezo.py --steps 200 --out /tmp/mezo --no-memory
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

import torchzero as tz


def task(seed: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(512, 2, generator=g) * 4 - 2
    y = torch.sin(x[:, :1] * 1.5) * torch.cos(x[:, 1:]) + 0.2 * x[:, :1]
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    return model, x, y


CHAINS = {
    "MeZO + Adam": (lambda: [tz.m.MeZO(h=1e-3, seed=0), tz.m.Adam(), tz.m.LR(3e-3)], False),
    "MeZO + LR (ZO-SGD)": (lambda: [tz.m.MeZO(h=1e-3, seed=0), tz.m.LR(2e-3)], False),
    "Adam, backprop": (lambda: [tz.m.Adam(), tz.m.LR(3e-3)], True),
}


def train(name: str, steps: int, seed: int) -> tuple[list[int], list[float]]:
    """Loss after each step against forward passes so far."""
    make, backprop = CHAINS[name]
    model, x, y = task(seed)
    opt = tz.Modular(model.parameters(), *make())
    forwards, losses, count = [], [], 0

    def closure(backward: bool = True) -> torch.Tensor:
        nonlocal count
        count += 1
        loss = torch.nn.functional.mse_loss(model(x), y)
        if backward:
            opt.zero_grad()
            loss.backward()
        return loss

    budget = steps * 2  # the same forward passes for every chain
    while count < budget:
        opt.step(closure)
        with torch.no_grad():
            losses.append(float(torch.nn.functional.mse_loss(model(x), y)))
        forwards.append(count)
    return forwards, losses


CHILD = r"""
import ctypes, gc, json, sys
import torch, torchzero as tz

def rss(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(field)

torch.manual_seed(0)
torch.set_num_threads(1)
layers = []
for _ in range(6):
    layers += [torch.nn.Linear(1024, 1024), torch.nn.Tanh()]
model = torch.nn.Sequential(*layers, torch.nn.Linear(1024, 1))
x, y = torch.randn(1024, 1024), torch.randn(1024, 1)
method = sys.argv[1]
opt = {"backprop + SGD": lambda: torch.optim.SGD(model.parameters(), lr=1e-3),
       "MeZO": lambda: tz.Modular(model.parameters(), tz.m.MeZO(seed=0), tz.m.LR(1e-3))}.get(method, lambda: None)()

def closure(backward=True):
    loss = torch.nn.functional.mse_loss(model(x), y)
    if backward:
        opt.zero_grad(set_to_none=False)
        loss.backward()
    return loss

def step():
    if method == "inference":
        with torch.no_grad():
            model(x)
    elif method == "backprop + SGD":
        closure()
        opt.step()
    else:
        opt.step(closure)

with torch.no_grad():
    model(x)
gc.collect()
ctypes.CDLL("libc.so.6").malloc_trim(0)
steady = rss("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
for _ in range(3):
    step()
print(json.dumps({"step_mb": rss("VmHWM") - steady, "params_mb": sum(p.numel() for p in model.parameters()) * 4 / 2**20}))
"""


def memory() -> dict[str, dict[str, float]]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    out = {}
    for method in ("inference", "backprop + SGD", "MeZO"):
        proc = subprocess.run([sys.executable, "-c", CHILD, method], capture_output=True, text=True, check=True, timeout=600, env=env)
        out[method] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000, help="MeZO steps (the others get the same forward passes) (default: 3000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the model (default: 0)")
    parser.add_argument("--out", default="out/mezo", help="output folder for the picture (default: out/mezo)")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the memory measurement")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)

    curves = {name: train(name, args.steps, args.seed) for name in CHAINS}
    print(f"1) full-batch MSE after {2 * args.steps:,} forward passes:")
    for name, (_, losses) in curves.items():
        print(f"   {name:<20} {losses[-1]:.2e}")

    mem: dict[str, dict[str, float]] = {}
    if args.memory and os.path.exists("/proc/self/clear_refs"):
        mem = memory()
        print("\n2) memory of a training step on top of the model and its data (6 x 1024 MLP, batch 1024, float32):")
        for method, m in mem.items():
            print(f"   {method:<16} {m['step_mb']:6.0f} MB   (parameters: {m['params_mb']:.0f} MB)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
    for name, (forwards, losses) in curves.items():
        ax.semilogy(forwards, losses, label=name, lw=1.4)
    ax.set(xlabel="forward passes", ylabel="full-batch MSE", title="MeZO against backprop (2-32-32-1 MLP)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(out / "mezo.png", dpi=90)
    plt.close(fig)
    print(f"\nwrote {out / 'mezo.png'}")
    return {"curves": curves, "memory": mem}


if __name__ == "__main__":
    main()
