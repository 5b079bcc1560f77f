"""Gradient estimators (zeroth order) against Adam with true gradients, and MeZO's memory.

    python benchmarks/bench_zeroth_order.py                 # both parts, about two minutes
    python benchmarks/bench_zeroth_order.py --json out.json
    python benchmarks/bench_zeroth_order.py --docs out.json  # the docs page's tables

Part 1: a small MLP (4 -> 16 -> 16 -> 1, tanh, 369 parameters, float32) fitted full-batch to a
smooth target. Each chain runs until the loss (measured exactly, uncounted, after each step) is
below ``--target`` times the initial loss, or the budget of forward passes is spent. Reported:
forward passes (loss evaluations; Adam's count one per step), backward passes, and steps to
the target. Learning rates were tuned once per chain on a coarse grid (1e-3 .. 1e-1) and are fixed here.

Part 2: peak memory of one training step on a wider MLP (6 layers of 1024, batch 1024,
float32), each method in its own process: the peak resident memory over the steady state
after the model and data exist (``/proc/self/status`` VmHWM after ``clear_refs``; the steady state is measured after one
forward pass and ``malloc_trim``, so the kernels' first-use allocations are not counted), over
three steps, including what a step keeps (backprop's ``.grad``), for a
forward pass without gradients (inference), backpropagation with SGD, MeZO with ``LR`` (the
paper's ZO-SGD) and SPSA with ``LR`` (which keeps a copy of the parameters). Linux only.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torchzero as tz  # noqa: E402

ROOT = str(Path(__file__).resolve().parents[1])


def problem(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 4, generator=g)
    y = torch.sin(x @ torch.tensor([[1.0], [-0.5], [0.7], [0.3]])) + 0.1 * x[:, :1] ** 2
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    return model, x, y


#: (name, chain, uses backward)
CHAINS = {
    "Adam (true gradients)": (lambda: [tz.m.Adam(), tz.m.LR(1e-2)], True),
    "SPSA + Adam": (lambda: [tz.m.SPSA(h=1e-3, seed=0), tz.m.Adam(), tz.m.LR(1e-2)], False),
    "SPSA(n_samples=8) + Adam": (lambda: [tz.m.SPSA(h=1e-3, n_samples=8, seed=0), tz.m.Adam(), tz.m.LR(1e-2)], False),
    "RDSA + Adam": (lambda: [tz.m.RDSA(h=1e-3, seed=0), tz.m.Adam(), tz.m.LR(1e-2)], False),
    "GaussianSmoothing(n_samples=8) + Adam": (lambda: [tz.m.GaussianSmoothing(h=1e-2, n_samples=8, seed=0), tz.m.Adam(), tz.m.LR(1e-2)], False),
    "MeZO + LR (ZO-SGD)": (lambda: [tz.m.MeZO(h=1e-3, seed=0), tz.m.LR(3e-3)], False),
    "MeZO + Adam": (lambda: [tz.m.MeZO(h=1e-3, seed=0), tz.m.Adam(), tz.m.LR(1e-2)], False),
    "ForwardGradient + Adam": (lambda: [tz.m.ForwardGradient(seed=0), tz.m.Adam(), tz.m.LR(1e-2)], False),
    "FDM + Adam": (lambda: [tz.m.FDM(h=1e-3), tz.m.Adam(), tz.m.LR(1e-2)], False),
}


@dataclass
class Result:
    chain: str
    reached: bool
    forward: int
    backward: int
    steps: int
    final_ratio: float


def run(name: str, target: float, budget: int) -> Result:
    make, uses_backward = CHAINS[name]
    model, x, y = problem()
    opt = tz.Modular(model.parameters(), *make())
    forward = backward = steps = 0

    def loss_now() -> float:
        with torch.no_grad():
            return float(torch.nn.functional.mse_loss(model(x), y))

    def closure(backward_: bool = True) -> torch.Tensor:
        nonlocal forward, backward
        forward += 1
        loss = torch.nn.functional.mse_loss(model(x), y)
        if backward_:
            backward += 1
            opt.zero_grad()
            loss.backward()
        return loss

    first = loss_now()
    now = first
    while forward < budget:
        opt.step(closure)
        steps += 1
        now = loss_now()
        if now <= target * first:
            break
    return Result(name, now <= target * first, forward, backward, steps, now / first)


MEMORY_CHILD = r"""
import json, sys
sys.path.insert(0, {root!r})
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
method = {method!r}
if method == "backprop + SGD":
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
elif method == "MeZO + LR":
    opt = tz.Modular(model.parameters(), tz.m.MeZO(seed=0), tz.m.LR(1e-3))
