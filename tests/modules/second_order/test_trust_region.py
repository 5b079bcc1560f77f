"""Trust-region Newton-CG: Steihaug's CG against a NumPy transcription of Nocedal & Wright's
Algorithm 7.2, the module's iterates against scipy's trust-ncg, the radius rules, and a
non-finite trial."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch

import torchzero as tz
from reference.newton import rosenbrock, steihaug
from torchzero.functional.krylov import steihaug_cg

F64 = torch.float64


def _sym(rng, eigenvalues):
    q, _ = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))
    return q @ np.diag(eigenvalues) @ q.T


@pytest.mark.parametrize(
    ("eigenvalues", "radius"),
    [
        pytest.param([1.0, 2.0, 4.0, 8.0, 16.0], 100.0, id="interior"),
        pytest.param([1.0, 2.0, 4.0, 8.0, 16.0], 0.3, id="boundary"),
        pytest.param([-1.0, 2.0, 4.0, 8.0, 16.0], 2.0, id="negative-curvature"),
        pytest.param([-1.0, -2.0, -4.0, -8.0, -16.0], 1.5, id="negative-definite"),
    ],
)
def test_steihaug_matches_algorithm_7_2(eigenvalues, radius):
    rng = np.random.default_rng(len(eigenvalues) + int(radius * 10))
    h = _sym(rng, eigenvalues)
    g = rng.standard_normal(5)
    res = steihaug_cg(lambda v: torch.tensor(h) @ v, torch.tensor(g), radius, rtol=1e-10)
    p, on_boundary = steihaug(h, g, radius, 1e-10 * np.linalg.norm(g), 5)
    np.testing.assert_allclose(-res.x.numpy(), p, rtol=1e-9, atol=1e-12)
    assert res.hits_boundary == on_boundary
    x = res.x.numpy()
    assert res.model_change == pytest.approx(-g @ x + 0.5 * x @ h @ x, rel=1e-10)  # from the recursion
    assert np.linalg.norm(x) <= radius * (1 + 1e-12)


def _rosen(x):
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


def _distinct(points):
    out = [points[0]]
    for p in points[1:]:
        if not np.array_equal(p, out[-1]):
            out.append(p)
    return out


@pytest.mark.parametrize("x0", [[-1.2, 1.0, 0.5, 0.8], [2.0, -1.0, -0.5, 3.0]], ids=["start-a", "start-b"])
def test_iterates_match_scipy_trust_ncg(x0):
    x0 = np.array(x0)
    seen = []
    scipy.optimize.minimize(
        lambda v: rosenbrock(v)[0], x0, jac=lambda v: rosenbrock(v)[1], hessp=lambda v, p: rosenbrock(v)[2] @ p,
        method="trust-ncg", callback=lambda xk: seen.append(xk.copy()), options={"gtol": 1e-8},
    )
    expected = _distinct([x0, *seen])
    x = torch.nn.Parameter(torch.tensor(x0))
    opt = tz.Modular([x], tz.m.NewtonCGSteihaug())
    closure = _closure(opt, x, _rosen)
    got = [x0]
    for _ in range(len(seen) + 5):
        opt.step(closure)
        got.append(x.detach().numpy().copy())
    got = _distinct(got)
    assert len(got) >= len(expected)  # scipy stops at its tolerance; the steps after it are tiny
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-7)


def _one_dimensional(f, x0, **kwargs):
    x = torch.nn.Parameter(torch.tensor([x0], dtype=F64))
    opt = tz.Modular([x], tz.m.NewtonCGSteihaug(**kwargs))
    opt.step(_closure(opt, x, f))
    return x.detach().item(), {k.split("/")[1]: float(v) for k, v in opt.stats().items() if "/" in k}


def test_radius_grows_after_a_good_step_on_the_boundary():
    # f = x^4 at 1: g = 4, H = 12; radius 0.1 < the Newton step 1/3, so d = 0.1 on the boundary;
    # predicted 4(0.1) - 12(0.01)/2 = 0.34, actual 1 - 0.9^4 = 0.3439: rho > 0.75, radius doubles
    x, stats = _one_dimensional(lambda x: (x**4).sum(), 1.0, init=0.1)
    assert x == pytest.approx(0.9, abs=1e-15)
    assert stats["rho"] == pytest.approx(0.3439 / 0.34, rel=1e-12)
    assert stats["radius"] == pytest.approx(0.2, rel=1e-15) and stats["attempts"] == 1.0
    # inside the region (the Newton step 1/3 < radius 1) the radius stays, whatever rho
    x, stats = _one_dimensional(lambda x: (x**4).sum(), 1.0, init=1.0)
    assert x == pytest.approx(2 / 3, rel=1e-12) and stats["radius"] == 1.0


def test_radius_shrinks_until_a_trial_is_good():
    # f = -x^2 + x^4/4 at 0.1: negative curvature, the step goes to the boundary of a radius of
    # 10, far into the quartic wall; the radius is cut by 4 per failed trial within the step
    x, stats = _one_dimensional(lambda x: (-(x**2) + x**4 / 4).sum(), 0.1, init=10.0)
    assert stats["attempts"] > 1 and stats["rho"] > 0.15
    assert stats["radius"] in [10 * 0.25**k for k in range(1, 10)] or stats["radius"] in [2 * 10 * 0.25**k for k in range(1, 10)]
    assert -(x**2) + x**4 / 4 < -(0.1**2) + 0.1**4 / 4


def test_a_non_finite_trial_shrinks_the_radius_and_is_not_taken():
    # the loss is inf where x1 > 1.05, where the first step (0.15 long, inside a radius of 1000)
    # lands: the radius shrinks by 4 per non-finite trial until the step is cut short of it
    def f(x):
        base = _rosen(x)
        return torch.where(x[1] > 1.05, torch.full_like(base, float("inf")), base)

    x = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=F64))
    opt = tz.Modular([x], tz.m.NewtonCGSteihaug(init=1000.0, max_radius=1e4))
    closure = _closure(opt, x, f)
    before = float(f(x.detach()))
    opt.step(closure)
    stats = opt.stats()
    assert float(stats["NewtonCGSteihaug/attempts"]) > 1
    assert float(f(x.detach())) < before and float(x.detach()[1]) <= 1.05
    assert opt.skipped_steps == 0


@pytest.mark.parametrize("method", ["trust-ncg", "trust-exact", "dogleg"])
def test_minimize_trust_region_methods_solve_rosenbrock(method):
    res = tz.minimize(_rosen, torch.tensor([-1.2, 1.0, 0.5, 0.8], dtype=F64), method=method, tol=1e-8)
    assert res.success, res.message
    np.testing.assert_allclose(res.x.numpy(), np.ones(4), atol=1e-7)
