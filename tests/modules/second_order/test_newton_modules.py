"""Newton and NewtonCG as modules: their iterates against NumPy transcriptions of Nocedal &
Wright on extended Rosenbrock (hand-written derivatives), exactness on a quadratic, the forcing
sequence, descent on negative curvature, and the errors they give."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import torchzero as tz
from reference.newton import eisenstat_walker_2, modified_newton_direction, newton_cg_direction, rosenbrock

F64 = torch.float64
X0 = np.array([-1.2, 1.0, 0.5, 0.8])


def _rosen(x: torch.Tensor) -> torch.Tensor:
    a, b = x[0::2], x[1::2]
    return ((1 - a) ** 2 + 100 * (b - a * a) ** 2).sum()


def _closure(opt, x, f):
    def closure(backward=True):
        loss = f(x)
        if backward:
            opt.zero_grad()
            loss.backward()
        return loss

    return closure


def _run(modules, steps, x0=X0, f=_rosen):
    x = torch.nn.Parameter(torch.tensor(x0, dtype=F64))
    opt = tz.Modular([x], *modules)
    closure = _closure(opt, x, f)
    out = []
    for _ in range(steps):
        opt.step(closure)
        out.append(x.detach().numpy().copy())
    return out, opt


@pytest.mark.parametrize("damping", [0.0, 1.0])
@pytest.mark.parametrize("hessian_method", ["autograd", "central"])
def test_newton_iterates_match_modified_newton_reference(damping, hessian_method):
    # full steps (LR 1) from a point where the Hessian is indefinite at first; finite
    # differences (error ~h^2 relative) are compared over the first steps only, before pure
    # Newton's wild steps amplify their error
    steps = 6 if hessian_method == "autograd" else 2
    got, _ = _run([tz.m.Newton(damping=damping, hessian_method=hessian_method), tz.m.LR(1.0)], steps)
    x = X0.copy()
    # (the modified eigenvalues invert the smallest ones: 1e-6 relative in H moves x by 5e-4)
    tol = 1e-9 if hessian_method == "autograd" else 2e-3
    for step in got:
        _, g, h = rosenbrock(x)
        x = x + modified_newton_direction(h, g, damping)
        np.testing.assert_allclose(step, x, rtol=tol, atol=tol)


@pytest.mark.parametrize("forcing", ["eisenstat-walker", "sqrt", "fixed"])
def test_newton_cg_iterates_match_algorithm_7_1(forcing):
    got, opt = _run([tz.m.NewtonCG(forcing=forcing, tol=1e-3), tz.m.LR(1.0)], 6, x0=np.array([1.2, 1.3, 0.9, 0.7]))
    x = np.array([1.2, 1.3, 0.9, 0.7])
    g_prev = eta_prev = None
    for step in got:
        _, g, h = rosenbrock(x)
        g_norm = np.linalg.norm(g)
        eta = {"fixed": 1e-3, "sqrt": min(0.5, np.sqrt(g_norm)), "eisenstat-walker": eisenstat_walker_2(g_norm, g_prev, eta_prev)}[forcing]
        p, _, _ = newton_cg_direction(h, g, eta * g_norm, x.size)
        x = x + p
        g_prev, eta_prev = g_norm, eta
        np.testing.assert_allclose(step, x, rtol=1e-9, atol=1e-12)
    assert float(opt.stats()["NewtonCG/eta"]) == pytest.approx(eta, rel=1e-12)


@pytest.mark.parametrize("module", [lambda: tz.m.Newton(), lambda: tz.m.NewtonCG(forcing="fixed", tol=1e-12)], ids=["Newton", "NewtonCG"])
def test_one_full_step_solves_a_convex_quadratic(module):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 6))
    h = torch.tensor(a @ a.T + 6 * np.eye(6))
    c = torch.tensor(rng.standard_normal(6))

    def f(x):
        return 0.5 * x @ h @ x - c @ x

    (x,), _ = _run([module(), tz.m.LR(1.0)], 1, x0=np.zeros(6), f=f)
    np.testing.assert_allclose(x, torch.linalg.solve(h, c).numpy(), rtol=1e-10)


def test_newton_cg_stops_on_negative_curvature_with_a_descent_direction():
    # f = x0^2 - x1^2 at (0.1, 1): the first CG direction (the gradient (0.2, -2)) has
    # negative curvature, so the update is the gradient itself
    def f(x):
        return x[0] ** 2 - x[1] ** 2

    x = torch.nn.Parameter(torch.tensor([0.1, 1.0], dtype=F64))
    opt = tz.Modular([x], tz.m.NewtonCG(), tz.m.LR(0.1))
    before = x.detach().clone()
    g = torch.tensor([0.2, -2.0], dtype=F64)
    opt.step(_closure(opt, x, f))
    assert float(opt.stats()["NewtonCG/negative_curvature"]) == 1.0
    torch.testing.assert_close(before - x.detach(), 0.1 * g)


def test_newton_with_more_parameters_than_it_can_form_names_the_size():
    x = torch.nn.Parameter(torch.zeros(10_001, dtype=F64))
    opt = tz.Modular([x], tz.m.Newton())
    with pytest.raises(ValueError, match=r"n = 10,001 elements.*tz\.m\.NewtonCG"):
        opt.step(_closure(opt, x, lambda x: (x**2).sum()))
    assert torch.equal(x.detach(), torch.zeros(10_001, dtype=F64))


@pytest.mark.parametrize("module", [tz.m.Newton, tz.m.NewtonCG])
def test_errors_for_missing_or_detached_closure(module):
    x = torch.nn.Parameter(torch.ones(2, dtype=F64))
    opt = tz.Modular([x], module())
    x.grad = torch.ones(2, dtype=F64)
    with pytest.raises(RuntimeError, match="pass a closure"):
        opt.step()

    def detached(backward=True):
        loss = (x**2).sum()
        if backward:
            opt.zero_grad()
            loss.backward()
        return loss.detach()

    with pytest.raises(RuntimeError, match=r"closure\(False\) must return the loss .* attached to the graph"):
        opt.step(detached)


@pytest.mark.parametrize("module", [tz.m.Newton, tz.m.NewtonCG])
def test_param_groups_must_agree(module):
    a, b = (torch.nn.Parameter(torch.ones(2, dtype=F64)) for _ in range(2))
    key = "damping" if module is tz.m.Newton else "reg"
    opt = tz.Modular([{"params": [a]}, {"params": [b], key: 0.5}], module())
    with pytest.raises(ValueError, match=f"{module.__name__}: {key} differs between param groups"):
        opt.step(_closure(opt, a, lambda _: (a**2).sum() + (b**2).sum()))


def test_complex_parameters_are_refused():
    z = torch.nn.Parameter(torch.ones(2, dtype=torch.complex128))
    opt = tz.Modular([z], tz.m.Newton())
    with pytest.raises(TypeError, match="Newton: parameters must be real"):
        opt.step(_closure(opt, z, lambda z: (z.abs() ** 2).sum()))


@pytest.mark.parametrize(
    ("method", "extra"),
    [pytest.param("newton", {}, id="newton"), pytest.param("newton-cg", {}, id="newton-cg")],
)
def test_minimize_methods_solve_rosenbrock(method, extra):
    res = tz.minimize(_rosen, torch.tensor(X0, dtype=F64), method=method, tol=1e-8, max_steps=500, **extra)
    assert res.success, res.message
    np.testing.assert_allclose(res.x.numpy(), np.ones(4), atol=1e-7)
