"""A learning-rate scheduler and mixed precision (autocast + GradScaler) with a clipping chain.

``tz.Modular`` is a ``torch.optim.Optimizer``: a chain with an ``LR`` module puts an ``"lr"``
key in every param group, so any ``torch.optim.lr_scheduler`` drives it, and
``torch.amp.GradScaler`` steps it like any optimizer. The clipping modules run inside
``opt.step()``, after the scaler has unscaled the gradients, so the norm they clip (and report
in ``opt.stats()``) is the true one, not the scaled one. ``scaler.unscale_(opt)`` before
``scaler.step(opt)`` is optional here (``scaler.step`` unscales if you did not); with
``torch.nn.utils.clip_grad_norm_`` you would need it.

On a CPU the default is bfloat16 autocast, which needs no loss scaling: the scaler is created
disabled and the same four lines run unchanged. ``--dtype float16`` (the default on CUDA) turns
it on. Writes ``lr_schedulers_and_amp.png`` (lr, loss, gradient norm and clip factor) into ``--out``.

    python examples/lr_schedulers_and_amp.py                     # 300 steps, OneCycleLR, bfloat16
    python examples/lr_schedulers_and_amp.py --dtype float16 --scheduler cosine
    python examples/lr_schedulers_and_amp.py --steps 10 --out /tmp/amp
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch import nn

import torchzero as tz

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def make_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three interleaved spirals in 2-D, plus 6 noise features: a 3-class problem."""
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 3, (n,), generator=g)
    r = torch.rand(n, generator=g)
    angle = 4 * r + label * (2 * math.pi / 3) + 0.2 * torch.randn(n, generator=g)
    xy = torch.stack([r * torch.cos(angle), r * torch.sin(angle)], 1)
    return torch.cat([xy, 0.1 * torch.randn(n, 6, generator=g)], 1), label


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps (default: 300)")
    parser.add_argument("--scheduler", choices=["onecycle", "cosine"], default="onecycle", help="OneCycleLR or CosineAnnealingLR (default: onecycle)")
    parser.add_argument("--max-lr", type=float, default=1e-2, help="peak learning rate (default: 1e-2)")
    parser.add_argument("--max-norm", type=float, default=0.2, help="global gradient-norm clip; about the median norm here, so it acts on part of the steps (default: 0.2)")
    parser.add_argument("--dtype", choices=["auto", *DTYPES], default="auto", help="autocast dtype; auto: float16 on CUDA, bfloat16 on CPU")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="device (default: cuda if available, else cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the model (default: 0)")
    parser.add_argument("--out", default="out/lr_schedulers_and_amp", help="output folder for the picture (default: out/lr_schedulers_and_amp, which .gitignore ignores)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    torch.set_num_threads(1)
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype] if args.dtype != "auto" else (torch.float16 if device.type == "cuda" else torch.bfloat16)

    x, y = (t.to(device) for t in make_data(4096, args.seed))
    x_test, y_test = (t.to(device) for t in make_data(2048, args.seed + 1))
    torch.manual_seed(args.seed)
    model = nn.Sequential(nn.Linear(8, 128), nn.GELU(), nn.Linear(128, 128), nn.GELU(), nn.Linear(128, 3)).to(device)

    opt = tz.Modular(
        model.parameters(),
        tz.m.ClipNorm(args.max_norm, dim="global"),  # sees the unscaled gradient (inside opt.step)
        tz.m.Adam(),
        tz.m.LR(args.max_lr),  # the scheduler overwrites param_groups[i]["lr"]
    )
    if args.scheduler == "onecycle":
        # also cycles Adam's beta1, through the "betas" the chain publishes in its param groups
        sched: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=args.max_lr, total_steps=args.steps
        )
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)  # loss scaling is for float16 only

    print(f"device {device.type}, autocast {str(dtype).removeprefix('torch.')}, GradScaler {'on' if scaler.is_enabled() else 'off'}, "
          f"{type(sched).__name__}, ClipNorm({args.max_norm:g}, global) -> Adam -> LR")
    print(f"{'step':>5} {'lr':>9} {'loss':>8} {'grad norm':>10} {'clip factor':>11} {'loss scale':>10}")
    g = torch.Generator(device="cpu").manual_seed(args.seed)
    log: dict[str, list[float]] = {"lr": [], "loss": [], "norm": [], "factor": []}
    every = max(1, args.steps // 10)
    for step in range(1, args.steps + 1):
        idx = torch.randint(0, len(x), (128,), generator=g).to(device)
        lr = opt.param_groups[0]["lr"]
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            logits = model(x[idx])
        loss = nn.functional.cross_entropy(logits.float(), y[idx])
        opt.zero_grad()
        scale = scaler.get_scale() if scaler.is_enabled() else 1.0
        scaler.scale(loss).backward()
        scaler.unscale_(opt)  # optional with torchzero; shown because it is the usual pattern
        scaler.step(opt)  # does not call opt.step() if the unscaled gradients have inf/NaN
        scaler.update()  # ... and then lowers the scale
        sched.step()
        skipped = scaler.is_enabled() and scaler.get_scale() < scale
        stats = {} if skipped else opt.stats()  # after a skipped step opt.stats() still holds the previous step's
        norm = stats["ClipNorm/norm"].item() if stats else math.nan
        factor = stats["ClipNorm/factor"].item() if stats else math.nan
        for k, v in zip(log, (lr, loss.item(), norm, factor)):
            log[k].append(v)
        if step == 1 or step % every == 0 or step == args.steps:
            print(f"{step:>5} {lr:>9.2e} {loss.item():>8.4f} {norm:>10.4f} {factor:>11.4f} {scaler.get_scale() if scaler.is_enabled() else 1.0:>10g}")

    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    clipped = sum(f < 1 for f in log["factor"])
    print(f"test accuracy {accuracy:.3f}; the clip was active on {clipped} of {args.steps} steps")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(10, 6), sharex=True, layout="constrained")
    steps = range(1, args.steps + 1)
    (a_lr, a_loss), (a_norm, a_factor) = axes
    a_lr.plot(steps, log["lr"])
    a_lr.set(ylabel="lr", title=f"{type(sched).__name__}: param_groups[0]['lr']")
    a_loss.plot(steps, log["loss"], lw=0.8)
    a_loss.set(ylabel="loss", title=f"cross-entropy, autocast {str(dtype).removeprefix('torch.')}")
    a_norm.plot(steps, log["norm"], lw=0.8, label="ClipNorm/norm (unscaled gradient)")
    a_norm.axhline(args.max_norm, color="k", ls=":", lw=1, label=f"max_norm {args.max_norm:g}")
    a_norm.set(xlabel="step", ylabel="global grad norm", title="opt.stats()")
    a_norm.legend(fontsize=8)
    a_factor.plot(steps, log["factor"], color="C1", lw=0.8)
    a_factor.set(xlabel="step", ylabel="ClipNorm/factor", ylim=(0, 1.05), title=f"clip active on {clipped} of {args.steps} steps")
    for a in axes.flat:
        a.grid(alpha=0.3)
    fig.savefig(out / "lr_schedulers_and_amp.png", dpi=90)
    plt.close(fig)
    print(f"wrote {out / 'lr_schedulers_and_amp.png'}")
    return {"accuracy": accuracy, "final_loss": log["loss"][-1]}


if __name__ == "__main__":
    main()
