"""Exploding-gradient showdown: one command, every clipping chain, two tasks, pictures.

Gradient norm clipping was introduced for recurrent networks whose gradients explode
(Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent neural networks",
https://arxiv.org/abs/1211.5063). This script trains, with the same seed, the same initial
weights and the same batches for every chain:

* ``rnn``: a vanilla tanh RNN (``torch.nn.RNN``) on the adding problem of that paper: a
  sequence of 150 random numbers, two of them marked; the target is the sum of the two marked
  numbers. Its recurrent weights start orthogonal times 2, so the forward pass is chaotic and
  the gradients explode (norms around 1e9) until the optimizer brings the weights back.
  Predicting the mean (1.0) scores an MSE of 1/6; learning the task itself takes far more steps
  than a CPU demo has, so the target here is to get back below 0.2.
* ``lm``: a small character-level transformer language model (causal ``nn.TransformerEncoder``)
  on text that ships with Python: the standard library's own source files (the first top-level
  modules by sorted name; no download).

Each chain is ``[clipping module] -> Adam -> LR``; the clipping modules run on the gradient
(``target="grad"``), which in front of Adam is the same as their default ``target="update"``
and lets the script read the clipped gradient back from ``p.grad``. It writes, into ``--out``:

* ``showdown_<task>.png``: loss curves, and per chain the global gradient norm before and
  after clipping;
* ``showdown_<task>.csv``: the same per step;
* ``summary.md``: the tables it prints;
* ``results.json``: every run's summary, with the commit, date, versions and kernels that made it
  (``docs/gen_gallery.py`` builds the gallery page from it).

With ``--seeds 0,1,2`` every chain runs once per seed, and a second table gives, per chain,
medians and ranges over the seeds: in the exploding regime one run is one draw from a chaotic
process, and only what holds over seeds says something about the chains.

    python examples/showdown.py                          # both tasks, every chain
    python examples/showdown.py --tasks rnn --chains adam,clipnorm-global,zclip
    python examples/showdown.py --seeds 0,1,2            # medians and ranges over three seeds
    python examples/showdown.py --steps 5 --out /tmp/sd  # a smoke test
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
import sysconfig
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import torch
from torch import Tensor, nn

import torchzero as tz

MAX_NORM = 1.0  # the threshold of the fixed-threshold chains


# ----------------------------------------------------------------------------------------- chains
@dataclass(frozen=True)
class ChainSpec:
    """A chain of the showdown: ``modules()`` go in front of ``Adam() -> LR(lr)``."""

    label: str
    needs: str | None  # the tz.m attribute this chain needs (None: always available)
    modules: Callable[[], list[Any]]


CHAINS: dict[str, ChainSpec] = {
    "adam": ChainSpec("Adam", None, lambda: []),
    "clipnorm-global": ChainSpec(
        f"ClipNorm({MAX_NORM:g}, global)", "ClipNorm", lambda: [tz.m.ClipNorm(MAX_NORM, dim="global", target="grad")]
    ),
    "clipnorm-tensor": ChainSpec(
        f"ClipNorm({MAX_NORM:g}) per tensor", "ClipNorm", lambda: [tz.m.ClipNorm(MAX_NORM, target="grad")]
    ),
    "clipnorm-ema": ChainSpec("ClipNormByEMA()", "ClipNormByEMA", lambda: [tz.m.ClipNormByEMA(target="grad")]),
    "clipnorm-growth": ChainSpec("ClipNormGrowth()", "ClipNormGrowth", lambda: [tz.m.ClipNormGrowth(target="grad")]),
    "agc": ChainSpec("AGC()", "AGC", lambda: [tz.m.AGC(target="grad")]),
    "autoclip": ChainSpec("AutoClip()", "AutoClip", lambda: [tz.m.AutoClip(target="grad")]),
    "zclip": ChainSpec("ZClip()", "ZClip", lambda: [tz.m.ZClip(target="grad")]),
    "skiponspike": ChainSpec("SkipOnSpike()", "SkipOnSpike", lambda: [tz.m.SkipOnSpike()]),
}


def available_chains() -> list[str]:
    """The chains whose modules this torchzero has."""
    return [name for name, spec in CHAINS.items() if spec.needs is None or hasattr(tz.m, spec.needs)]


# ------------------------------------------------------------------------------------------ tasks
class AddingRNN(nn.Module):
    """A vanilla tanh RNN that reads the sequence and predicts from its last hidden state."""

    def __init__(self, hidden: int, gain: float):
        super().__init__()
        self.rnn = nn.RNN(2, hidden, nonlinearity="tanh", batch_first=True)
        self.head = nn.Linear(hidden, 1)
        nn.init.orthogonal_(self.rnn.weight_hh_l0, gain=gain)  # gain > 1: exploding gradients

    def forward(self, x: Tensor) -> Tensor:
        _, h = self.rnn(x)
        return self.head(h[-1])


class CharLM(nn.Module):
    """A small causal transformer over bytes (vocabulary of 128 ASCII codes)."""

    def __init__(self, context: int, d_model: int, layers: int, heads: int):
        super().__init__()
        self.embed = nn.Embedding(128, d_model)
        self.pos = nn.Parameter(0.02 * torch.randn(context, d_model))
        layer = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout=0.0, batch_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, 128)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(context), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        t = x.shape[1]
        h = self.embed(x) + self.pos[:t]
        h = self.blocks(h, mask=self.mask[:t, :t], is_causal=True)
        return self.out(self.norm(h))


def stdlib_text(chars: int) -> tuple[str, list[str]]:
    """The first top-level modules of Python's standard library (sorted by name, ``_*`` skipped)
    until ``chars`` characters; returns the text and the file names used."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py") if not p.name.startswith("_"))
    parts: list[str] = []
    names: list[str] = []
    total = 0
    for p in files:
        s = p.read_text(encoding="utf-8", errors="replace")
        parts.append(s)
        names.append(p.name)
        total += len(s)
        if total >= chars:
            break
    if total < 1000:
        raise RuntimeError(f"showdown: found only {total} characters of Python source under {root}")
    return "".join(parts), names


