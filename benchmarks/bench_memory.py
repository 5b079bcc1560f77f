"""Optimizer-step memory: torchzero vs torch, each side measured in its own process.

For each case and side a fresh Python process builds the 56.7M-parameter workload, makes the
optimizer, runs warm-up steps (so the optimizer state exists), reads its resident memory
(the steady state), resets the kernel's peak-RSS counter (``/proc/self/clear_refs``), runs more
steps and reads the peak again. "transient" is the peak over the steady state: the memory a
step needs on top of what the optimizer keeps. Linux only.

    python benchmarks/bench_memory.py
    python benchmarks/bench_memory.py --cases clipnorm+adam --steps 5
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CHILD = r"""
import json, os, sys
sys.path[:0] = [{here!r}, {root!r}]
import torch, workloads, bench_step

def rss_mb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(field)

case = {{c.name: c for c in bench_step.CASES}}[{case!r}]
params = workloads.WORKLOADS["transformer"](seed=0, device="cpu")
step = case.tz(params) if {side!r} == "torchzero" else torch.no_grad()(case.torch(params))
for _ in range({warmup}):
    step()
steady = rss_mb("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
for _ in range({steps}):
    step()
peak = rss_mb("VmHWM")
print(json.dumps(dict(steady_mb=steady, peak_mb=peak, transient_mb=peak - steady)))
"""


def measure(case: str, side: str, warmup: int, steps: int) -> dict:
    code = CHILD.format(here=HERE, root=ROOT, case=case, side=side, warmup=warmup, steps=steps)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=["clipnorm+adam", "clipnorm(grad)+adam", "adam", "adamw"])
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    print(f"command: {' '.join(['python', *sys.argv])}")
    print("workload: transformer-like, 56.7M float32 parameters (one gradient copy = 227 MB)\n")
    print("| case | side | steady MB | peak MB | transient MB |")
    print("|---|---|---:|---:|---:|")
    rows = []
    for case in args.cases:
        for side in ("torch", "torchzero"):
            r = measure(case, side, args.warmup, args.steps)
            rows.append(dict(case=case, side=side, **r))
            print(f"| {case} | {side} | {r['steady_mb']:.0f} | {r['peak_mb']:.0f} | {r['transient_mb']:.0f} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
