"""Line searches: the accepted steps satisfy their conditions, trial points that give NaN are
stepped back from, and the closure calls are counted."""
from __future__ import annotations

import math

import numpy as np

import pytest
import torch

import torchzero as tz
from torchzero.functional.line_search import backtracking, cubic_minimizer, strong_wolfe

F64 = torch.float64

# 1-D functions phi(a) with phi'(0) < 0, given as (value, derivative)
PHIS = {
    "quadratic": lambda a: ((a - 3) ** 2, 2 * (a - 3)),
    "quartic": lambda a: ((a - 0.3) ** 4 - a, 4 * (a - 0.3) ** 3 - 1),
    "exp": lambda a: (math.exp(-a) + 0.1 * a * a, -math.exp(-a) + 0.2 * a),
    "far-minimum": lambda a: ((a - 1e3) ** 2, 2 * (a - 1e3)),
    "near-minimum": lambda a: ((a - 1e-3) ** 2, 2 * (a - 1e-3)),
}


@pytest.mark.parametrize("interpolation", ["cubic", "quadratic", "bisection"])
@pytest.mark.parametrize("c2", [0.9, 0.1])
@pytest.mark.parametrize("name", list(PHIS))
def test_strong_wolfe_step_satisfies_the_conditions(name, c2, interpolation):
    phi = PHIS[name]
    f0, g0 = phi(0.0)
    found = strong_wolfe(phi, f0, g0, c2=c2, interpolation=interpolation, maxiter=60, maxzoom=60, tol_change=0.0)
    assert found is not None
    a, fa, ga = found
    assert (fa, ga) == phi(a)
    assert fa <= f0 + 1e-4 * a * g0  # sufficient decrease
    assert abs(ga) <= c2 * abs(g0)  # strong curvature


def test_strong_wolfe_bracket_tolerance_is_measured_in_x():
    # along a direction with max|d| = 1e10 the minimizer is at a = 3e-10: the bracket must shrink
    # below tol_change in a, while in x (width * max|d|) its ends are still far apart
    scale = 1e10

    def phi(a):
        return (scale * a - 3) ** 2, 2 * scale * (scale * a - 3)

    f0, g0 = 9.0, -6 * scale
    assert strong_wolfe(phi, f0, g0, c2=0.1, maxzoom=100, interpolation="bisection") is None  # a's width alone
    calls = []
    found = strong_wolfe(phi, f0, g0, c2=0.1, maxzoom=100, interpolation="bisection", d_norm=lambda: calls.append(1) or scale)
    assert found is not None
    a, fa, ga = found
    assert fa <= f0 + 1e-4 * a * g0 and abs(ga) <= 0.1 * abs(g0)
    assert len(calls) == 1  # the norm is asked for once, when the bracket is first measured


def test_strong_wolfe_steps_back_from_a_non_finite_trial():
    calls = []

    def phi(a):
        calls.append(a)
        if a > 2:
            return math.nan, math.nan
        return (a - 1.5) ** 2, 2 * (a - 1.5)

    f0, g0 = phi(0.0)
    a, fa, _ = strong_wolfe(phi, f0, g0, a_init=10.0)
    assert calls[1] == 10.0 and a < 2 and math.isfinite(fa) and fa < f0


def test_backtracking_returns_the_first_armijo_step():
    phi = lambda a: (a - 0.2) ** 2  # noqa: E731
    f0, g0 = phi(0.0), -0.4
    a, fa = backtracking(phi, f0, g0, init=1.0, beta=0.5, c=1e-4)
    # reference: the steps init * beta^k in order, by hand
    first = next(t for t in (0.5**k for k in range(10)) if phi(t) <= f0 + 1e-4 * t * g0)
    assert a == first == 0.25 and fa == phi(0.25)
    assert backtracking(phi, f0, g0, init=1.0, beta=0.9, maxiter=2) is None


@pytest.mark.parametrize("minimum", [-0.7, 0.4, 2.5])
def test_cubic_minimizer_finds_the_local_minimum_of_a_cubic(minimum):
    # p(x) = (x - m)^2 (x - m + 3): local minimum at x = m (local maximum at m - 2)
    p = lambda x: (x - minimum) ** 2 * (x - minimum + 3)  # noqa: E731
    dp = lambda x: 2 * (x - minimum) * (x - minimum + 3) + (x - minimum) ** 2  # noqa: E731
    a, b = minimum - 1.0, minimum + 0.5
    got = cubic_minimizer(a, p(a), dp(a), b, p(b), dp(b), a, b)
    assert got == pytest.approx(minimum, abs=1e-12)
    assert cubic_minimizer(b, p(b), dp(b), a, p(a), dp(a), a, b) == pytest.approx(minimum, abs=1e-12)


