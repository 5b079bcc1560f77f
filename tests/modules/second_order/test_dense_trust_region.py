"""Dense trust regions (Dogleg, LevenbergMarquardt, TrustCG): their subproblems against NumPy
transcriptions of Nocedal & Wright, their iterates against Algorithm 4.1 and scipy's dogleg, and
a quasi-Newton model matrix."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch

import torchzero as tz
from reference.newton import cubic_model_minimizer, dogleg, exact_trust_region_step, rosenbrock, trust_region_path
from torchzero.functional.trust_region import cauchy_point, cubic_step, dogleg_step, exact_step

F64 = torch.float64


def _sym(rng, eigenvalues):
    q, _ = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))
    return q @ np.diag(eigenvalues) @ q.T


@pytest.mark.parametrize("radius", [0.05, 0.5, 50.0], ids=["small", "middle", "large"])
def test_dogleg_step_matches_section_4_1(radius):
    rng = np.random.default_rng(1)
    b = _sym(rng, [0.5, 1.0, 3.0, 10.0])
    g = rng.standard_normal(4)
    d, on_boundary, predicted = dogleg_step(torch.tensor(g), torch.tensor(b), radius)
    np.testing.assert_allclose(-d.numpy(), dogleg(b, g, radius), rtol=1e-10, atol=1e-13)
    assert on_boundary == (radius < 50.0)
    x = d.numpy()
    assert predicted == pytest.approx(g @ x - 0.5 * x @ b @ x, rel=1e-12)


def test_dogleg_falls_back_to_the_cauchy_point_without_positive_curvature():
    rng = np.random.default_rng(2)
    b = torch.tensor(_sym(rng, [-1.0, 1.0, 3.0]))
    g = torch.tensor(rng.standard_normal(3))
    d, on_boundary, _ = dogleg_step(g, b, 0.7)
    torch.testing.assert_close(d, cauchy_point(g, b, 0.7))
    assert on_boundary and float(d.norm()) == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("eigenvalues", "radius"),
    [
        pytest.param([1.0, 2.0, 5.0, 9.0], 100.0, id="interior"),
        pytest.param([1.0, 2.0, 5.0, 9.0], 0.2, id="boundary"),
        pytest.param([-2.0, 1.0, 5.0, 9.0], 1.0, id="indefinite"),
        pytest.param([-2.0, -1.0, -5.0, -9.0], 0.3, id="negative-definite"),
    ],
)
def test_exact_step_matches_theorem_4_1(eigenvalues, radius):
    rng = np.random.default_rng(len(eigenvalues) + int(10 * radius))
    b = _sym(rng, eigenvalues)
    g = rng.standard_normal(4)
    d, on_boundary, _ = exact_step(torch.tensor(g), torch.tensor(b), radius)
    np.testing.assert_allclose(-d.numpy(), exact_trust_region_step(b, g, radius), rtol=1e-8, atol=1e-10)
    assert on_boundary == (radius != 100.0)


def test_exact_step_in_the_hard_case():
    # g orthogonal to the eigenvector of the least eigenvalue, and d(-lambda_1) inside: the step
    # adds a multiple of that eigenvector to reach the boundary, and is the global minimizer
    b = torch.diag(torch.tensor([-2.0, 1.0, 3.0], dtype=F64))
    g = torch.tensor([0.0, 0.3, 0.6], dtype=F64)
    d, on_boundary, predicted = exact_step(g, b, 1.0)
    assert on_boundary and float(d.norm()) == pytest.approx(1.0, rel=1e-12)
    # d(-lambda_1) = (B + 2I)^+ g in the other coordinates
    torch.testing.assert_close(d[1:], torch.tensor([0.1, 0.12], dtype=F64))
    # no point of the sphere does better (a dense sample of it)
    rng = np.random.default_rng(0)
    pts = rng.standard_normal((20000, 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    values = -(pts @ g.numpy()) + 0.5 * np.einsum("ij,jk,ik->i", pts, b.numpy(), pts)
    assert -predicted <= values.min() + 1e-9


def _closure(opt, x, f):
    def closure(backward=True):
        loss = f(x)
        if backward:
            opt.zero_grad()
            loss.backward()
        return loss

    return closure


def _convex(x):
    """log-sum-exp plus a quadratic: strictly convex, so scipy's dogleg runs everywhere."""
    a = torch.tensor([[1.0, 2.0, -1.0], [-1.5, 0.5, 1.0], [0.3, -2.0, 0.7], [2.0, 1.0, 1.0]], dtype=F64)
    return torch.logsumexp(a @ x, 0) + 0.05 * (x**2).sum() + x[0]


