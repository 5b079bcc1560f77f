"""Nonlinear least squares: fitting curves with Gauss-Newton + Levenberg-Marquardt, next to
``scipy.optimize.curve_fit``.

Two models are fitted to noisy data: an exponential decay with an offset,
$y = a e^{-b t} + c$, and a Gaussian peak on a linear background,
$y = h e^{-(t - \\mu)^2 / 2 s^2} + k t + d$. torchzero's side is
``tz.Modular([p], tz.m.LevenbergMarquardt(tz.m.GaussNewton(), more=True))`` with a closure that
returns the residuals (here through ``tz.least_squares(method="lm")``, which builds that chain);
scipy's is ``curve_fit`` (MINPACK's Levenberg-Marquardt, with the
Jacobian by finite differences, as users call it) and ``curve_fit`` with the exact Jacobian.
The script prints the fitted parameters, the residual sums of squares and the evaluations, and
draws the data and both fits into ``curve_fit.png``.

    python examples/curve_fit.py                # a second
    python examples/curve_fit.py --steps 10 --out /tmp/cf
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import torchzero as tz

F64 = torch.float64


def exp_decay(t: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return p[0] * torch.exp(-p[1] * t) + p[2]


def peak(t: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return p[0] * torch.exp(-((t - p[1]) ** 2) / (2 * p[2] ** 2)) + p[3] * t + p[4]


#: name: (model, true parameters, starting guess, t range)
MODELS: dict[str, tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], list[float], list[float], tuple[float, float]]] = {
    "exponential decay": (exp_decay, [2.5, 1.3, 0.4], [1.0, 0.5, 0.0], (0.0, 5.0)),
    "Gaussian peak": (peak, [3.0, 4.2, 0.6, 0.15, 1.0], [2.0, 4.0, 1.0, 0.0, 0.0], (0.0, 10.0)),
}


def data(model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], true: list[float], span: tuple[float, float], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(*span, 80, dtype=F64)
    y = model(t, torch.tensor(true, dtype=F64)) + 0.05 * torch.randn(80, generator=g, dtype=F64)
    return t, y


def fit_torchzero(model: Callable[..., torch.Tensor], t: torch.Tensor, y: torch.Tensor, start: list[float], steps: int) -> tuple[np.ndarray, int, int]:
    """The fit with ``tz.least_squares`` (``LevenbergMarquardt(GaussNewton(), more=True)``), to
    a gradient of 1e-8; the parameters, evaluations of the residuals and Jacobians."""
    res = tz.least_squares(lambda p: model(t, p) - y, torch.tensor(start, dtype=F64), method="lm", tol=1e-8, max_steps=steps)
    return res.x.numpy(), res.nfev, res.njev


def fit_scipy(model: Callable[..., torch.Tensor], t: torch.Tensor, y: torch.Tensor, start: list[float], exact_jacobian: bool) -> tuple[np.ndarray, int, int]:
    """``scipy.optimize.curve_fit`` (method "lm"); its parameters, calls of the model and of the Jacobian."""
    import scipy.optimize

    calls = [0, 0]

    def f(tt: np.ndarray, *p: float) -> np.ndarray:
        calls[0] += 1
        return model(torch.from_numpy(tt), torch.tensor(p, dtype=F64)).numpy()

    def jac(tt: np.ndarray, *p: float) -> np.ndarray:
        calls[1] += 1
        return torch.autograd.functional.jacobian(lambda q: model(torch.from_numpy(tt), q), torch.tensor(p, dtype=F64)).numpy()

    popt, _ = scipy.optimize.curve_fit(f, t.numpy(), y.numpy(), p0=start, jac=jac if exact_jacobian else None, method="lm")
    return popt, calls[0], calls[1]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100, help="Levenberg-Marquardt steps at most (default: 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise (default: 0)")
    parser.add_argument("--out", default="out/curve_fit", help="output folder for the picture (default: out/curve_fit)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    results: dict[str, Any] = {}
    for name, (model, true, start, span) in MODELS.items():
        t, y = data(model, true, span, args.seed)
        ours, nfev, njev = fit_torchzero(model, t, y, start, args.steps)
        theirs, calls, _ = fit_scipy(model, t, y, start, exact_jacobian=False)
        theirs_j, calls_j, jacs = fit_scipy(model, t, y, start, exact_jacobian=True)

        def sse(p: np.ndarray, model: Callable[..., torch.Tensor] = model, t: torch.Tensor = t, y: torch.Tensor = y) -> float:
            return float(((model(t, torch.from_numpy(np.asarray(p, dtype=np.float64))) - y) ** 2).sum())

        print(f"{name}: true parameters {np.round(true, 4).tolist()}")
        print(f"   torchzero lm                {np.round(ours, 4).tolist()}  SSE {sse(ours):.6f}  model {nfev}, Jacobian {njev}")
        print(f"   scipy curve_fit             {np.round(theirs, 4).tolist()}  SSE {sse(theirs):.6f}  model {calls} (Jacobian by differences)")
        print(f"   scipy curve_fit, jac=exact  {np.round(theirs_j, 4).tolist()}  SSE {sse(theirs_j):.6f}  model {calls_j}, Jacobian {jacs}")
        results[name] = dict(torchzero=ours, scipy=theirs, sse_torchzero=sse(ours), sse_scipy=sse(theirs), t=t, y=y, model=model)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 3.6), layout="constrained")
    for ax, (name, r) in zip(np.atleast_1d(axes), results.items()):
        t, y, model = r["t"], r["y"], r["model"]
        ax.plot(t, y, ".", color="0.6", label="data")
        ax.plot(t, model(t, torch.from_numpy(r["torchzero"])), lw=2.2, label="torchzero LevenbergMarquardt(GaussNewton())")
        ax.plot(t, model(t, torch.from_numpy(np.asarray(r["scipy"], dtype=np.float64))), "--", lw=1.4, label="scipy curve_fit")
        ax.set(title=name, xlabel="t", ylabel="y")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(out / "curve_fit.png", dpi=90)
    plt.close(fig)
    print(f"\nwrote {out / 'curve_fit.png'}")
    return results


if __name__ == "__main__":
    main()
