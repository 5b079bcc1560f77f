"""Optimizer-step time with ``torch.compile(opt.step)``: compiled vs eager vs fused vs torch.

For each chain of the compile guide (docs/guide/compile.md), four optimizers step identical
copies of one workload
(``workloads.py``), interleaved in one process (one step of each side per repeat, timed with
``time.perf_counter``; medians reported):

- ``torch``: torch's own pipeline (``clip_grad_norm_(foreach=True)`` + ``Adam``/``AdamW(fused=True)``);
- ``tz fused``: ``tz.Modular(...)`` with the default ``fused=None`` (torch's fused Adam kernel);
- ``tz eager``: ``tz.Modular(..., fused=False)``, the general multi-tensor path;
- ``tz compiled``: ``torch.compile(tz.Modular(...).step, fullgraph=True)`` (inductor; the compiled
  step traces the general path, which inductor fuses across modules).

All torchzero sides use ``nonfinite="propagate"`` (which ``fullgraph=True`` needs, see
docs/guide/compile.md), so all four do the same work; the default ``nonfinite="skip"`` adds one
gradient norm and one host sync per step to the eager sides. Compilation happens in the warm-up
steps (the first three steps compile: state creation, then the step counter specialised, then
dynamic); its time is reported as ``compile s``. ``max abs dp`` is the largest parameter difference
between the compiled and the eager torchzero sides after all steps.

    python benchmarks/bench_compile.py                       # the three chains, transformer set
    python benchmarks/bench_compile.py --chains adam --repeats 20
    python benchmarks/bench_compile.py --workload small
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
for _p in (_HERE, _ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import workloads  # noqa: E402

import torchzero as tz  # noqa: E402

StepFn = Callable[[], object]


def _torch_clip_adam(params: list[torch.Tensor]) -> StepFn:
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)

    def step() -> None:
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()

    return step


CHAINS: dict[str, tuple[Callable[[], list[tz.Module]], Callable[[list[torch.Tensor]], StepFn], str]] = {
    "clipnorm+adam": (
        lambda: [tz.m.ClipNorm(1.0, dim="global"), tz.m.Adam(), tz.m.LR(1e-3)],
        _torch_clip_adam,
        "clip_grad_norm_(foreach) + Adam(fused)",
    ),
    "adam": (
        lambda: [tz.m.Adam(), tz.m.LR(1e-3)],
        lambda p: torch.optim.Adam(p, lr=1e-3, fused=True).step,
        "Adam(fused)",
    ),
    "adamw": (
        lambda: [tz.m.Adam(), tz.m.WeightDecay(0.01), tz.m.LR(1e-3)],
        lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.01, fused=True).step,
        "AdamW(fused)",
    ),
}
SIDES = ("torch", "tz fused", "tz eager", "tz compiled")


def run_chain(name: str, workload: str, repeats: int, warmup: int, seed: int) -> dict:
    make, torch_side, _ = CHAINS[name]
    base = workloads.WORKLOADS[workload](seed=seed)
    params = {side: (base if side == "torch" else workloads.clone_params(base)) for side in SIDES}
    steps: dict[str, StepFn] = {"torch": torch.no_grad()(torch_side(params["torch"]))}
    steps["tz fused"] = tz.Modular(params["tz fused"], *make(), nonfinite="propagate").step
    steps["tz eager"] = tz.Modular(params["tz eager"], *make(), nonfinite="propagate", fused=False).step
    compiled_opt = tz.Modular(params["tz compiled"], *make(), nonfinite="propagate")
    steps["tz compiled"] = torch.compile(compiled_opt.step, fullgraph=True)

    torch._dynamo.reset()
    compile_s = 0.0
    for _ in range(warmup):
        for side in SIDES:
            t0 = time.perf_counter()
            steps[side]()
            if side == "tz compiled":
                compile_s += time.perf_counter() - t0
    times: dict[str, list[float]] = {side: [] for side in SIDES}
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeats):
            for side in SIDES:
                t0 = time.perf_counter()
                steps[side]()
                times[side].append((time.perf_counter() - t0) * 1e3)
    finally:
        gc.enable()
    with torch.no_grad():
        max_dp = max(float((a - b).abs().max()) for a, b in zip(params["tz compiled"], params["tz eager"]))
    med = {side: statistics.median(t) for side, t in times.items()}
    return dict(chain=name, med=med, compile_s=compile_s, max_dp=max_dp, n=sum(p.numel() for p in base), tensors=len(base))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", choices=list(workloads.WORKLOADS), default="transformer")
    ap.add_argument("--chains", nargs="+", choices=list(CHAINS), default=list(CHAINS))
    ap.add_argument("--repeats", type=int, default=10, help="timed steps per side (default: 10)")
    ap.add_argument("--warmup", type=int, default=4, help="untimed steps per side; at least 3 so compilation is done (default: 4)")
    ap.add_argument("--seed", type=int, default=workloads.DEFAULT_SEED)
    args = ap.parse_args(argv)
    if args.warmup < 3:
        ap.error("--warmup must be at least 3: the compiled step compiles on its first three steps")

    try:
        load = " (load average %.1f, %.1f, %.1f)" % os.getloadavg()
    except OSError:
        load = ""
    print(f"torch {torch.__version__}, torchzero {tz.__version__}, Python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}{load}")
    print(f"workload {args.workload}; {args.repeats} timed steps per side after {args.warmup} warm-up steps; median ms per step")
    print()
    header = f"| chain | torch side | {' | '.join(SIDES)} | compiled / torch | compiled / tz eager | compile s | max abs dp |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name in args.chains:
        r = run_chain(name, args.workload, args.repeats, args.warmup, args.seed)
        m = r["med"]
        cells = " | ".join(f"{m[s]:.1f}" for s in SIDES)
        print(
            f"| `{name}` | {CHAINS[name][2]} | {cells} | {m['tz compiled'] / m['torch']:.2f} | "
            f"{m['tz compiled'] / m['tz eager']:.2f} | {r['compile_s']:.0f} | {r['max_dp']:.1e} |",
            flush=True,
        )
        del r
        gc.collect()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
