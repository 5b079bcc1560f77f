"""Termination modules and tz.minimize (against scipy.optimize.minimize)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch

import torchzero as tz

F64 = torch.float64


def _rosen(x):
    return ((1 - x[:-1]) ** 2).sum() + 100 * ((x[1:] - x[:-1] ** 2) ** 2).sum()


def _steps_until_terminated(criterion, grads, closure_loss=None, max_steps=20):
    w = torch.nn.Parameter(torch.zeros(2, dtype=F64))
    opt = tz.Modular([w], criterion, tz.m.LR(1.0))
    for k in range(max_steps):
        w.grad = grads(k)
        if closure_loss is None:
            opt.step()
        else:
            opt.step(lambda backward=True, k=k: torch.tensor(closure_loss(k), dtype=F64))
        if opt.terminated:
            return k, w.detach().clone()
    return None, w.detach().clone()


def test_after_n_steps():
    k, w = _steps_until_terminated(tz.m.TerminateAfterNSteps(3), lambda k: torch.ones(2, dtype=F64))
    assert k == 3 and w.tolist() == [-3.0, -3.0]  # three steps taken, the fourth terminated


def test_by_gradient_norm():
    k, _ = _steps_until_terminated(tz.m.TerminateByGradientNorm(0.1), lambda k: torch.full((2,), 0.5**k, dtype=F64))
    assert k == 4  # on step 3 ||(0.125, 0.125)|| = 0.177 > 0.1, on step 4 ||(0.0625, 0.0625)|| = 0.088


def test_by_update_norm():
    k, _ = _steps_until_terminated(tz.m.TerminateByUpdateNorm(1e-3), lambda k: torch.full((2,), 0.1**k, dtype=F64))
    # the parameters moved by 0.1^(k-1) per element on step k-1: sqrt(2) 1e-3 > 1e-3, then 1.4e-4
    assert k == 5


def test_on_no_improvement_and_on_loss_reached():
    losses = [5.0, 4.0, 3.0, 3.0, 3.0, 3.0, 2.0]
    k, _ = _steps_until_terminated(tz.m.TerminateOnNoImprovement(n=3), lambda k: torch.ones(2, dtype=F64), lambda k: losses[k])
    assert k == 5
    k, _ = _steps_until_terminated(tz.m.TerminateOnLossReached(3.5), lambda k: torch.ones(2, dtype=F64), lambda k: losses[k])
    assert k == 2


def test_any_and_all():
    grads = lambda k: torch.full((2,), 0.5**k, dtype=F64)  # noqa: E731
    k, _ = _steps_until_terminated(tz.m.TerminateAny(tz.m.TerminateAfterNSteps(10), tz.m.TerminateByGradientNorm(0.1)), grads)
    assert k == 4
    k, _ = _steps_until_terminated(tz.m.TerminateAll(tz.m.TerminateAfterNSteps(6), tz.m.TerminateByGradientNorm(0.1)), grads)
    assert k == 6


def test_a_terminated_optimizer_leaves_the_parameters_and_still_returns_the_loss():
    w = torch.nn.Parameter(torch.ones(2, dtype=F64))
    opt = tz.Modular([w], tz.m.TerminateAfterNSteps(0), tz.m.LR(1.0))
    w.grad = torch.ones(2, dtype=F64)
    assert opt.step(lambda backward=True: torch.tensor(7.0)) == 7.0
    assert opt.terminated and w.tolist() == [1.0, 1.0]
    assert opt.step(lambda backward=True: torch.tensor(8.0)) == 8.0 and w.tolist() == [1.0, 1.0]
    opt.terminated = False  # go on: the criterion still holds, so it terminates again at once
    opt.step()
    assert opt.terminated


PROBLEMS = {
    "rosenbrock-2": (_rosen, np.array([-1.2, 1.0])),
    "rosenbrock-10": (_rosen, np.linspace(-1.0, 1.0, 10)),
    "quadratic-30": (lambda x: 0.5 * (torch.arange(1, 31, dtype=F64) * x * x).sum() + x.sum(), np.ones(30)),
    "beale": (
        lambda x: (1.5 - x[0] + x[0] * x[1]) ** 2 + (2.25 - x[0] + x[0] * x[1] ** 2) ** 2 + (2.625 - x[0] + x[0] * x[1] ** 3) ** 2,
        np.array([1.0, 1.0]),
    ),
}

SCIPY = {"lbfgs": "L-BFGS-B", "bfgs": "BFGS", "cg": "CG"}


def _scipy(f, x0, method):
    def fun(x):
        xt = torch.tensor(x, dtype=F64, requires_grad=True)
        v = f(xt)
        (g,) = torch.autograd.grad(v, xt)
        return float(v.detach()), g.numpy()

    options = {"gtol": 1e-6}
    return scipy.optimize.minimize(fun, x0, jac=True, method=method, options=options)


@pytest.mark.parametrize("method", list(SCIPY))
@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_minimize_solves_what_scipy_solves(problem, method):
    f, x0 = PROBLEMS[problem]
    ref = _scipy(f, x0, SCIPY[method])
    res = tz.minimize(f, torch.tensor(x0, dtype=F64), method=method, tol=1e-6, max_steps=5000)
    assert res.success, res.message
    assert float(res.grad.abs().max()) <= 1e-6
    if ref.success:
        np.testing.assert_allclose(res.x.numpy(), ref.x, atol=1e-4)
        assert res.fun <= ref.fun + 1e-8


def test_minimize_result_is_consistent():
    res = tz.minimize(_rosen, torch.tensor([-1.2, 1.0], dtype=F64))
    x = res.x.clone().requires_grad_()
    value = _rosen(x)
    (grad,) = torch.autograd.grad(value, x)
    assert res.fun == float(value) and torch.equal(res.grad, grad)
    assert res.nfev >= res.nit and res.ngev <= res.nfev


@pytest.mark.parametrize("method", ["lbfgs", "bfgs", "cg"])
def test_minimize_counts_every_evaluation_and_never_repeats_one(method):
    # the objective remembers the last point it evaluated (in reused buffers): f is never called
    # twice in a row at the same x, every call is counted, and a step that moved x is told
    # apart from one that didn't (the run reaches the tolerance instead of stopping early)
    points: list[torch.Tensor] = []

    def f(x):
        points.append(x.detach().clone())
        return _rosen(x)

    res = tz.minimize(f, torch.tensor([-1.2, 1.0], dtype=F64), method=method, tol=1e-6)
    assert res.success, res.message
    assert len(points) == res.nfev
    assert not any(torch.equal(a, b) for a, b in zip(points, points[1:]))


@pytest.mark.parametrize("method", ["lbfgs", "bfgs", "cg"])
def test_minimize_solves_powell_badly_scaled(method):
    # Moré, Garbow & Hillstrom's problem 3: directions of length ~1e4, minimizer ~(1.1e-5, 9.1);
    # a bracket measured in a alone (not in x) stopped CG's line search early here
    def f(x):
        return (1e4 * x[0] * x[1] - 1) ** 2 + (torch.exp(-x[0]) + torch.exp(-x[1]) - 1.0001) ** 2

    ref = scipy.optimize.minimize(
        lambda v: float(f(torch.tensor(v))), np.array([0.0, 1.0]), method={"lbfgs": "L-BFGS-B", "bfgs": "BFGS", "cg": "CG"}[method],
        jac=lambda v: torch.autograd.functional.jacobian(f, torch.tensor(v)).numpy(), options={"gtol": 1e-5},
    )
    assert ref.success  # scipy's counterpart solves it
    res = tz.minimize(f, torch.tensor([0.0, 1.0], dtype=F64), method=method, tol=1e-5, max_steps=2000)
    assert res.success, res.message


def test_minimize_limits_and_errors():
    res = tz.minimize(_rosen, torch.tensor([-1.2, 1.0], dtype=F64), max_steps=3)
    assert not res.success and res.nit == 3 and "maximum number of steps" in res.message
    res = tz.minimize(_rosen, torch.tensor([-1.2, 1.0], dtype=F64), max_evals=5)
    assert not res.success and "maximum number of evaluations" in res.message and res.nfev <= 5 + 30
    res = tz.minimize(_rosen, torch.tensor([-1.2, 1.0], dtype=F64), tz.m.TerminateAfterNSteps(2), tz.m.LBFGS(), tz.m.StrongWolfe())
    assert res.nit == 3 and "termination module" in res.message
    with pytest.raises(ValueError, match="unknown method 'trust-krylov'"):
        tz.minimize(_rosen, torch.zeros(2), method="trust-krylov")
    with pytest.raises(ValueError, match="either modules or method"):
        tz.minimize(_rosen, torch.zeros(2), tz.m.LBFGS(), method="lbfgs")
    with pytest.raises(TypeError, match="x0 must be a floating-point tensor"):
        tz.minimize(_rosen, [1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="f must return a tensor with one element"):
        tz.minimize(lambda x: x * 2, torch.zeros(2))