elif method == "SPSA + LR":
    opt = tz.Modular(model.parameters(), tz.m.SPSA(seed=0), tz.m.LR(1e-3))

def step():
    if method == "inference":
        with torch.no_grad():
            model(x)
        return
    def closure(backward=True):
        loss = torch.nn.functional.mse_loss(model(x), y)
        if backward:
            opt.zero_grad(set_to_none=False)
            loss.backward()
        return loss
    if method == "backprop + SGD":
        closure()
        opt.step()
    else:
        opt.step(closure)

with torch.no_grad():  # the kernels' first-use allocations, the same for every method
    model(x)
import ctypes, gc
gc.collect()
ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back, so that every method starts alike
steady = rss("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
for _ in range(3):
    step()
peak = rss("VmHWM")
n = sum(p.numel() for p in model.parameters())
print(json.dumps(dict(steady_mb=steady, peak_mb=peak, transient_mb=peak - steady, params_mb=n * 4 / 2**20)))  # noqa
"""

MEMORY_METHODS = ("inference", "backprop + SGD", "MeZO + LR", "SPSA + LR")


def memory(method: str) -> dict[str, float]:
    code = MEMORY_CHILD.format(root=ROOT, method=method)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def tables(data: dict) -> str:
    target = data["target"]
    out = [
        f"| chain | reached {target:g} x the initial loss | forward passes | backward passes | steps | forward passes / Adam's |",
        "|---|---|---:|---:|---:|---:|",
    ]
    adam = next(r for r in data["runs"] if r["chain"].startswith("Adam"))
    for r in data["runs"]:
        ratio = r["forward"] / adam["forward"] if r["reached"] else math.nan
        reached = "yes" if r["reached"] else f"no ({r['final_ratio']:.2f} x after {data['budget']:,})"
        out.append(f"| {r['chain']} | {reached} | {r['forward']:,} | {r['backward']:,} | {r['steps']:,} | {ratio:.1f} |")
    if data.get("memory"):
        out += ["", "| method | memory of a step over the model and data (MB) | parameters (MB) |", "|---|---:|---:|"]
        for method, m in data["memory"].items():
            out.append(f"| {method} | {m['transient_mb']:.0f} | {m['params_mb']:.0f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", type=float, default=0.1, help="the loss to reach, relative to the initial one (default: 0.1)")
    parser.add_argument("--budget", type=int, default=60_000, help="forward passes at most per chain (default: 60000)")
    parser.add_argument("--chains", nargs="*", default=list(CHAINS), help="the chains to run (default: all)")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the memory part")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    parser.add_argument("--docs", type=Path, help="print the docs page's tables from this --json file and exit")
    args = parser.parse_args(argv)
    if args.docs is not None:
        print(tables(json.loads(args.docs.read_text())))
        return {}
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, torchzero {tz.__version__}, float32")
    runs = [asdict(run(name, args.target, args.budget)) for name in args.chains]
    data: dict = {"target": args.target, "budget": args.budget, "runs": runs, "memory": {}}
    if args.memory and os.path.exists("/proc/self/clear_refs"):
        data["memory"] = {m: memory(m) for m in MEMORY_METHODS}
    print(tables(data))
    if args.json is not None:
        args.json.write_text(json.dumps(data, indent=1))
        print(f"wrote {args.json}")
    return data


if __name__ == "__main__":
    main()