def _np(f):
    def value_grad_hess(v):
        xt = torch.tensor(v, dtype=F64)
        return float(f(xt)), torch.autograd.functional.jacobian(f, xt).numpy(), torch.autograd.functional.hessian(f, xt).numpy()

    return value_grad_hess


def _run(module, f, x0, steps):
    x = torch.nn.Parameter(torch.tensor(x0, dtype=F64))
    opt = tz.Modular([x], module)
    closure = _closure(opt, x, f)
    out = [np.array(x0)]
    for _ in range(steps):
        opt.step(closure)
        if not np.array_equal(x.detach().numpy(), out[-1]):
            out.append(x.detach().numpy().copy())
    return out[1:], opt


def test_dogleg_iterates_match_scipy_dogleg():
    x0 = np.array([3.0, -2.0, 4.0])
    seen = []
    vgh = _np(_convex)
    scipy.optimize.minimize(
        lambda v: vgh(v)[0], x0, jac=lambda v: vgh(v)[1], hess=lambda v: vgh(v)[2], method="dogleg",
        callback=lambda xk: seen.append(xk.copy()), options={"gtol": 1e-10},
    )
    expected = [seen[0]] + [b for a, b in zip(seen, seen[1:]) if not np.array_equal(a, b)]
    got, _ = _run(tz.m.Dogleg(), _convex, x0, len(seen) + 3)
    assert len(got) >= len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize(
    ("module", "step_fn"),
    [
        pytest.param(lambda: tz.m.LevenbergMarquardt(max_attempts=1), exact_trust_region_step, id="LevenbergMarquardt"),
        pytest.param(lambda: tz.m.Dogleg(max_attempts=1), dogleg, id="Dogleg"),
    ],
)
def test_iterates_match_algorithm_4_1(module, step_fn):
    x0 = np.array([1.5, 2.0, 0.7, 0.9])
    expected = trust_region_path(lambda v: rosenbrock(v), x0, step_fn if step_fn is not dogleg else _dogleg_or_cauchy, 30)
    got, _ = _run(module(), lambda x: ((1 - x[0::2]) ** 2 + 100 * (x[1::2] - x[0::2] ** 2) ** 2).sum(), x0, 30)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-8)


def _dogleg_or_cauchy(b, g, radius):
    if np.linalg.eigvalsh(b).min() > 0:
        return dogleg(b, g, radius)
    gbg = g @ b @ g
    tau = 1.0 if gbg <= 0 else min(np.linalg.norm(g) ** 3 / (radius * gbg), 1.0)
    return -tau * radius * g / np.linalg.norm(g)


def test_trust_cg_with_the_exact_hessian_is_newton_cg_steihaug():
    x0 = [-1.2, 1.0, 0.5, 0.8]
    f = lambda x: ((1 - x[0::2]) ** 2 + 100 * (x[1::2] - x[0::2] ** 2) ** 2).sum()  # noqa: E731
    a, _ = _run(tz.m.TrustCG(), f, x0, 25)
    b, _ = _run(tz.m.NewtonCGSteihaug(), f, x0, 25)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("qn", [tz.m.BFGS, tz.m.SR1])
@pytest.mark.parametrize("tr", [tz.m.Dogleg, tz.m.LevenbergMarquardt, tz.m.TrustCG])
def test_quasi_newton_model_matrix(tr, qn):
    # the model matrix is the inverse of the quasi-Newton module's H, updated each step
    f = lambda x: ((1 - x[0::2]) ** 2 + 100 * (x[1::2] - x[0::2] ** 2) ** 2).sum()  # noqa: E731
    module = tr(qn())
    got, opt = _run(module, f, [-1.2, 1.0], 300)
    h = module.children["hess_module"].global_state["H"]
    assert torch.allclose(torch.linalg.inv(h), torch.linalg.inv(h).T)
    np.testing.assert_allclose(got[-1], [1.0, 1.0], atol=1e-4)


