"""Least squares: the Jacobian and the residual closure against autograd, GaussNewton and
LevenbergMarquardt(GaussNewton) against NumPy transcriptions (tests/reference/least_squares.py)
and against scipy's least_squares(method="lm"), SumOfSquares against the same loss written out."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import torchzero as tz
from reference.least_squares import (
    box_3d,
    exp_decay,
    freudenstein_roth,
    gauss_newton_path,
    levenberg_marquardt_path,
    more_lm_path,
    rosenbrock,
)
from torchzero.core.residuals import ResidualClosure, jacobian

F64 = torch.float64
T = torch.linspace(0.0, 4.0, 20, dtype=F64)
Y = 2.5 * torch.exp(-1.3 * T) + 0.05 * torch.sin(7.0 * T)

TORCH_RESIDUALS = {
    "exp_decay": (lambda x: x[0] * torch.exp(-x[1] * T) - Y, exp_decay, [1.0, 0.5]),
    "rosenbrock": (lambda x: torch.stack([10 * (x[1] - x[0] ** 2), 1 - x[0]]), rosenbrock, [-1.2, 1.0]),
    "freudenstein_roth": (
        lambda x: torch.stack([-13 + x[0] + ((5 - x[1]) * x[1] - 2) * x[1], -29 + x[0] + ((x[1] + 1) * x[1] - 14) * x[1]]),
        freudenstein_roth,
        [0.5, -2.0],
    ),
    "box_3d": (
        lambda x: (lambda t: torch.exp(-t * x[0]) - torch.exp(-t * x[1]) - x[2] * (torch.exp(-t) - torch.exp(-10 * t)))(
            0.1 * torch.arange(1, 11, dtype=F64)
        ),
        box_3d,
        [0.0, 10.0, 20.0],
    ),
}


def _run(chain, name: str, steps: int) -> tuple[list[np.ndarray], tz.Modular]:
    fn, _, x0 = TORCH_RESIDUALS[name]
    x = torch.nn.Parameter(torch.tensor(x0, dtype=F64))
    opt = tz.Modular([x], *chain)
    path = []
    for _ in range(steps):
        before = x.detach().clone()
        opt.step(lambda backward=True: fn(x))
        if not torch.equal(before, x.detach()):
            path.append(x.detach().numpy().copy())
    return path, opt


# ---------------------------------------------------------------------------------- the Jacobian
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "rows"])
def test_jacobian_equals_autograd_functional(batched):
    torch.manual_seed(0)
    a, b = torch.randn(3, 2, dtype=F64, requires_grad=True), torch.randn(4, dtype=F64, requires_grad=True)
    m = torch.randn(5, 6, dtype=F64)

    def residuals(a, b):
        return torch.tanh(m @ torch.cat([a.reshape(-1), b[:0]])) * b.sum() + b[0] ** 3

    with torch.enable_grad():
        r = residuals(a, b)
    got = jacobian(r, [a, b], batched=batched)
    ja, jb = torch.autograd.functional.jacobian(residuals, (a, b))
    torch.testing.assert_close(got, torch.cat([ja.reshape(5, -1), jb.reshape(5, -1)], 1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("keep", [True, False], ids=["from-J", "backward"])
def test_residual_closure_gives_the_sum_of_squares_and_its_gradient(keep):
    torch.manual_seed(1)
    w = torch.randn(3, dtype=F64, requires_grad=True)
    xs = torch.randn(7, 3, dtype=F64)
    calls = []

    class Count:
        closure = None
        nfev = ngev = 0

        def __call__(self, backward=True):
            calls.append(backward)
            return torch.sin(xs @ w) - 0.3

    wrapped = ResidualClosure(Count(), [w], keep_jacobian=keep)
    value = wrapped(True)
    loss = ((torch.sin(xs @ w) - 0.3) ** 2).sum()
    (g,) = torch.autograd.grad(loss, w)
    torch.testing.assert_close(value, loss.detach(), rtol=1e-14, atol=0)
    torch.testing.assert_close(w.grad, g, rtol=1e-12, atol=1e-14)
    assert calls == [False]  # the user's closure is asked for residuals only
    if keep:  # the Jacobian at the same point is kept: no more evaluations
        _, j = wrapped.jacobian()
        assert calls == [False]
        torch.testing.assert_close(j, torch.autograd.functional.jacobian(lambda v: torch.sin(xs @ v) - 0.3, w.detach()))


# ---------------------------------------------------------------------------------- against the references
@pytest.mark.parametrize("name", ["exp_decay", "box_3d"])
def test_gauss_newton_full_steps_match_the_reference(name):
    _, ref, x0 = TORCH_RESIDUALS[name]
    expected = gauss_newton_path(ref, np.array(x0), 6)
    got, _ = _run([tz.m.GaussNewton(reg=0.0)], name, 6)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", list(TORCH_RESIDUALS))
def test_levenberg_marquardt_iterates_match_the_reference(name):
    _, ref, x0 = TORCH_RESIDUALS[name]
    expected = levenberg_marquardt_path(ref, np.array(x0), 25)
    got, _ = _run([tz.m.LevenbergMarquardt(tz.m.GaussNewton(reg=0.0), max_attempts=1)], name, 25)
    # at a zero-residual minimum the last ratios are rounding noise: compare while f is above it
    live = [x for x in expected if ref(x)[0] @ ref(x)[0] > 1e-16]
    assert len(got) >= len(live) > 3
    for a, b in zip(got, live):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", list(TORCH_RESIDUALS))
def test_more_levenberg_marquardt_iterates_match_the_minpack_transcription(name):
    _, ref, x0 = TORCH_RESIDUALS[name]
    expected = more_lm_path(ref, np.array(x0), 30)
    got, _ = _run([tz.m.LevenbergMarquardt(tz.m.GaussNewton(reg=0.0), more=True, max_attempts=1)], name, 30)
    live = [x for x in expected if ref(x)[0] @ ref(x)[0] > 1e-16]
    assert len(got) >= len(live) > 2
    for a, b in zip(got, live):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", list(TORCH_RESIDUALS))
def test_levenberg_marquardt_reaches_scipy_least_squares_lm(name):
    scipy_optimize = pytest.importorskip("scipy.optimize")
    _, ref, x0 = TORCH_RESIDUALS[name]
    res = scipy_optimize.least_squares(lambda v: ref(v)[0], np.array(x0), jac=lambda v: ref(v)[1], method="lm", xtol=1e-12, ftol=1e-12, gtol=1e-12)
    ours = tz.least_squares(TORCH_RESIDUALS[name][0], torch.tensor(x0, dtype=F64), tol=1e-10)
    assert ours.cost <= 2 * res.fun @ res.fun + 1e-12
    # MINPACK's counts, within a few: the same algorithm, stopped at a similar point
    assert ours.nfev + ours.njev <= 1.5 * (res.nfev + res.njev) + 4


def test_gauss_newton_needs_one_residual_and_one_jacobian_per_accepted_point():
    fn, _, x0 = TORCH_RESIDUALS["exp_decay"]
    x = torch.nn.Parameter(torch.tensor(x0, dtype=F64))
    opt = tz.Modular([x], tz.m.LevenbergMarquardt(tz.m.GaussNewton(), init=10.0))
    opt.step(lambda backward=True: fn(x))
    stats = opt.stats()
    # r and J at x (the gradient comes from J), one trial: 2 evaluations of r, 1 Jacobian
    assert (float(stats["nfev"]), float(stats["ngev"]), float(stats["LevenbergMarquardt/attempts"])) == (2.0, 1.0, 1.0)


def test_matrix_free_gauss_newton_equals_the_dense_step():
    torch.manual_seed(2)
    a = torch.randn(30, 6, dtype=F64)
    b = torch.randn(30, dtype=F64)
    steps = []
    for free in (False, True):
        w = torch.nn.Parameter(torch.zeros(6, dtype=F64))
        v = torch.nn.Parameter(torch.ones(2, dtype=F64))
        opt = tz.Modular([w, v], tz.m.GaussNewton(matrix_free=free, tol=1e-12))
        opt.step(lambda backward=True: torch.tanh(a @ w) * v[0] + v[1] - b)
        steps.append(torch.cat([w.detach(), v.detach()]))
    torch.testing.assert_close(steps[1], steps[0], rtol=1e-8, atol=1e-10)


def test_sum_of_squares_lbfgs_equals_lbfgs_on_the_written_out_loss():
    fn, _, x0 = TORCH_RESIDUALS["rosenbrock"]
    paths = []
    for residual in (True, False):
        x = torch.nn.Parameter(torch.tensor(x0, dtype=F64))
        chain = [tz.m.SumOfSquares(), tz.m.LBFGS(), tz.m.StrongWolfe()] if residual else [tz.m.LBFGS(), tz.m.StrongWolfe()]
        opt = tz.Modular([x], *chain)

        def closure(backward=True, x=x, opt=opt, residual=residual):
            if residual:
                return fn(x)
            loss = (fn(x) ** 2).sum()
            if backward:
                opt.zero_grad()
                loss.backward()
            return loss

        paths.append([(opt.step(closure), x.detach().clone())[1] for _ in range(15)])
    for a, b in zip(*paths):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------- errors
def test_a_closure_that_returns_no_tensor_is_named():
    x = torch.nn.Parameter(torch.ones(2, dtype=F64))
    opt = tz.Modular([x], tz.m.GaussNewton())
    with pytest.raises(TypeError, match="residuals as a floating-point tensor"):
        opt.step(lambda backward=True: 1.0)
    assert torch.equal(x.detach(), torch.ones(2, dtype=F64))


def test_detached_residuals_are_refused():
    x = torch.nn.Parameter(torch.ones(2, dtype=F64))
    opt = tz.Modular([x], tz.m.GaussNewton())
    with pytest.raises(RuntimeError, match="not attached"):
        opt.step(lambda backward=True: (x * 2).detach())


def test_dense_gauss_newton_on_too_many_elements_suggests_matrix_free():
    x = torch.nn.Parameter(torch.zeros(10_001))
    opt = tz.Modular([x], tz.m.GaussNewton())
    with pytest.raises(ValueError, match="matrix_free=True"):
        opt.step(lambda backward=True: x[:3] - 1)


def test_matrix_free_cannot_change_in_a_param_group():
    x = torch.nn.Parameter(torch.zeros(2, dtype=F64))
    opt = tz.Modular([{"params": [x], "matrix_free": True}], tz.m.GaussNewton())
    with pytest.raises(ValueError, match="matrix_free is fixed"):
        opt.step(lambda backward=True: x - 1)


# ---------------------------------------------------------------------------------- tz.least_squares
@pytest.mark.parametrize("method", ["lm", "gauss-newton", "lbfgs"])
def test_least_squares_methods_solve_the_exponential_fit(method):
    fn, ref, x0 = TORCH_RESIDUALS["exp_decay"]
    res = tz.least_squares(fn, torch.tensor(x0, dtype=F64), method=method, tol=1e-8)
    assert res.success, res.message
    r, j = ref(res.x.numpy())
    np.testing.assert_allclose(res.fun.numpy(), r, rtol=1e-12, atol=1e-14)
    assert np.abs(2 * j.T @ r).max() <= 1e-8 and res.cost == pytest.approx(r @ r, rel=1e-12)


def test_least_squares_evaluates_an_accepted_trial_point_once():
    fn, _, x0 = TORCH_RESIDUALS["rosenbrock"]
    points = []

    def counted(x):
        points.append(x.detach().clone())
        return fn(x)

    res = tz.least_squares(counted, torch.tensor(x0, dtype=F64))
    assert res.nfev == len(points)
    assert len({tuple(p.tolist()) for p in points}) == len(points)  # no point evaluated twice


def test_least_squares_refuses_bad_arguments():
    x0 = torch.zeros(2, dtype=F64)
    with pytest.raises(ValueError, match="unknown method"):
        tz.least_squares(lambda x: x, x0, method="trf")
    with pytest.raises(ValueError, match="no least-squares module"):
        tz.least_squares(lambda x: x, x0, tz.m.LBFGS())
    with pytest.raises(TypeError, match="floating-point tensor"):
        tz.least_squares(lambda x: 3, x0)
    with pytest.raises(ValueError, match="tol"):
        tz.least_squares(lambda x: x, x0, tol=-1.0)
