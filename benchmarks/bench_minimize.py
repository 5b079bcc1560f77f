"""torchzero's classical methods against scipy.optimize and torch.optim.LBFGS, on the
Moré-Garbow-Hillstrom test problems and on extended Rosenbrock / Powell up to 10^6 variables.

    python benchmarks/bench_minimize.py                     # the whole set, about two minutes
    python benchmarks/bench_minimize.py --sizes 100 10000   # skip n = 10^6
    python benchmarks/bench_minimize.py --json out.json --plot out.png
    python benchmarks/bench_minimize.py --docs out.json      # the tables of the docs page

Every method gets the same function (written with torch ops, float64), its gradient by autograd,
the same gradient tolerance (``--gtol``, on the infinity norm, which is scipy's ``gtol``) and the
same limit on iterations. Per problem and method it prints whether the problem was solved (the
gradient tolerance met, or f at the paper's minimum to the digits it gives), the final f and
infinity norm of the gradient, the evaluations of f and of the gradient, and the wall time.
Below the table: the geometric mean over the problems both solve of torchzero's evaluations
over scipy's, per method pair, and, at the large sizes, the time per iteration against
torch.optim.LBFGS and scipy's L-BFGS-B. Then the second-order methods (Newton-CG, trust-region
Newton-CG, LevenbergMarquardt with Moré's and with N&W's radius rules, Dogleg, Newton) against scipy's Newton-CG, trust-ncg,
trust-krylov, trust-exact and dogleg,
counting evaluations of f alone, of the gradient, and Hessian(-vector) products, one each.
Last, least squares: ``tz.least_squares(method="lm")`` (LevenbergMarquardt(GaussNewton(),
more=True)) against ``scipy.optimize.least_squares(method="lm")`` (MINPACK) on the same
problems in residual form, counting evaluations of the residuals and of the Jacobian, one each.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import scipy.optimize
import torch

sys.path.insert(0, str(Path(__file__).parent))
import torchzero as tz  # noqa: E402
from mgh import PROBLEMS, Problem, extended  # noqa: E402

F64 = torch.float64


@dataclass
class Run:
    problem: str
    method: str
    solved: bool
    f: float
    gnorm: float
    nfev: int
    ngev: int
    nit: int
    seconds: float
    trace: list[float] = field(default_factory=list)  # f at each evaluation
    nhev: int = 0  # Hessian-vector products, or Hessians (Newton, trust-exact, dogleg)

    @property
    def evaluations(self) -> int:
        """f, gradient and Hessian(-vector) evaluations together (an HVP counts as a gradient)."""
        return self.nfev + self.ngev + self.nhev


def _grad_inf(problem: Problem, x: torch.Tensor) -> tuple[float, float]:
    x = x.detach().clone().requires_grad_()
    v = problem.f(x)
    (g,) = torch.autograd.grad(v, x)
    return float(v.detach()), float(g.abs().max())


def _solved(problem: Problem, f: float, gnorm: float, gtol: float) -> bool:
    """The gradient tolerance met, or f at the paper's minimum: within 1e-5 relative of a
    nonzero one (the paper gives six digits), or below 1e-10 for a zero one."""
    if gnorm <= gtol:
        return True
    if problem.f_min is None:
        return False
    return f - problem.f_min <= 1e-5 * abs(problem.f_min) if problem.f_min else f <= 1e-10


def run_tz(problem: Problem, method: str, gtol: float, max_steps: int, trace: bool) -> Run:
    values: list[float] = []

    def f(x: torch.Tensor) -> torch.Tensor:
        v = problem.f(x)
        if trace:
            values.append(float(v.detach()))
        return v

    t0 = time.perf_counter()
    res = tz.minimize(f, problem.start(), method=method, tol=gtol, max_steps=max_steps)
    seconds = time.perf_counter() - t0
    fx, gnorm = _grad_inf(problem, res.x)
    return Run(problem.name, f"torchzero {method}", _solved(problem, fx, gnorm, gtol), fx, gnorm, res.nfev, res.ngev, res.nit, seconds, values)


def run_scipy(problem: Problem, method: str, gtol: float, max_steps: int, trace: bool) -> Run:
    values: list[float] = []

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        xt = torch.from_numpy(x).requires_grad_()
        v = problem.f(xt)
        (g,) = torch.autograd.grad(v, xt)
        if trace:
            values.append(float(v.detach()))
        return float(v.detach()), g.numpy()

    options: dict[str, float] = {"gtol": gtol, "maxiter": max_steps}
    if method == "L-BFGS-B":  # stop on the gradient as the others do, not on a small relative decrease
        options.update(ftol=0.0, maxfun=10 * max_steps)
    t0 = time.perf_counter()
    res = scipy.optimize.minimize(fun, problem.start().numpy(), jac=True, method=method, options=options)
    seconds = time.perf_counter() - t0
    fx, gnorm = _grad_inf(problem, torch.from_numpy(res.x))
    nfev = int(res.nfev)
    return Run(problem.name, f"scipy {method}", _solved(problem, fx, gnorm, gtol), fx, gnorm, nfev, int(res.get("njev", nfev)), int(res.nit), seconds, values)


def run_torch_lbfgs(problem: Problem, gtol: float, max_steps: int, trace: bool) -> Run:
    values: list[float] = []
    x = torch.nn.Parameter(problem.start())
    opt = torch.optim.LBFGS([x], lr=1, max_iter=max_steps, max_eval=10 * max_steps, tolerance_grad=gtol, tolerance_change=0.0,
                            history_size=10, line_search_fn="strong_wolfe")
    evals = [0]

    def closure() -> torch.Tensor:
        opt.zero_grad()
        v = problem.f(x)
        v.backward()
        evals[0] += 1
        if trace:
            values.append(float(v.detach()))
        return v

    t0 = time.perf_counter()
    opt.step(closure)
    seconds = time.perf_counter() - t0
    fx, gnorm = _grad_inf(problem, x)
    nit = int(opt.state[x].get("n_iter", 0))
    return Run(problem.name, "torch.optim.LBFGS", _solved(problem, fx, gnorm, gtol), fx, gnorm, evals[0], evals[0], nit, seconds, values)


#: second-order chains without a method string of their own
SECOND_ORDER_CHAINS: dict[str, Callable[[], list[object]]] = {
    "lm-nw": lambda: [tz.m.LevenbergMarquardt()],
}


def run_tz_second_order(problem: Problem, method: str, gtol: float, max_steps: int) -> Run:
    t0 = time.perf_counter()
    if method in SECOND_ORDER_CHAINS:
        res = tz.minimize(problem.f, problem.start(), *SECOND_ORDER_CHAINS[method](), tol=gtol, max_steps=max_steps)
    else:
        res = tz.minimize(problem.f, problem.start(), method=method, tol=gtol, max_steps=max_steps)
    seconds = time.perf_counter() - t0
    fx, gnorm = _grad_inf(problem, res.x)
    # counted as scipy's callbacks are: evaluations of f alone (every gradient evaluation of
    # minimize's objective runs f too: res.nfev - res.ngev of them are alone), of the gradient,
    # and Hessian-vector products
    return Run(
        problem.name, f"torchzero {method}", _solved(problem, fx, gnorm, gtol), fx, gnorm, res.nfev - res.ngev, res.ngev, res.nit, seconds,
        nhev=res.nhev,
    )


def run_scipy_second_order(problem: Problem, method: str, gtol: float, max_steps: int) -> Run:
    """scipy with separate f, gradient and Hessian(-vector) callbacks, each counted, stopped by
    a callback as soon as max|g| <= gtol at an iterate (scipy's own criteria differ between these
    methods: Newton-CG has none on the gradient)."""
    counts = {"f": 0, "g": 0, "h": 0}

    def fun(x: np.ndarray) -> float:
        counts["f"] += 1
        return float(problem.f(torch.from_numpy(x)))

    def jac(x: np.ndarray) -> np.ndarray:
        counts["g"] += 1
        xt = torch.from_numpy(x).requires_grad_()
        (g,) = torch.autograd.grad(problem.f(xt), xt)
        return g.numpy()

    def hessp(x: np.ndarray, v: np.ndarray) -> np.ndarray:
        counts["h"] += 1
        return torch.autograd.functional.hvp(problem.f, torch.from_numpy(x), torch.from_numpy(v))[1].numpy()

    def hess(x: np.ndarray) -> np.ndarray:
        counts["h"] += 1
        return torch.autograd.functional.hessian(problem.f, torch.from_numpy(x)).numpy()

    def callback(intermediate_result: scipy.optimize.OptimizeResult) -> None:
        if _grad_inf(problem, torch.from_numpy(intermediate_result.x))[1] <= gtol:
            raise StopIteration

    kwargs: dict[str, object] = {"hess": hess} if method in ("trust-exact", "dogleg") else {"hessp": hessp}
    options: dict[str, float] = {"maxiter": max_steps}
    if method == "Newton-CG":
        options["xtol"] = 1e-14
    else:
        options["gtol"] = 1e-14
    t0 = time.perf_counter()
    try:
        res = scipy.optimize.minimize(fun, problem.start().numpy(), jac=jac, method=method, callback=callback, options=options, **kwargs)
        x, nit = res.x, int(res.nit)
    except (ValueError, np.linalg.LinAlgError):  # dogleg: "Hessian is not positive definite"
        return Run(problem.name, f"scipy {method}", False, math.nan, math.nan, counts["f"], counts["g"], 0, time.perf_counter() - t0, nhev=counts["h"])
    seconds = time.perf_counter() - t0
    fx, gnorm = _grad_inf(problem, torch.from_numpy(x))
    return Run(problem.name, f"scipy {method}", _solved(problem, fx, gnorm, gtol), fx, gnorm, counts["f"], counts["g"], nit, seconds, nhev=counts["h"])


class _Stop(Exception):
    """Raised by scipy's Jacobian callback once the gradient tolerance is met."""