def _quadratic(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g, dtype=F64)
    a = a @ a.T / n + 0.5 * torch.eye(n, dtype=F64)
    b = torch.randn(n, generator=g, dtype=F64)
    return lambda x: 0.5 * x @ a @ x - b @ x


def _opt_and_closure(x, f, *modules):
    opt = tz.Modular([x], *modules)

    def closure(backward=True):
        loss = f(x)
        if backward:
            opt.zero_grad()
            loss.backward()
        return loss

    return opt, closure


def _phi(f, x0, d):
    """phi(a) = f(x0 - a d) and its derivative, computed independently of the module."""

    def phi(a):
        x = (x0 - a * d).requires_grad_()
        fx = f(x)
        (g,) = torch.autograd.grad(fx, x)
        return float(fx.detach()), float(-(g @ d))

    return phi


@pytest.mark.parametrize(
    "make, check",
    [
        pytest.param(lambda: [tz.m.StrongWolfe()], "wolfe", id="StrongWolfe"),
        pytest.param(lambda: [tz.m.StrongWolfe(c2=0.1, a_init="first-order")], "wolfe", id="StrongWolfe-first-order"),
        pytest.param(lambda: [tz.m.StrongWolfe(a_init="quadratic-clip")], "wolfe", id="StrongWolfe-quadratic-clip"),
        pytest.param(lambda: [tz.m.LBFGS(), tz.m.StrongWolfe()], "wolfe", id="LBFGS-StrongWolfe"),
        pytest.param(lambda: [tz.m.Backtracking()], "armijo", id="Backtracking"),
        pytest.param(lambda: [tz.m.Backtracking(init=8.0, adaptive=False)], "armijo", id="Backtracking-init8"),
    ],
)
def test_every_accepted_step_satisfies_its_conditions(make, check):
    f = _quadratic()
    x = torch.nn.Parameter(torch.zeros(12, dtype=F64))
    modules = make()
    search = modules[-1]
    opt, closure = _opt_and_closure(x, f, *modules)
    c2 = search.defaults.get("c2")
    for _ in range(10):
        x0 = x.detach().clone()
        opt.step(closure)
        a = float(opt.stats()[f"{type(search).__name__}/step_size"])
        if a == 0:
            break
        d = (x0 - x.detach()) / a  # the direction the search was given
        phi = _phi(f, x0, d)
        f0, g0 = phi(0.0)
        fa, ga = phi(a)
        assert g0 < 0
        assert fa <= f0 + 1e-4 * a * g0 + 1e-12
        if check == "wolfe":
            assert abs(ga) <= c2 * abs(g0) + 1e-12


def test_a_nan_at_a_trial_point_makes_the_search_step_back():
    x = torch.nn.Parameter(torch.tensor([1.0, 1.0], dtype=F64))

    def f(x):
        loss = (x**2).sum()
        return loss if bool(x.abs().max() < 1.5) else loss * math.nan

    opt, closure = _opt_and_closure(x, f, tz.m.StrongWolfe(init_value=4.0, adaptive=False))
    loss = opt.step(closure)  # the first trial lands at x = -7: NaN
    assert torch.isfinite(x).all() and float(f(x.detach())) < float(loss.detach())
    assert float(opt.stats()["StrongWolfe/evaluations"]) >= 2


def test_evaluations_are_counted():
    f = _quadratic()
    x = torch.nn.Parameter(torch.zeros(12, dtype=F64))
    opt, closure = _opt_and_closure(x, f, tz.m.StrongWolfe())
    opt.step(closure)
    stats = opt.stats()
    assert stats["nfev"] == stats["StrongWolfe/evaluations"] + 1 == stats["ngev"]
    opt, closure = _opt_and_closure(x, f, tz.m.Backtracking())
    opt.step(closure)
    stats = opt.stats()
    assert stats["nfev"] == stats["Backtracking/evaluations"] + 1 and stats["ngev"] == 1


