"""Plots the torchzero/torch step-time ratios from ``bench_step.py --json`` files.

    python benchmarks/plot_results.py benchmarks/results/step_default.json \
        benchmarks/results/step_propagate.json --out docs/guide/img/benchmarks.png
"""
from __future__ import annotations

import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _label(data: dict, path: str) -> str:
    """What a run measured, in words: the non-finite policy it ran with (not its file name)."""
    policy = data.get("environment", {}).get("nonfinite")
    if policy is None:
        policy = "propagate" if "propagate" in os.path.basename(path) else "skip"
    return {"skip": 'default (nonfinite="skip": finite check each step)', "propagate": 'nonfinite="propagate" (as torch.optim)'}.get(
        policy, f'nonfinite="{policy}"'
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    runs = []
    for path in args.files:
        with open(path) as f:
            data = json.load(f)
        label = _label(data, path)
        runs.append((label, {(r["workload"], r["case"]): r["ratio_median"] for r in data["results"]}))
    keys = sorted({k for _, d in runs for k in d}, key=lambda k: (k[0] != "transformer", k[1]))
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(keys) + 1.5))
    height = 0.8 / len(runs)
    for j, (label, d) in enumerate(runs):
        ys = [i + j * height for i in range(len(keys))]
        ax.barh(ys, [d.get(k, float("nan")) for k in keys], height=height, label=label)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(keys))], [f"{w}: {c}" for w, c in keys], fontsize=8)
    ax.axvline(1.0, color="black", lw=1)
    ax.invert_yaxis()
    ax.set_xlabel("step time, torchzero / torch (median; < 1: torchzero faster)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