def run_tz_least_squares(problem: Problem, gtol: float, max_steps: int) -> Run:
    t0 = time.perf_counter()
    res = tz.least_squares(problem.residuals, problem.start(), method="lm", tol=gtol, max_steps=max_steps)
    seconds = time.perf_counter() - t0
    fx, gnorm = _grad_inf(problem, res.x)
    return Run(problem.name, "torchzero lm", _solved(problem, fx, gnorm, gtol), fx, gnorm, res.nfev, res.njev, res.nit, seconds)


def run_scipy_least_squares(problem: Problem, gtol: float, max_steps: int) -> Run:
    """MINPACK's lmder through scipy, with counted residual and Jacobian callbacks, stopped as
    soon as the Jacobian is asked for at a point where max|2 J^T r| <= gtol (scipy's own
    tolerances set to 1e-15, so that this one decides)."""
    counts = {"f": 0, "j": 0}
    at: list[np.ndarray] = []

    def fun(x: np.ndarray) -> np.ndarray:
        counts["f"] += 1
        return problem.residuals(torch.from_numpy(x)).numpy()

    def jac(x: np.ndarray) -> np.ndarray:
        counts["j"] += 1
        xt = torch.from_numpy(x.copy())
        j = torch.autograd.functional.jacobian(problem.residuals, xt)
        if float((2 * j.T @ problem.residuals(xt)).abs().max()) <= gtol:
            at.append(x.copy())
            raise _Stop
        return j.numpy()

    t0 = time.perf_counter()
    try:
        res = scipy.optimize.least_squares(
            fun, problem.start().numpy(), jac=jac, method="lm", ftol=1e-15, xtol=1e-15, gtol=1e-15, max_nfev=100 * max_steps
        )
        x, nit = res.x, int(res.njev)
    except _Stop:
        x, nit = at[-1], counts["j"]
    seconds = time.perf_counter() - t0
    fx, gnorm = _grad_inf(problem, torch.from_numpy(x))
    return Run(problem.name, "scipy lm", _solved(problem, fx, gnorm, gtol), fx, gnorm, counts["f"], counts["j"], nit, seconds)


