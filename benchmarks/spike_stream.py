"""How well each spike-handling module catches gradient spikes, and what it costs normal steps.

A synthetic gradient stream for a small network (two linear layers and a conv layer with
biases, 70,560 elements): Gaussian noise around a fixed mean direction, a per-step log-normal
batch-noise factor on the whole gradient (sigma 0.15) and a slow decay of the scale (to 0.3x
over the run), so norms drift and fluctuate like real ones. From step 100 on, each step is a
spike with probability ``--spike-rate``, half of them:

- **norm spikes**: the whole gradient times 10 .. 1000 (log-uniform);
- **sparse spikes**: 0.1% of the elements of one tensor times 100 .. 10,000 (log-uniform).

Each method runs alone in ``tz.Modular(params, method, <recorder>, tz.m.LR(0.0))`` on the same
stream (the parameters never move; AGC sees the fixed initial weights) and its output, the
update it hands on, is compared with its input, the raw gradient. Reported:

- **caught**: the fraction of spike steps whose output norm is at most 3x the *typical* norm
  (the median raw norm of the previous 50 normal steps), or that were skipped;
- **spike after / typical**: the median, over spike steps, of output norm / typical norm
  (0 for a skipped step);
- **normal changed**: the fraction of normal (non-spike) steps whose output differs from
  the input at all (a skipped normal step counts as changed);
- **normal rel. change**: the mean of ``|out - in| / |in|`` over normal steps (1 for a
  skipped step: its whole update is lost).

The fixed-threshold ``ClipNorm`` row is an oracle baseline: its ``max_norm`` is 2x the median
norm of the first 100 (spike-free) steps, which a real run would have to tune.

    python benchmarks/spike_stream.py                # 1000 steps, about a minute on 2 CPU cores
    python benchmarks/spike_stream.py --steps 3000 --seed 1
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator

import torch

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:  # benchmark the working tree's torchzero
    sys.path.insert(0, _ROOT)

import torchzero as tz  # noqa: E402

SHAPES = [(256, 128), (256,), (128, 256), (128,), (32, 16, 3, 3), (32,)]
START = 100  # no spikes before this step
TYPICAL_WINDOW = 50
CAUGHT_RATIO = 3.0


class _Recorder(tz.Module):
    """Keeps a copy of the update that reaches it (the output of the method before it)."""

    def __init__(self) -> None:
        super().__init__()
        self.last: list[torch.Tensor] | None = None

    def step(self, var: tz.Var) -> tz.Var:
        self.last = [u.clone() for u in var.get_update()]
        return var


def make_params(seed: int) -> list[torch.nn.Parameter]:
    """Weights with PyTorch's default Linear/Conv initialisation scale, biases likewise."""
    g = torch.Generator().manual_seed(seed + 1000)
    out = []
    fan_in = 1
    for s in SHAPES:
        if len(s) >= 2:
            fan_in = math.prod(s[1:])
        bound = 1 / math.sqrt(fan_in)
        out.append(torch.nn.Parameter((torch.rand(s, generator=g) * 2 - 1) * bound))
    return out


def schedule(steps: int, seed: int, spike_rate: float) -> list[str]:
    """``"normal"``, ``"norm"`` or ``"sparse"`` for every step."""
    g = torch.Generator().manual_seed(seed + 7)
    kinds = []
    for t in range(steps):
        u, v = torch.rand(2, generator=g).tolist()
        kinds.append("normal" if t < START or u >= spike_rate else ("norm" if v < 0.5 else "sparse"))
    return kinds