def test_a_step_without_descent_leaves_the_parameters():
    x = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=F64))
    opt, closure = _opt_and_closure(x, lambda x: (x**2).sum(), tz.m.Negate(), tz.m.StrongWolfe())
    opt.step(closure)  # the update points uphill
    assert x.tolist() == [1.0, -2.0] and float(opt.stats()["StrongWolfe/step_size"]) == 0.0
    opt2, closure2 = _opt_and_closure(x, lambda x: (x**2).sum(), tz.m.Negate(), tz.m.StrongWolfe(plus_minus=True))
    opt2.step(closure2)  # searched along -d instead
    assert float((x.detach() ** 2).sum()) < 5.0


def test_errors_name_what_to_do():
    x = torch.nn.Parameter(torch.ones(2))
    x.grad = torch.ones(2)
    with pytest.raises(RuntimeError, match="pass a closure to opt.step"):
        tz.Modular([x], tz.m.Backtracking()).step()
    opt = tz.Modular([x], tz.m.Backtracking())

    def no_argument_closure():
        opt.zero_grad()
        loss = (x**2).sum()
        loss.backward()
        return loss

    with pytest.raises(TypeError, match=r"def closure\(backward=True\)"):
        opt.step(no_argument_closure)
    assert x.tolist() == [1.0, 1.0]  # nothing moved
    y = torch.nn.Parameter(torch.ones(2))
    opt = tz.Modular([{"params": [x]}, {"params": [y], "c": 0.5}], tz.m.Backtracking())

    def closure(backward=True):
        loss = (x**2).sum() + (y**2).sum()
        if backward:
            opt.zero_grad()
            loss.backward()
        return loss

    with pytest.raises(ValueError, match="Backtracking: c differs between param groups"):
        opt.step(closure)


def _mgh_directions():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
    from mgh import PROBLEMS as MGH

    return [pytest.param(p, id=p.name) for p in MGH if p.number in (1, 5, 7, 13, 14, 17, 20, 25)]


@pytest.mark.parametrize("problem", _mgh_directions())
def test_strong_wolfe_agrees_with_scipy_on_the_conditions(problem):
    """scipy.optimize.line_search (Wolfe, strong form) and ours along -g from the standard start:
    both steps satisfy the strong Wolfe conditions with the same constants, and where scipy
    accepts the first trial, ours is the same step."""
    import scipy.optimize

    x0 = problem.start()

    def f(x):
        return float(problem.f(torch.from_numpy(x)))

    def grad(x):
        xt = torch.from_numpy(x).requires_grad_()
        (g,) = torch.autograd.grad(problem.f(xt), xt)
        return g.numpy()

    g0 = grad(x0.numpy())
    d = -g0 / max(1.0, float(np.linalg.norm(g0)))  # a unit-length first trial for both
    ref = scipy.optimize.line_search(f, grad, x0.numpy(), d, c1=1e-4, c2=0.9)[0]

    def phi(a):
        x = x0.numpy() + a * d
        return f(x), float(grad(x) @ d)

    f0, s0 = phi(0.0)
    found = strong_wolfe(phi, f0, s0, a_init=1.0, c1=1e-4, c2=0.9)
    assert found is not None
    a, fa, ga = found
    assert fa <= f0 + 1e-4 * a * s0 and abs(ga) <= 0.9 * abs(s0)
    if ref is not None:
        fr, gr = phi(ref)
        assert fr <= f0 + 1e-4 * ref * s0 and abs(gr) <= 0.9 * abs(s0) + 1e-12
        if ref == 1.0:
            assert a == 1.0


@pytest.mark.parametrize("policy", ["skip", "raise"])
def test_a_non_finite_gradient_at_the_start_goes_to_the_policy(policy):
    """The gradient at the start of the step is non-finite: the non-finite policy decides, as for
    any chain (the line search never runs: no trial evaluation, nothing moves, no state)."""
    x = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=F64))
    lbfgs = tz.m.LBFGS()
    opt = tz.Modular([x], lbfgs, tz.m.StrongWolfe(), nonfinite=policy)
    calls = []

    def closure(backward=True):
        calls.append(backward)
        loss = (x**2).sum()
        if backward:
            opt.zero_grad()
            loss.backward()
            x.grad[0] = math.nan
        return loss

    if policy == "raise":
        with pytest.raises(Exception, match="(?i)nan|non-finite|finite"):
            opt.step(closure)
    else:
        with pytest.warns(RuntimeWarning, match="skipped a step"):
            opt.step(closure)
        assert opt.skipped_steps == 1
    assert calls == [True] and x.tolist() == [1.0, 2.0] and lbfgs.global_state == {}
