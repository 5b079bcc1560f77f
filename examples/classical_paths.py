"""Classical methods as chains: their paths on 2-D test functions, and a full-batch model fit.

Part 1 runs gradient descent with Armijo backtracking, conjugate gradient, BFGS and L-BFGS (each
with a line search) on three 2-D test functions (Rosenbrock, Beale, Himmelblau) and draws each
method's path over the function's contour lines into ``classical_paths.png``. Part 2 fits a
small MLP to a smooth 1-D function with full-batch L-BFGS (``tz.m.LBFGS(), tz.m.StrongWolfe()``),
next to Adam on the same data, and prints both losses.

    python examples/classical_paths.py               # a few seconds
    python examples/classical_paths.py --steps 30 --out /tmp/cp
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

import torchzero as tz

F64 = torch.float64

FUNCTIONS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], list[float], tuple[float, float, float, float]]] = {
    # name: (f, start, (xmin, xmax, ymin, ymax) of the picture)
    "Rosenbrock": (lambda x: (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2, [-1.2, 1.0], (-2.0, 2.0, -1.0, 3.0)),
    "Beale": (
        lambda x: (1.5 - x[0] + x[0] * x[1]) ** 2 + (2.25 - x[0] + x[0] * x[1] ** 2) ** 2 + (2.625 - x[0] + x[0] * x[1] ** 3) ** 2,
        [1.0, 1.5],
        (-1.0, 4.0, -1.0, 2.0),
    ),
    "Himmelblau": (lambda x: (x[0] ** 2 + x[1] - 11) ** 2 + (x[0] + x[1] ** 2 - 7) ** 2, [-0.5, -3.5], (-5.0, 5.0, -5.0, 5.0)),
}

METHODS: dict[str, Callable[[], list[Any]]] = {
    "GD + Backtracking": lambda: [tz.m.Backtracking(maxiter=40)],
    "Polak-Ribiere CG + StrongWolfe": lambda: [tz.m.PolakRibiere(), tz.m.StrongWolfe(c2=0.1, a_init="first-order")],
    "BFGS + StrongWolfe": lambda: [tz.m.BFGS(), tz.m.StrongWolfe()],
    "L-BFGS + StrongWolfe": lambda: [tz.m.LBFGS(), tz.m.StrongWolfe()],
}


def path(f: Callable[[torch.Tensor], torch.Tensor], start: list[float], modules: list[Any], steps: int) -> tuple[list[list[float]], int]:
    """The points a chain visits, and its evaluations of f."""
    x = torch.nn.Parameter(torch.tensor(start, dtype=F64))
    stop = tz.m.TerminateByGradientNorm(1e-8)
    opt = tz.Modular([x], stop, *modules)
    evals = 0

    def closure(backward: bool = True) -> torch.Tensor:
        nonlocal evals
        evals += 1
        loss = f(x)
        if backward:
            opt.zero_grad()
            loss.backward()
        return loss

    points = [x.detach().tolist()]
    for _ in range(steps):
        opt.step(closure)
        if opt.terminated:
            break
        points.append(x.detach().tolist())
    return points, evals


def fit(steps: int, seed: int) -> dict[str, float]:
    """Full-batch fit of sin(3x) + x/2 by a small MLP: L-BFGS with a line search against Adam."""
    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(-2, 2, 200, dtype=F64)[:, None]
    y = torch.sin(3 * x) + x / 2 + 0.01 * torch.randn(x.shape, generator=g, dtype=F64)
    out = {}
    for name, make in {"L-BFGS + StrongWolfe": lambda: [tz.m.LBFGS(history_size=20), tz.m.StrongWolfe()], "Adam (lr=1e-2)": lambda: [tz.m.Adam(), tz.m.LR(1e-2)]}.items():
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1)).to(F64)
        opt = tz.Modular(model.parameters(), *make())

        def closure(backward: bool = True) -> torch.Tensor:
            loss = nn.functional.mse_loss(model(x), y)
            if backward:
                opt.zero_grad()
                loss.backward()
            return loss

        for _ in range(steps):
            opt.step(closure)
        out[name] = float(closure(False).detach())
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="steps per method and of the model fit (default: 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model fit (default: 0)")
    parser.add_argument("--out", default="out/classical_paths", help="output folder for the picture (default: out/classical_paths)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    torch.set_num_threads(1)

    print("1) paths to the minimum (steps until |grad| <= 1e-8, evaluations of f, final f):")
    paths: dict[str, dict[str, list[list[float]]]] = {}
    for fname, (f, start, _) in FUNCTIONS.items():
        paths[fname] = {}
        for mname, make in METHODS.items():
            pts, evals = path(f, start, make(), args.steps)
            paths[fname][mname] = pts
            final = float(f(torch.tensor(pts[-1], dtype=F64)))
            print(f"   {fname:<11} {mname:<32} steps {len(pts) - 1:>4}  evals {evals:>5}  f {final:.3e}")

    print(f"\n2) a 1-32-32-1 tanh MLP fit to sin(3x) + x/2 on 200 points, full batch, {args.steps} steps:")
    losses = fit(args.steps, args.seed)
    for name, loss in losses.items():
        print(f"   {name:<22} final MSE {loss:.2e}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(FUNCTIONS), figsize=(5.2 * len(FUNCTIONS), 4.4), layout="constrained")
    for ax, (fname, (f, start, (x0, x1, y0, y1))) in zip(axes, FUNCTIONS.items()):
        gx, gy = torch.meshgrid(torch.linspace(x0, x1, 300, dtype=F64), torch.linspace(y0, y1, 300, dtype=F64), indexing="xy")
        z = f(torch.stack([gx, gy]))
        ax.contour(gx.numpy(), gy.numpy(), torch.log10(z + 1e-3).numpy(), levels=25, cmap="Greys", linewidths=0.6)
        for mname, pts in paths[fname].items():
            xs, ys = zip(*pts)
            ax.plot(xs, ys, ".-", ms=3, lw=1, label=f"{mname} ({len(pts) - 1} steps)")
        ax.plot(*start, "k*", ms=9)
        ax.set(title=fname, xlim=(x0, x1), ylim=(y0, y1))
        ax.legend(fontsize=7, loc="lower left")
    fig.savefig(out / "classical_paths.png", dpi=80)
    plt.close(fig)
    print(f"\nwrote {out / 'classical_paths.png'}")
    return {"paths": {f: {m: len(p) - 1 for m, p in d.items()} for f, d in paths.items()}, "losses": losses}


if __name__ == "__main__":
    main()