LEAST_SQUARES_PAIRS = [("torchzero lm", "scipy lm")]


def least_squares_set(gtol: float, max_steps: int) -> list[Run]:
    runs = []
    for p in PROBLEMS:
        runs.append(run_tz_least_squares(p, gtol, max_steps))
        runs.append(run_scipy_least_squares(p, gtol, max_steps))
    return runs


def least_squares_table(runs: list[Run]) -> str:
    """Per problem: residual + Jacobian evaluations of each, "no (k)" unsolved."""
    by = {(r.problem, r.method): r for r in runs}
    out = ["| problem | torchzero lm (r + J) | scipy lm (r + J) |", "|---|---:|---:|"]
    for p in PROBLEMS:
        cells = []
        for method in ("torchzero lm", "scipy lm"):
            r = by.get((p.name, method))
            cells.append("" if r is None else (f"{r.nfev} + {r.ngev}" if r.solved else f"no ({r.nfev} + {r.ngev})"))
        out.append(f"| {p.name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


SECOND_ORDER_PAIRS = [
    ("torchzero newton-cg", "scipy Newton-CG"),
    ("torchzero trust-ncg", "scipy trust-ncg"),
    ("torchzero trust-ncg", "scipy trust-krylov"),
    ("torchzero trust-exact", "scipy trust-exact"),
    ("torchzero lm-nw", "scipy trust-exact"),
    ("torchzero dogleg", "scipy dogleg"),
    ("torchzero newton", "scipy trust-exact"),
]


def second_order_set(gtol: float, max_steps: int) -> list[Run]:
    runs = []
    for p in PROBLEMS:
        for method in ("newton-cg", "trust-ncg", "trust-exact", "lm-nw", "dogleg", "newton"):
            runs.append(run_tz_second_order(p, method, gtol, max_steps))
        for method in ("Newton-CG", "trust-ncg", "trust-krylov", "trust-exact", "dogleg"):
            runs.append(run_scipy_second_order(p, method, gtol, max_steps))
    return runs


PAIRS = [("torchzero lbfgs", "scipy L-BFGS-B"), ("torchzero bfgs", "scipy BFGS"), ("torchzero cg", "scipy CG"), ("torchzero lbfgs", "torch.optim.LBFGS")]


def small_set(gtol: float, max_steps: int, trace: bool) -> list[Run]:
    runs = []
    for p in PROBLEMS:
        for method in ("lbfgs", "bfgs", "cg"):
            runs.append(run_tz(p, method, gtol, max_steps, trace))
        for method in ("L-BFGS-B", "BFGS", "CG"):
            runs.append(run_scipy(p, method, gtol, max_steps, trace))
        runs.append(run_torch_lbfgs(p, gtol, max_steps, trace))
    return runs


def large_set(sizes: list[int], iterations: int, repeats: int) -> list[Run]:
    """A fixed number of iterations (no tolerance) at each size: time per iteration, the
    fastest of ``repeats`` runs of each method, the methods interleaved (the machine's speed
    drifts)."""
    runs = []
    for n in sizes:
        for kind in ("rosenbrock", "powell"):
            p = extended(kind, n)
            best: list[Run | None] = [None, None, None]
            for _ in range(repeats):
                for i, run in enumerate((
                    lambda: run_tz(p, "lbfgs", 0.0, iterations, False),
                    lambda: run_scipy(p, "L-BFGS-B", 0.0, iterations, False),
                    lambda: run_torch_lbfgs(p, 0.0, iterations, False),
                )):
                    r = run()
                    prev = best[i]
                    if prev is None or r.seconds / max(r.nit, 1) < prev.seconds / max(prev.nit, 1):
                        best[i] = r
            runs.extend(r for r in best if r is not None)
    return runs


def geometric_mean_ratios(
    runs: list[Run], pairs: list[tuple[str, str]] | None = None, count: Callable[[Run], int] = lambda r: r.nfev
) -> dict[str, tuple[float, int, list[str]]]:
    """Per pair: geometric mean of evaluations (``count``, ours / theirs) over problems both
    solve, how many, and the problems the reference solves and ours doesn't."""
    by = {(r.problem, r.method): r for r in runs}
    problems = list(dict.fromkeys(r.problem for r in runs))
    out = {}
    for ours, theirs in PAIRS if pairs is None else pairs:
        logs, missed = [], []
        for p in problems:
            a, b = by.get((p, ours)), by.get((p, theirs))
            if a is None or b is None:
                continue
            if b.solved and not a.solved:
                missed.append(p)
            if a.solved and b.solved:
                logs.append(math.log(max(count(a), 1) / max(count(b), 1)))
        out[f"{ours} / {theirs}"] = (math.exp(sum(logs) / len(logs)) if logs else math.nan, len(logs), missed)
    return out


SECOND_ORDER_COLUMNS = [
    ("torchzero newton-cg", "torchzero NewtonCG"), ("scipy Newton-CG", "scipy Newton-CG"),
    ("torchzero trust-ncg", "torchzero NewtonCGSteihaug"), ("scipy trust-ncg", "scipy trust-ncg"),
    ("scipy trust-krylov", "scipy trust-krylov"), ("torchzero trust-exact", "torchzero LevenbergMarquardt(more=True)"),
    ("torchzero lm-nw", "torchzero LevenbergMarquardt (N&W rules)"), ("scipy trust-exact", "scipy trust-exact"),
    ("torchzero dogleg", "torchzero Dogleg"), ("scipy dogleg", "scipy dogleg"),
    ("torchzero newton", "torchzero Newton"),
]


def second_order_table(runs: list[Run]) -> str:
    """Per problem and method: f + gradient + Hessian(-vector) evaluations, "no (k)" unsolved."""
    by = {(r.problem, r.method): r for r in runs}
    out = ["| problem | " + " | ".join(label for _, label in SECOND_ORDER_COLUMNS) + " |", "|---|" + "---:|" * len(SECOND_ORDER_COLUMNS)]
    for p in PROBLEMS:
        cells = []
        for method, _ in SECOND_ORDER_COLUMNS:
            r = by.get((p.name, method))
            cells.append("" if r is None else str(r.evaluations) if r.solved else f"no ({r.evaluations})")
        out.append(f"| {p.name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def table(runs: list[Run]) -> str:
    lines = ["| problem | method | solved | f | max\\|g\\| | f evals | g evals | iterations | seconds |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    last = None
    for r in runs:
        name = r.problem if r.problem != last else ""
        last = r.problem
        lines.append(f"| {name} | {r.method} | {'yes' if r.solved else '**no**'} | {r.f:.6g} | {r.gnorm:.2g} | {r.nfev} | {r.ngev} | {r.nit} | {r.seconds:.3f} |")
    return "\n".join(lines)


def plot(runs: list[Run], path: Path, problems: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f_min = {p.name: (p.f_min or 0.0) for p in PROBLEMS}
    fig, axes = plt.subplots(1, len(problems), figsize=(4.2 * len(problems), 3.6), layout="constrained")
    for ax, name in zip(np.atleast_1d(axes), problems):
        for r in runs:
            if r.problem != name or not r.trace:
                continue
            best = np.minimum.accumulate(np.array(r.trace) - f_min[name])
            ax.semilogy(np.arange(1, len(best) + 1), np.maximum(best, 1e-16), label=r.method, lw=1.2)
        ax.set(title=name, xlabel="evaluations of f", ylabel="best f - f*")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.savefig(path, dpi=90)
    plt.close(fig)


DOC_COLUMNS = [
    ("torchzero lbfgs", "torchzero LBFGS"), ("scipy L-BFGS-B", "scipy L-BFGS-B"), ("torch.optim.LBFGS", "torch LBFGS"),
    ("torchzero bfgs", "torchzero BFGS"), ("scipy BFGS", "scipy BFGS"), ("torchzero cg", "torchzero CG"), ("scipy CG", "scipy CG"),
]


def docs_tables(data: dict[str, object]) -> str:
    """The tables of docs/guide/classical.md from a ``--json`` file's contents."""
    runs = [Run(**r) for r in data["runs"]]  # type: ignore[union-attr]
    small = {p.name for p in PROBLEMS}
    by = {(r.problem, r.method): r for r in runs}
    out = ["| problem | " + " | ".join(label for _, label in DOC_COLUMNS) + " |", "|---|" + "---:|" * len(DOC_COLUMNS)]
    for p in PROBLEMS:
        cells = []
        for method, _ in DOC_COLUMNS:
            r = by.get((p.name, method))
            cells.append("" if r is None else str(r.nfev) if r.solved else f"no ({r.nfev})")
        out.append(f"| {p.name} | " + " | ".join(cells) + " |")
    out += ["", "| torchzero / reference | ratio | problems | the reference solves, torchzero doesn't |", "|---|---:|---:|---|"]
    for pair, v in data["ratios"].items():  # type: ignore[union-attr]
        out.append(f"| {pair} | {v['geomean']:.3f} | {v['problems']} | {', '.join(v['missed']) or 'none'} |")
    second = [Run(**r) for r in data.get("second_order_runs", [])]  # type: ignore[union-attr]
    if second:
        out += ["", second_order_table(second)]
        out += ["", "| torchzero / reference | ratio | problems | the reference solves, torchzero doesn't |", "|---|---:|---:|---|"]
        for pair, v in data["second_order_ratios"].items():  # type: ignore[union-attr]
            out.append(f"| {pair} | {v['geomean']:.3f} | {v['problems']} | {', '.join(v['missed']) or 'none'} |")
    lsq = [Run(**r) for r in data.get("least_squares_runs", [])]  # type: ignore[union-attr]
    if lsq:
        out += ["", least_squares_table(lsq)]
        out += ["", "| torchzero / reference | ratio | problems | the reference solves, torchzero doesn't |", "|---|---:|---:|---|"]
        for pair, v in data["least_squares_ratios"].items():  # type: ignore[union-attr]
            out.append(f"| {pair} | {v['geomean']:.3f} | {v['problems']} | {', '.join(v['missed']) or 'none'} |")
    large = [r for r in runs if r.problem not in small]
    out += ["", "| problem | torchzero | scipy L-BFGS-B | torch.optim.LBFGS | torchzero / torch | torchzero / scipy |", "|---|---:|---:|---:|---:|---:|"]
    for i in range(0, len(large), 3):
        ours, sp, th = large[i : i + 3]
        per = [r.seconds / max(r.nit, 1) for r in (ours, sp, th)]
        out.append(f"| {ours.problem} | {per[0]:.4f} | {per[1]:.4f} | {per[2]:.4f} | {per[0] / per[2]:.2f} | {per[0] / per[1]:.2f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gtol", type=float, default=1e-5, help="gradient tolerance, infinity norm (default: 1e-5)")
    parser.add_argument("--max-steps", type=int, default=5000, help="iterations at most on the small set (default: 5000)")
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 10_000, 1_000_000], help="sizes of the extended problems (default: 100 10000 1000000)")
    parser.add_argument("--iterations", type=int, default=50, help="iterations timed at each size (default: 50)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per method at each size, the fastest reported (default: 5)")
    parser.add_argument("--json", type=Path, help="write the runs and the summary to this file")
    parser.add_argument("--plot", type=Path, help="write a convergence plot (f - f* against evaluations) to this PNG")
    parser.add_argument("--no-second-order", dest="second_order", action="store_false", help="skip the second-order and least-squares methods")
    parser.add_argument("--docs", type=Path, help="print the docs page's tables from this --json file and exit")
    args = parser.parse_args(argv)
    if args.docs is not None:
        print(docs_tables(json.loads(args.docs.read_text())))
        return {}
    torch.set_num_threads(max(1, torch.get_num_threads()))

    print(f"torch {torch.__version__}, scipy {scipy.__version__}, torchzero {tz.__version__}, float64, {torch.get_num_threads()} threads")
    runs = small_set(args.gtol, args.max_steps, trace=args.plot is not None)
    print(f"\nMoré-Garbow-Hillstrom problems, gtol={args.gtol:g} (infinity norm)\n")
    print(table(runs))
    ratios = geometric_mean_ratios(runs)
    print("\nevaluations of f, geometric mean over the problems both solve (< 1: torchzero needs fewer):")
    for pair, (ratio, count, missed) in ratios.items():
        print(f"  {pair}: {ratio:.3f} over {count} problems; the reference solves and torchzero doesn't: {missed or 'none'}")

    large = large_set(args.sizes, args.iterations, args.repeats) if args.sizes else []
    if large:
        print(f"\nextended problems, {args.iterations} iterations each: seconds per iteration (fastest of {args.repeats} runs)")
        print("| problem | torchzero lbfgs | scipy L-BFGS-B | torch.optim.LBFGS | vs torch | vs scipy |")
        print("|---|---:|---:|---:|---:|---:|")
        for i in range(0, len(large), 3):
            ours, sp, th = large[i : i + 3]
            per = [r.seconds / max(r.nit, 1) for r in (ours, sp, th)]
            print(f"| {ours.problem} | {per[0]:.4f} | {per[1]:.4f} | {per[2]:.4f} | {per[0] / per[2]:.2f} | {per[0] / per[1]:.2f} |")
    if args.plot is not None:
        plot(runs, args.plot, ["Rosenbrock", "Wood", "Powell singular", "Osborne 1"])
        print(f"\nwrote {args.plot}")
    second = second_order_set(args.gtol, args.max_steps) if args.second_order else []
    second_ratios = geometric_mean_ratios(second, SECOND_ORDER_PAIRS, count=lambda r: r.evaluations) if second else {}
    if second:
        print(f"\nsecond-order methods, gtol={args.gtol:g}: evaluations of f + gradient + Hessian(-vector) products\n")
        print(second_order_table(second))
        print("\nevaluations (f + g + Hessian-vector products), geometric mean over the problems both solve:")
        for pair, (ratio, count, missed) in second_ratios.items():
            print(f"  {pair}: {ratio:.3f} over {count} problems; the reference solves and torchzero doesn't: {missed or 'none'}")
    lsq = least_squares_set(args.gtol, args.max_steps) if args.second_order else []
    lsq_ratios = geometric_mean_ratios(lsq, LEAST_SQUARES_PAIRS, count=lambda r: r.nfev + r.ngev) if lsq else {}
    if lsq:
        print(f"\nleast squares, gtol={args.gtol:g}: evaluations of the residuals + of the Jacobian\n")
        print(least_squares_table(lsq))
        print("\nevaluations (r + J), geometric mean over the problems both solve:")
        for pair, (ratio, count, missed) in lsq_ratios.items():
            print(f"  {pair}: {ratio:.3f} over {count} problems; the reference solves and torchzero doesn't: {missed or 'none'}")
    summary: dict[str, object] = {
        "ratios": {k: {"geomean": v[0], "problems": v[1], "missed": v[2]} for k, v in ratios.items()},
        "second_order_ratios": {k: {"geomean": v[0], "problems": v[1], "missed": v[2]} for k, v in second_ratios.items()},
        "least_squares_ratios": {k: {"geomean": v[0], "problems": v[1], "missed": v[2]} for k, v in lsq_ratios.items()},
    }
    if args.json is not None:
        payload = {
            "runs": [asdict(r) | {"trace": []} for r in runs + large], "second_order_runs": [asdict(r) for r in second],
            "least_squares_runs": [asdict(r) for r in lsq], **summary,
        }
        args.json.write_text(json.dumps(payload, indent=1))
        print(f"wrote {args.json}")
    return summary


if __name__ == "__main__":
    main()