Batch = tuple[Tensor, Tensor]


@dataclass
class Task:
    """A model, a data stream and a loss; ``batches(seed)`` is the same stream for every chain."""

    name: str
    title: str
    lr: float
    target: float  # "steps to target": the first step whose 20-step mean loss is <= this
    make_model: Callable[[], nn.Module]
    make_batches: Callable[[torch.Generator], Callable[[], Batch]]
    loss_fn: Callable[[nn.Module, Batch], Tensor]
    log_loss: bool = False  # plot the loss on a log scale

    def model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)  # same seed -> same initial weights for every chain
        return self.make_model()

    def batches(self, seed: int) -> Callable[[], Batch]:
        return self.make_batches(torch.Generator().manual_seed(seed + 1))


def adding_task(seq_len: int = 150, hidden: int = 32, batch: int = 32, gain: float = 2.0, lr: float = 3e-3) -> Task:
    """The adding problem: channel 0 holds U(0, 1) numbers, channel 1 marks one position in each
    half of the sequence; the target is the sum of the two marked numbers."""

    def make_batches(g: torch.Generator) -> Callable[[], Batch]:
        rows = torch.arange(batch)

        def next_batch() -> Batch:
            values = torch.rand(batch, seq_len, generator=g)
            marks = torch.zeros(batch, seq_len)
            marks[rows, torch.randint(0, seq_len // 2, (batch,), generator=g)] = 1.0
            marks[rows, torch.randint(seq_len // 2, seq_len, (batch,), generator=g)] = 1.0
            return torch.stack([values, marks], dim=-1), (values * marks).sum(1, keepdim=True)

        return next_batch

    return Task(
        name="rnn",
        title=f"adding problem, T={seq_len}: tanh RNN ({hidden} units, W_hh orthogonal x {gain:g}), batch {batch}, Adam lr={lr:g}",
        lr=lr,
        target=0.2,
        make_model=lambda: AddingRNN(hidden, gain),
        make_batches=make_batches,
        loss_fn=lambda model, b: nn.functional.mse_loss(model(b[0]), b[1]),
        log_loss=True,
    )


def lm_task(
    chars: int = 300_000, context: int = 64, batch: int = 16, d_model: int = 64, layers: int = 2, heads: int = 4, lr: float = 1e-2
) -> Task:
    """Next-character prediction on the standard library's source (non-ASCII characters become '?')."""
    text, names = stdlib_text(chars)
    data = torch.frombuffer(bytearray(text.encode("ascii", errors="replace")), dtype=torch.uint8).long()

    def make_batches(g: torch.Generator) -> Callable[[], Batch]:
        offsets = torch.arange(context + 1)

        def next_batch() -> Batch:
            start = torch.randint(0, len(data) - context - 1, (batch,), generator=g)
            window = data[start[:, None] + offsets]
            return window[:, :-1], window[:, 1:]

        return next_batch

    def loss_fn(model: nn.Module, b: Batch) -> Tensor:
        logits = model(b[0])
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), b[1].reshape(-1))

    return Task(
        name="lm",
        title=(
            f"char-level transformer LM ({layers} layers, d={d_model}, context {context}), batch {batch}, Adam lr={lr:g}; "
            f"{len(data):,} chars of the stdlib: {names[0]} .. {names[-1]} ({len(names)} files)"
        ),
        lr=lr,
        target=2.2,
        make_model=lambda: CharLM(context, d_model, layers, heads),
        make_batches=make_batches,
        loss_fn=loss_fn,
    )


TASKS: dict[str, Callable[[], Task]] = {"rnn": adding_task, "lm": lm_task}


# ---------------------------------------------------------------------------------------- running
@dataclass
class Run:
    """What one (task, chain) run recorded, one entry per step."""

    chain: str
    seed: int = 0
    loss: list[float] = field(default_factory=list)
    norm_before: list[float] = field(default_factory=list)  # global gradient norm before the chain
    norm_after: list[float] = field(default_factory=list)  # ... after clipping (NaN on skipped steps)
    clipped: list[bool] = field(default_factory=list)
    skipped: list[bool] = field(default_factory=list)
    train_s: float = 0.0  # forward + backward + opt.step
    opt_s: float = 0.0  # opt.step alone
    stopped: str | None = None  # why the run ended early, if it did


def grad_norm(params: list[Tensor]) -> float:
    grads = [p.grad for p in params if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads).item() if grads else 0.0


def skipped_so_far(opt: tz.Modular) -> int:
    """Steps skipped by the non-finite policy and by step guards (SkipOnSpike, SkipNonFinite)."""
    return opt.skipped_steps + sum(int(m.global_state.get("skipped", 0)) for m in opt.chain.modules)


def clip_factor(stats: dict[str, Tensor]) -> float | None:
    """The smallest factor a clipping module reported this step (``.../factor`` or
    ``.../factor_min`` in ``opt.stats()``), or None if no module reports one."""
    values = [v.item() for k, v in stats.items() if k.endswith("/factor") or k.endswith("/factor_min")]
    return min(values) if values else None


def train(task: Task, chain: str, steps: int, seed: int) -> Run:
    """Trains ``task``'s model from its seeded initial weights with ``chain`` on its seeded batches."""
    from tqdm.auto import tqdm

    model = task.model(seed)
    params = list(model.parameters())
    opt = tz.Modular(params, *CHAINS[chain].modules(), tz.m.Adam(), tz.m.LR(task.lr))
    next_batch = task.batches(seed)
    run = Run(chain, seed)
    bar = tqdm(range(steps), desc=f"{task.name:>3} {chain:<16} seed {seed}", file=sys.stderr, dynamic_ncols=True, mininterval=0.25)
    smooth = math.nan
    for step in bar:
        batch = next_batch()
        t0 = time.perf_counter()
        loss = task.loss_fn(model, batch)
        opt.zero_grad()
        loss.backward()
        t1 = time.perf_counter()
        before = grad_norm(params)  # measured outside the timed region
        skips = skipped_so_far(opt)
        t2 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Modular: skipped a step")
                opt.step()
        except RuntimeError as e:  # a guard gave up (too many bad steps in a row)
            run.stopped = f"aborted at step {step + 1}: {' '.join(str(e).split())}"
            break
        t3 = time.perf_counter()
        run.train_s += t1 - t0 + t3 - t2
        run.opt_s += t3 - t2
        skipped = skipped_so_far(opt) > skips
        factor = clip_factor(opt.stats())
        after = math.nan if skipped else grad_norm(params)  # the clipping modules ran on p.grad
        run.loss.append(loss.item())
        run.norm_before.append(before)
        run.norm_after.append(after)
        run.skipped.append(skipped)
        run.clipped.append(not skipped and (factor < 1.0 if factor is not None else after < before * (1 - 1e-6)))
        smooth = run.loss[-1] if not math.isfinite(smooth) else 0.9 * smooth + 0.1 * run.loss[-1]
        if step % 10 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{smooth:.4f}", refresh=False)
    bar.close()
    return run


# ---------------------------------------------------------------------------------------- summary
def moving_mean(x: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(x):
        acc += v
        if i >= window:
            acc -= x[i - window]
        out.append(acc / min(i + 1, window))
    return out


def summarize(task: Task, run: Run) -> dict[str, Any]:
    n = len(run.loss)
    tail = run.loss[-max(1, n // 10) :] if n else [math.nan]
    hit = next((i + 1 for i, v in enumerate(moving_mean(run.loss, 20)) if v <= task.target), None)
    clipped, skipped = sum(run.clipped), sum(run.skipped)
    return {
        "chain": run.chain,
        "final": sum(tail) / len(tail),
        "hit": hit,
        "clipped": clipped,
        "skipped": skipped,
        "caught": clipped + skipped,
        "steps": n,
        "max_norm": max(run.norm_before) if run.norm_before else math.nan,
        "end_norm": median(run.norm_before[-max(1, n // 10) :]) if n else math.nan,
        "ms": 1000 * run.train_s / max(n, 1),
        "opt_ms": 1000 * run.opt_s / max(n, 1),
        "stopped": run.stopped,
        "seed": run.seed,
    }


def table(task: Task, runs: list[Run]) -> str:
    header = ["chain", "final loss", f"steps to {task.target:g}", "caught (clip+skip)", "max grad norm", "end grad norm", "ms/step", "opt.step ms"]
    rows = []
    for run in runs:
        s = summarize(task, run)
        caught = f"{s['caught']} ({s['clipped']}+{s['skipped']}) {100 * s['caught'] / max(s['steps'], 1):.0f}%"
        rows.append([
            f"{run.chain} [{CHAINS[run.chain].label}]" + (" (aborted)" if run.stopped else ""),
            f"{s['final']:.4f}" + ("†" if run.stopped else ""),
            "-" if s["hit"] is None else str(s["hit"]),
            caught,
            f"{s['max_norm']:.3g}",
            f"{s['end_norm']:.3g}",
            f"{s['ms']:.1f}",
            f"{s['opt_ms']:.2f}",
        ])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    out = [line(header), "|" + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"]
    out += [line(r) for r in rows]
    out += [f"\n† {run.chain}: {run.stopped}" for run in runs if run.stopped]
    return "\n".join(out)


def _spread(values: list[float], fmt: str) -> str:
    """``median [min, max]`` of ``values``, each formatted with ``fmt``."""
    if not values:
        return "-"
    return f"{format(median(values), fmt)} [{format(min(values), fmt)}, {format(max(values), fmt)}]"


def seeds_table(task: Task, summaries: dict[str, list[dict[str, Any]]]) -> str:
    """One row per chain over all seeds: medians and ranges (a single run is one draw from a
    chaotic process; what holds over seeds is what the chains do)."""
    n = max(len(v) for v in summaries.values())
    header = ["chain", "final loss, median [range]", f"reached {task.target:g}", f"median steps to {task.target:g}",
              "caught, median", "end grad norm, median [range]", "aborted"]
    rows = []
    for chain, ss in summaries.items():
        hits = [s["hit"] for s in ss if s["hit"] is not None]
        rows.append([
            f"{chain} [{CHAINS[chain].label}]",
            _spread([s["final"] for s in ss], ".4f"),
            f"{len(hits)}/{len(ss)}",
            f"{median(hits):.0f}" if hits else "-",
            f"{median(100 * s['caught'] / max(s['steps'], 1) for s in ss):.0f}%",
            _spread([s["end_norm"] for s in ss], ".3g"),
            f"{sum(1 for s in ss if s['stopped'])}/{len(ss)}",
        ])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    out = [f"over {n} seeds:", "", line(header), "|" + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"]
    out += [line(r) for r in rows]
    aborted = [f"† {chain} seed {s['seed']}: {s['stopped']}" for chain, ss in summaries.items() for s in ss if s["stopped"]]
    return "\n".join(out + ([""] + aborted if aborted else []))


LEGEND = """\
final loss: mean training loss over the last 10% of the steps.
steps to X: the first step at which the mean loss of the last 20 steps is <= X ("-": never).
caught: steps on which the chain acted on the gradient: a clipping module scaled it down
  (a factor < 1 in opt.stats(), or, for a module that reports no factor, a smaller global
  norm after the step) + steps skipped (by SkipOnSpike, or by the non-finite policy).
max grad norm: the largest global gradient norm before clipping; end grad norm: its median
  over the last 10% of the steps.
ms/step: forward + backward + opt.step, mean per step; opt.step ms: opt.step alone.
A module that scales the gradient on every step (an EMA- or weight-relative threshold below the
  gradient's own norm) is "caught" on every step: 100% means the chain always acted, not that
  every step was a spike.
aborted (†): a step guard gave up (more bad steps in a row than max_consecutive); the run's
  numbers are those of the steps before, and its message is printed in full below the table."""


# ---------------------------------------------------------------------------------------- plotting
def plot(task: Task, runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 3
    rows = math.ceil(len(runs) / cols)
    fig = plt.figure(figsize=(5 * cols, 3.9 + 2.7 * rows), layout="constrained")
    grid = fig.add_gridspec(1 + rows, cols, height_ratios=[1.45] + [1] * rows)
    # distinguishable, also for colour-blind readers (Okabe & Ito), no gray: gray is "before"
    palette = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442", "#882255"]

    def colors(i: int) -> Any:
        return palette[i % len(palette)]

    ax = fig.add_subplot(grid[0, :])
    for i, run in enumerate(runs):
        xs = range(1, len(run.loss) + 1)
        ax.plot(xs, moving_mean(run.loss, 10), color=colors(i), lw=1.4, label=f"{run.chain} [{CHAINS[run.chain].label}]")
    ax.axhline(task.target, color="k", ls=":", lw=1, label=f"target {task.target:g}")
    if task.log_loss:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (10-step mean)")
    ax.set_title(task.title, fontsize=9)
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    for i, run in enumerate(runs):
        a = fig.add_subplot(grid[1 + i // cols, i % cols], sharex=ax)
        xs = list(range(1, len(run.loss) + 1))
        a.plot(xs, run.norm_before, color="0.6", lw=1, label="before")
        a.plot(xs, run.norm_after, color=colors(i), lw=1.1, label="after")
        sk = [x for x, s in zip(xs, run.skipped) if s]
        if sk:
            a.plot(sk, [run.norm_before[x - 1] for x in sk], "rx", ms=5, label="skipped")
        a.set_yscale("log")
        s = summarize(task, run)
        title = f"{run.chain}: acted on {s['caught']} of {s['steps']} steps"
        a.set_title(title + (" (aborted)" if run.stopped else ""), fontsize=9)
        a.grid(alpha=0.3)
        a.tick_params(which="both", labelsize=7)  # minor tick labels no larger than the major ones
        if i % cols == 0:
            a.set_ylabel("global grad norm", fontsize=8)
        if i >= len(runs) - cols:
            a.set_xlabel("step", fontsize=8)
        if i == 0:
            a.legend(fontsize=7)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_csv(runs: list[Run], path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["chain", "seed", "step", "loss", "norm_before", "norm_after", "clipped", "skipped"])
        for run in runs:
            for i in range(len(run.loss)):
                w.writerow([run.chain, run.seed, i + 1, f"{run.loss[i]:.6g}", f"{run.norm_before[i]:.6g}", f"{run.norm_after[i]:.6g}", int(run.clipped[i]), int(run.skipped[i])])


def write_results(path: Path, per_seed: dict[str, dict[str, list[dict[str, Any]]]], seeds: list[int], steps: int, total: float) -> None:
    """Every run's summary with what produced it: the commit, the date, the versions and which
    Adam kernels ran (torchzero's CPU kernel rounds differently from torch's fused one, and the
    exploding RNN amplifies that: numbers are comparable only between runs that agree here)."""
    import datetime
    import json
    import subprocess

    from torchzero.functional import cpu_kernels

    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    meta = {
        "commit": commit or "unknown",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "torchzero": tz.__version__,
        "kernels": "torchzero CPU kernels" if cpu_kernels.library() is not None else "torch fused kernels",
        "seeds": seeds,
        "steps": steps,
        "threads": torch.get_num_threads(),
        "seconds": round(total),
    }
    clean = {t: {c: [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in s.items()} for s in ss]
                 for c, ss in chains.items()} for t, chains in per_seed.items()}
    path.write_text(json.dumps({"meta": meta, "tasks": clean}, indent=1))


# ------------------------------------------------------------------------------------------- main
def parse_list(value: str, allowed: list[str], what: str, parser: argparse.ArgumentParser) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        parser.error(f"--{what}: unknown or unavailable {bad or value!r}; choose from {','.join(allowed)}")
    return list(dict.fromkeys(names))


def main(argv: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    chains = available_chains()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per chain and task (default: 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and of the batches (default: 0)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds: run each chain once per seed and report medians and ranges (overrides --seed)")
    parser.add_argument("--chains", default=",".join(chains), help=f"comma-separated chains (default: all available: {','.join(chains)})")
    parser.add_argument("--tasks", default="rnn,lm", help="comma-separated tasks: rnn, lm (default: rnn,lm)")
    parser.add_argument("--out", default="out/showdown", help="output folder, created if needed (default: out/showdown, which .gitignore ignores)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads; these models are small, 1 is fastest (default: 1)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    try:
        seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [args.seed]
    except ValueError:
        parser.error(f"--seeds must be comma-separated ints, got {args.seeds!r}")
    chain_names = parse_list(args.chains, chains, "chains", parser)
    task_names = parse_list(args.tasks, list(TASKS), "tasks", parser)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    missing = [n for n, s in CHAINS.items() if n not in chains]
    if missing:
        print(f"(not in this torchzero, skipped: {', '.join(missing)})")

    start = time.perf_counter()
    results: dict[str, list[dict[str, Any]]] = {}
    per_seed: dict[str, dict[str, list[dict[str, Any]]]] = {}
    report = []
    for task_name in task_names:
        task = TASKS[task_name]()
        runs = [train(task, c, args.steps, seed) for seed in seeds for c in chain_names]
        first = [r for r in runs if r.seed == seeds[0]]
        summaries = {c: [summarize(task, r) for r in runs if r.chain == c] for c in chain_names}
        text = f"## {task.name}: {task.title}\n\nseed {seeds[0]}:\n\n{table(task, first)}\n"
        if len(seeds) > 1:
            text += f"\n{seeds_table(task, summaries)}\n"
        print("\n" + text, flush=True)
        report.append(text)
        plot(task, first, out / f"showdown_{task.name}.png")
        write_csv(runs, out / f"showdown_{task.name}.csv")
        results[task.name] = [summarize(task, r) for r in first]
        per_seed[task.name] = summaries
    total = time.perf_counter() - start
    seeds_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"
    footer = f"{LEGEND}\n\n{seeds_text}, {args.steps} steps per chain, {torch.get_num_threads()} thread(s); total {total:.0f} s"
    print(footer)
    (out / "summary.md").write_text("\n".join(report) + "\n```\n" + footer + "\n```\n")
    write_results(out / "results.json", per_seed, seeds, args.steps, total)
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir() if p.name.startswith('showdown_') or p.name in ('summary.md', 'results.json')))} to {out}/")
    return results


if __name__ == "__main__":
    main()
