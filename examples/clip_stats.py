"""Logging what clipping did on every step: ``opt.stats()`` to a CSV file, then a plot of the run.

``opt.stats()`` returns a flat dict of 0-dim tensors, keyed ``"<Module>/<stat>"``: what the
clipping modules of the chain measured and did on the last step (``"ZClip/norm"`` before
clipping, ``"ZClip/factor"``, ``"ZClip/zscore"``, ...). The values stay on the device and
cost no host sync until you read them, so logging them is one line in any training loop.

This script trains a small MLP on a regression problem into which it injects bad batches
(targets multiplied by ``--spike-scale`` every ``--spike-every`` steps), logs every statistic
of every step to ``clip_stats.csv`` and plots the run from that file to ``clip_stats.png``
(gradient norm before and after clipping, and the clip factor).

The CSV has one row per statistic (``step,stat,value``): the set of statistics can change
during a run (ZClip adds its z-score and threshold once its warm-up is over), which a file
with one column per statistic could not hold without knowing them all in advance.

    python examples/clip_stats.py                   # ZClip, 300 steps, a few seconds
    python examples/clip_stats.py --clip autoclip
    python examples/clip_stats.py --steps 30 --out /tmp/cs
"""
from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

import torchzero as tz

CLIPS = {
    "zclip": lambda: tz.m.ZClip(max_grad_norm=None, target="grad"),  # the paper's setting: no fixed cap
    "autoclip": lambda: tz.m.AutoClip(10, target="grad"),
    "clipnorm": lambda: tz.m.ClipNorm(1.0, dim="global", target="grad"),
    "skiponspike": lambda: tz.m.SkipOnSpike(),
}


def make_data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2048, 16, generator=g)
    w = torch.randn(16, 1, generator=g) / 4
    return x, torch.tanh(x @ w) + 0.05 * torch.randn(2048, 1, generator=g)


def train(args: argparse.Namespace, csv_path: Path) -> list[int]:
    """Trains and logs; returns the steps that had an injected bad batch."""
    x, y = make_data(args.seed)
    torch.manual_seed(args.seed)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    opt = tz.Modular(model.parameters(), CLIPS[args.clip](), tz.m.Adam(), tz.m.LR(args.lr))
    g = torch.Generator().manual_seed(args.seed + 1)
    injected = []
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "stat", "value"])
        for step in range(1, args.steps + 1):
            idx = torch.randint(0, len(x), (64,), generator=g)
            target = y[idx]
            if args.spike_every and step % args.spike_every == 0:
                target = target * args.spike_scale  # a bad batch
                injected.append(step)
            loss = nn.functional.mse_loss(model(x[idx]), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            # the one line that logs everything the clipping module measured this step:
            writer.writerows([(step, k, v.item()) for k, v in {"loss": loss.detach(), **opt.stats()}.items()])
    return injected


def read_csv(path: Path) -> dict[str, dict[int, float]]:
    """``{stat: {step: value}}`` from the long-format CSV."""
    series: dict[str, dict[int, float]] = defaultdict(dict)
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            series[row["stat"]][int(row["step"])] = float(row["value"])
    return series


def plot(series: dict[str, dict[int, float]], injected: list[int], clip: str, path: Path) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prefix = {"zclip": "ZClip", "autoclip": "AutoClip", "clipnorm": "ClipNorm", "skiponspike": "SkipOnSpike"}[clip]
    steps = sorted(series["loss"])
    norm = series[f"{prefix}/norm"]
    if f"{prefix}/factor" in series:
        factor = series[f"{prefix}/factor"]
    else:  # a step guard: the step either happens (factor 1) or is skipped (0)
        factor = {s: 1.0 - v for s, v in series[f"{prefix}/skipped"].items()}
    after = {s: norm[s] * factor[s] for s in norm}

    fig, axes = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True, layout="constrained")
    axes[0].plot(steps, [series["loss"][s] for s in steps], lw=0.8)
    axes[0].set(yscale="log", ylabel="loss", title=f"{prefix} -> Adam -> LR: logged from opt.stats() every step")
    axes[1].plot(sorted(norm), [norm[s] for s in sorted(norm)], color="0.55", lw=0.9, label=f"{prefix}/norm (before)")
    axes[1].plot(sorted(after), [after[s] for s in sorted(after)], color="C0", lw=0.9, label="norm x factor (after)")
    if f"{prefix}/mean" in series:  # ZClip: a spike is a norm above mean + z_thresh * std (z_thresh = 2.5)
        mean, std = series[f"{prefix}/mean"], series[f"{prefix}/std"]
        xs = sorted(mean)
        axes[1].plot(xs, [mean[s] + 2.5 * std[s] for s in xs], color="C2", lw=0.8, ls="--", label="mean + 2.5 std (spike level)")
    elif f"{prefix}/threshold" in series:  # AutoClip: the percentile of the norm history
        th = series[f"{prefix}/threshold"]
        axes[1].plot(sorted(th), [th[s] for s in sorted(th)], color="C2", lw=0.8, ls="--", label=f"{prefix}/threshold")
    axes[1].set(yscale="log", ylabel="global grad norm")
    axes[1].legend(fontsize=8)
    axes[2].plot(sorted(factor), [factor[s] for s in sorted(factor)], color="C1", lw=0.9)
    axes[2].set(ylabel="clip factor" if f"{prefix}/factor" in series else "1 - skipped", xlabel="step", ylim=(-0.05, 1.05))
    for a in axes:
        for s in injected:
            a.axvline(s, color="r", lw=0.6, alpha=0.4)
        a.grid(alpha=0.3)
    axes[0].plot([], [], color="r", alpha=0.4, label="injected bad batch")
    axes[0].legend(fontsize=8)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    acted = {s for s in factor if factor[s] < 1}
    return {"caught": sorted(acted & set(injected)), "other": sorted(acted - set(injected))}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps (default: 300)")
    parser.add_argument("--clip", choices=list(CLIPS), default="zclip", help="the clipping module (default: zclip)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (default: 1e-3)")
    parser.add_argument("--spike-every", type=int, default=50, help="inject a bad batch every N steps, 0: never (default: 50)")
    parser.add_argument("--spike-scale", type=float, default=30.0, help="bad batches have their targets multiplied by this (default: 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the model and the batches (default: 0)")
    parser.add_argument("--out", default="out/clip_stats", help="output folder (default: out/clip_stats, which .gitignore ignores)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    if args.spike_every < 0:
        parser.error(f"--spike-every must be >= 0, got {args.spike_every}")
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out / "clip_stats.csv", out / "clip_stats.png"

    injected = train(args, csv_path)
    series = read_csv(csv_path)
    print(f"logged {sum(len(v) for v in series.values())} values of {len(series)} statistics over {args.steps} steps to {csv_path}:")
    print(f"  {'stat':<16} {'steps':>5} {'min':>10} {'median':>10} {'max':>10}")
    for stat, values in series.items():
        v = sorted(values.values())
        print(f"  {stat:<16} {len(v):>5} {v[0]:>10.4g} {v[len(v) // 2]:>10.4g} {v[-1]:>10.4g}")
    result = plot(series, injected, args.clip, png_path)
    print(f"injected bad batches at steps {injected}")
    print(f"the clipping module acted on {len(result['caught'])} of them {result['caught']} "
          f"and on {len(result['other'])} other steps")
    print(f"wrote {png_path}")
    return result


if __name__ == "__main__":
    main()