def stream(kinds: list[str], seed: int) -> Iterator[list[torch.Tensor]]:
    """The gradients of every step (regenerated identically for every method)."""
    g = torch.Generator().manual_seed(seed)
    mean_dir = [torch.randn(s, generator=g) for s in SHAPES]
    steps = len(kinds)
    for t, kind in enumerate(kinds):
        scale = 1e-4 * (0.3 + 0.7 * math.exp(-3 * t / steps)) * math.exp(0.15 * torch.randn((), generator=g).item())
        grads = [(0.5 * m + torch.randn(s, generator=g)) * scale for s, m in zip(SHAPES, mean_dir)]
        if kind == "norm":
            f = 10 ** (1 + 2 * torch.rand((), generator=g).item())
            grads = [x * f for x in grads]
        elif kind == "sparse":
            i = int(torch.randint(len(SHAPES), (), generator=g))
            n = grads[i].numel()
            k = max(1, n // 1000)
            idx = torch.randperm(n, generator=g)[:k]
            f = 10 ** (2 + 2 * torch.rand((), generator=g).item())
            grads[i].view(-1)[idx] *= f
        yield grads


def _norm(ts: list[torch.Tensor]) -> float:
    return math.sqrt(sum(float(x.double().pow(2).sum()) for x in ts))


def evaluate(make: Callable[[], object], kinds: list[str], seed: int) -> dict[str, float]:
    params = make_params(seed)
    rec = _Recorder()
    opt = tz.Modular(params, make(), rec, tz.m.LR(0.0))
    normal_norms: list[float] = []
    caught = {"norm": [], "sparse": []}
    ratios: list[float] = []
    normal_changed: list[float] = []
    normal_rel: list[float] = []
    for kind, grads in zip(kinds, stream(kinds, seed)):
        for p, x in zip(params, grads):
            p.grad = x.clone()
        rec.last = None
        opt.step()
        out = rec.last  # None: the step was skipped
        n_in = _norm(grads)
        if kind == "normal":
            if out is None:
                normal_changed.append(1.0)
                normal_rel.append(1.0)
            else:
                diff = math.sqrt(sum(float((o.double() - x.double()).pow(2).sum()) for o, x in zip(out, grads)))
                normal_changed.append(float(diff > 1e-6 * n_in))
                normal_rel.append(diff / n_in)
            normal_norms.append(n_in)
        else:
            typical = statistics.median(normal_norms[-TYPICAL_WINDOW:])
            n_out = 0.0 if out is None else _norm(out)
            caught[kind].append(float(n_out <= CAUGHT_RATIO * typical))
            ratios.append(n_out / typical)
    return {
        "norm": statistics.fmean(caught["norm"]) if caught["norm"] else math.nan,
        "sparse": statistics.fmean(caught["sparse"]) if caught["sparse"] else math.nan,
        "after": statistics.median(ratios) if ratios else math.nan,
        "changed": statistics.fmean(normal_changed),
        "rel": statistics.fmean(normal_rel),
    }


def methods(kinds: list[str], seed: int) -> dict[str, Callable[[], object]]:
    first = [_norm(g) for g, _ in zip(stream(kinds, seed), range(START))]
    tuned = 2 * statistics.median(first)
    return {
        f"ClipNorm(dim='global'), max_norm={tuned:.3g} (oracle)": lambda: tz.m.ClipNorm(tuned, dim="global"),
        "ClipNormByEMA(tensorwise=False)": lambda: tz.m.ClipNormByEMA(tensorwise=False),
        "AGC(0.01)": lambda: tz.m.AGC(0.01),
        "AutoClip(10)": lambda: tz.m.AutoClip(10),
        "AutoClip(90)": lambda: tz.m.AutoClip(90),
        "ZClip(max_grad_norm=None)": lambda: tz.m.ZClip(max_grad_norm=None),
        "ZClip(mode='percentile', max_grad_norm=None)": lambda: tz.m.ZClip(mode="percentile", max_grad_norm=None),
        "SpikeClip()": lambda: tz.m.SpikeClip(),
        "SkipOnSpike()": lambda: tz.m.SkipOnSpike(),
    }


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000, help="steps in the stream (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the stream (default: 0)")
    parser.add_argument("--spike-rate", type=float, default=0.03, help="probability that a step after step 100 is a spike (default: 0.03)")
    args = parser.parse_args(argv)
    if args.steps <= START + TYPICAL_WINDOW:
        parser.error(f"--steps must be more than {START + TYPICAL_WINDOW}")
    torch.set_grad_enabled(False)
    kinds = schedule(args.steps, args.seed, args.spike_rate)
    counts = {k: kinds.count(k) for k in ("normal", "norm", "sparse")}
    lines = [
        f"Spike stream: {args.steps} steps, seed {args.seed}, {counts['norm']} norm spikes, {counts['sparse']} sparse spikes, "
        f"{counts['normal']} normal steps; {sum(math.prod(s) for s in SHAPES):,} gradient elements in {len(SHAPES)} tensors; "
        f"torch {torch.__version__}, torchzero {tz.__version__}.",
        "",
        "| method | norm spikes caught | sparse spikes caught | spike after / typical (median) | normal steps changed | normal rel. change (mean) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    start = time.perf_counter()
    for name, make in methods(kinds, args.seed).items():
        r = evaluate(make, kinds, args.seed)
        lines.append(
            f"| `{name}` | {r['norm']:.0%} | {r['sparse']:.0%} | {r['after']:.3g} | {r['changed']:.1%} | {r['rel']:.2%} |"
        )
    lines += ["", f"({time.perf_counter() - start:.0f} s; command: python benchmarks/spike_stream.py {' '.join(argv if argv is not None else sys.argv[1:])})"]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
