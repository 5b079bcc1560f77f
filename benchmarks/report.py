"""Prints the results table of the docs (Markdown) from ``bench_step.py --json`` files.

    python benchmarks/report.py benchmarks/results/step_default.json \
        --propagate benchmarks/results/step_propagate.json

The first file holds the runs with torchzero's default non-finite policy; ``--propagate``, if
given, the runs with ``nonfinite="propagate"`` (an extra column). The goal column is the
performance goal of the project for that row, where it has one.
"""
from __future__ import annotations

import argparse
import json

FOREACH = "the same math in `torch._foreach_*`"
CLIP_ADAM = "clip_grad_norm_(foreach) + Adam(fused)"

# case -> (torchzero chain, torch side)
LABELS = {
    "clipnorm+adam": ('`ClipNorm(1.0, dim="global"), Adam(), LR(1e-3)`', CLIP_ADAM),
    "clipnorm(grad)+adam": ('`ClipNorm(1.0, dim="global", target="grad"), Adam(), LR(1e-3)`', CLIP_ADAM),
    "adam": ("`Adam(), LR(1e-3)`", "Adam(fused)"),
    "adamw": ("`Adam(), WeightDecay(0.01), LR(1e-3)`", "AdamW(fused)"),
}
# (workload, case) -> goal; every clipping module + LR on the large set: <= 1.2
GOALS = {
    ("transformer", "clipnorm+adam"): "<= 0.85",
    ("small", "clipnorm+adam"): "<= 1.0",
    ("transformer", "adam"): "<= 1.05",
    ("transformer", "adamw"): "<= 1.05",
}


def _load(path: str) -> tuple[dict, dict[tuple[str, str], dict]]:
    with open(path) as f:
        data = json.load(f)
    return data["environment"], {(r["workload"], r["case"]): r for r in data["results"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("default")
    ap.add_argument("--propagate", default=None)
    args = ap.parse_args()
    env, default = _load(args.default)
    propagate = _load(args.propagate)[1] if args.propagate else {}
    print(
        f"Measured {env['timestamp'][:10]}: {env['platform']}, {env['cpu_count']} CPU cores, torch "
        f"{env['torch_version']} ({env['num_threads']} threads), median of interleaved steps per side "
        f"(`{env['command']}`).\n"
    )
    print('| workload | chain (torchzero side) | torch side | tz ms | torch ms | ratio | with `nonfinite="propagate"` | goal |')
    print("|---|---|---|---:|---:|---:|---:|---|")
    for (workload, case), r in default.items():
        chain, torch_side = LABELS.get(case, (f"`{case}` + `LR(1e-3)`", FOREACH))
        goal = GOALS.get((workload, case), "<= 1.2" if case not in LABELS and workload == "transformer" else "")
        p = propagate.get((workload, case))
        pr = f"{p['ratio_median']:.2f}" if p else ""
        print(
            f"| {workload} | {chain} | {torch_side} | {r['tz_median_ms']:.1f} | {r['torch_median_ms']:.1f} | "
            f"{r['ratio_median']:.2f} | {pr} | {goal} |"
        )


if __name__ == "__main__":
    main()