def test_hess_module_must_give_a_model_matrix():
    with pytest.raises(TypeError, match=r"Dogleg: hess_module must give a model matrix"):
        tz.m.Dogleg(tz.m.Adam())


def test_too_many_parameters_suggests_newton_cg_steihaug():
    x = torch.nn.Parameter(torch.zeros(10_001, dtype=F64))
    opt = tz.Modular([x], tz.m.LevenbergMarquardt())
    with pytest.raises(ValueError, match=r"n = 10,001 elements.*NewtonCGSteihaug"):
        opt.step(_closure(opt, x, lambda x: (x**2).sum()))


@pytest.mark.parametrize("eigenvalues", [[1.0, 2.0, 5.0], [-2.0, 1.0, 3.0], [-1.0, -2.0, -3.0]], ids=["definite", "indefinite", "negative"])
@pytest.mark.parametrize("sigma", [0.1, 1.0, 10.0])
def test_cubic_step_is_the_global_minimizer(eigenvalues, sigma):
    rng = np.random.default_rng(int(10 * sigma))
    b = _sym(rng, eigenvalues)
    g = rng.standard_normal(3)
    d, reduction = cubic_step(torch.tensor(g), torch.tensor(b), sigma)
    np.testing.assert_allclose(-d.numpy(), cubic_model_minimizer(b, g, sigma), rtol=1e-8, atol=1e-10)
    x = d.numpy()
    assert reduction == pytest.approx(g @ x - 0.5 * x @ b @ x - sigma / 3 * np.linalg.norm(x) ** 3, rel=1e-12)
    # lambda = sigma |d| makes B + lambda I positive semidefinite (Theorem 3.1)
    assert np.linalg.eigvalsh(b).min() + sigma * np.linalg.norm(x) >= -1e-10


def test_cubic_step_in_the_hard_case():
    b = torch.diag(torch.tensor([-2.0, 1.0, 3.0], dtype=F64))
    g = torch.tensor([0.0, 0.3, 0.6], dtype=F64)
    d, reduction = cubic_step(g, b, 1.0)
    assert float(d.norm()) == pytest.approx(2.0, rel=1e-12)  # lambda = -lambda_1 = sigma |d|
    rng = np.random.default_rng(0)
    pts = rng.standard_normal((50000, 3)) * rng.uniform(0, 3, (50000, 1))
    values = -(pts @ g.numpy()) + 0.5 * np.einsum("ij,jk,ik->i", pts, b.numpy(), pts) + np.linalg.norm(pts, axis=1) ** 3 / 3
    assert -reduction <= values.min() + 1e-9


def test_cubic_regularization_halves_sigma_after_a_very_good_step():
    # f = x^4 at 1 with sigma = 1: the cubic model's step, rho > 0.75, so 1/sigma doubles
    x = torch.nn.Parameter(torch.tensor([1.0], dtype=F64))
    opt = tz.Modular([x], tz.m.CubicRegularization())
    opt.step(_closure(opt, x, lambda x: (x**4).sum()))
    stats = {k.split("/")[-1]: float(v) for k, v in opt.stats().items() if k.startswith("CubicRegularization/")}
    d, reduction = cubic_step(torch.tensor([4.0], dtype=F64), torch.tensor([[12.0]], dtype=F64), 1.0)
    assert x.item() == pytest.approx(1 - d.item(), rel=1e-12)
    assert stats["rho"] == pytest.approx((1 - (1 - d.item()) ** 4) / reduction, rel=1e-10)
    assert stats["rho"] > 0.75 and stats["radius"] == 2.0


@pytest.mark.parametrize("hess_module", [None, tz.m.BFGS], ids=["exact", "BFGS"])
def test_cubic_regularization_solves_rosenbrock(hess_module):
    f = lambda x: ((1 - x[0::2]) ** 2 + 100 * (x[1::2] - x[0::2] ** 2) ** 2).sum()  # noqa: E731
    got, _ = _run(tz.m.CubicRegularization(None if hess_module is None else hess_module()), f, [-1.2, 1.0, 0.5, 0.8], 400)
    np.testing.assert_allclose(got[-1], np.ones(4), atol=1e-5)
