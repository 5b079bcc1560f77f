"""The stateless second-order pieces: Hessian-vector products and Hessians against
torch.autograd.functional, finite differences at their orders, the Newton solve and CG against
NumPy transcriptions of Nocedal & Wright, and the Eisenstat-Walker forcing term."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reference.newton import eisenstat_walker_2, modified_newton_direction, newton_cg_direction
from torchzero.functional.hessian import fd_hvp, hessian, hvp
from torchzero.functional.krylov import cg_solve, eisenstat_walker
from torchzero.functional.newton import CHOLESKY, EIGVAL_FN, LSTSQ, NONE, SHIFTED, newton_solve

F64 = torch.float64


def _loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A smooth nonconvex function of two tensors of different shapes."""
    return (a.sin() * b[:3].reshape(a.shape)).sum() + (b**4).sum() / 4 + (a @ a.T).trace() * b.sum()


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(3, 1, generator=g, dtype=F64).requires_grad_()
    b = torch.randn(5, generator=g, dtype=F64).requires_grad_()
    return a, b


def _flat_hessian_reference(a, b):
    full = torch.autograd.functional.hessian(lambda x: _loss(x[:3].reshape(3, 1), x[3:]), torch.cat([a.detach().reshape(-1), b.detach()]))
    return full


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hvp_matches_torch_autograd_functional(seed):
    a, b = _inputs(seed)
    grads = torch.autograd.grad(_loss(a, b), [a, b], create_graph=True)
    g = torch.Generator().manual_seed(10 + seed)
    v = [torch.randn(a.shape, generator=g, dtype=F64), torch.randn(b.shape, generator=g, dtype=F64)]
    got = torch.cat([t.reshape(-1) for t in hvp(grads, [a, b], v)])
    expected = _flat_hessian_reference(a, b) @ torch.cat([t.reshape(-1) for t in v])
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("vectorize", [True, False], ids=["batched", "row-by-row"])
def test_hessian_matches_torch_autograd_functional(vectorize):
    a, b = _inputs()
    grads = torch.autograd.grad(_loss(a, b), [a, b], create_graph=True)
    torch.testing.assert_close(hessian(grads, [a, b], vectorize=vectorize), _flat_hessian_reference(a, b), rtol=1e-12, atol=1e-12)


def test_hvp_and_hessian_of_a_parameter_the_loss_ignores_are_zero():
    a, b = _inputs()
    unused = torch.zeros(2, dtype=F64, requires_grad=True)
    grads = torch.autograd.grad(_loss(a, b), [a, b, unused], create_graph=True, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, [a, b, unused])]
    h = hessian(grads, [a, b, unused])
    assert h.shape == (10, 10) and torch.equal(h[8:], torch.zeros(2, 10, dtype=F64))
    out = hvp(grads, [a, b, unused], [torch.ones_like(a), torch.ones_like(b), torch.ones_like(unused)])
    assert torch.equal(out[2], torch.zeros(2, dtype=F64))


@pytest.mark.parametrize(("formula", "order"), [("central", 2), ("forward", 1)])
def test_fd_hvp_error_shrinks_at_the_order_of_its_formula(formula, order):
    a, b = _inputs()
    params = [a, b]
    g = torch.Generator().manual_seed(3)
    v = [torch.randn(a.shape, generator=g, dtype=F64), torch.randn(b.shape, generator=g, dtype=F64)]
    exact = _flat_hessian_reference(a, b) @ torch.cat([t.reshape(-1) for t in v])
    before = [p.detach().clone() for p in params]

    def grad_at():
        return list(torch.autograd.grad(_loss(a, b), params))

    g0 = grad_at()
    errors = []
    for h in (1e-2, 1e-3):
        approx = torch.cat([t.reshape(-1) for t in fd_hvp(grad_at, params, v, h=h, formula=formula, g0=g0)])
        errors.append(float((approx - exact).norm()))
    # ten times smaller h: the error falls by about 10^order
    assert errors[0] / errors[1] == pytest.approx(10**order, rel=0.3)
    assert all(torch.equal(p, q) for p, q in zip(params, before))  # put back bit for bit


def test_fd_hvp_of_a_zero_vector_is_zero_without_evaluations():
    a, b = _inputs()
    calls = []
    out = fd_hvp(lambda: calls.append(1) or [], [a, b], [torch.zeros_like(a), torch.zeros_like(b)])
    assert not calls and all(torch.equal(t, torch.zeros_like(t)) for t in out)


def _sym(rng, n, eigenvalues):
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return q @ np.diag(eigenvalues) @ q.T


@pytest.mark.parametrize(
    ("eigenvalues", "damping", "code"),
    [
        pytest.param([1.0, 2.0, 5.0, 10.0], 0.0, CHOLESKY, id="positive-definite"),
        pytest.param([1.0, 2.0, 5.0, 10.0], 0.5, CHOLESKY, id="positive-definite-damped"),
        pytest.param([-3.0, 0.5, 2.0, 7.0], 0.0, SHIFTED, id="indefinite"),
        pytest.param([-3.0, 0.5, 2.0, 7.0], 1.0, SHIFTED, id="indefinite-damped"),
        pytest.param([0.0, 0.0, 2.0, 7.0], 0.0, SHIFTED, id="singular"),
    ],
)
def test_newton_solve_matches_the_modified_newton_reference(eigenvalues, damping, code):
    rng = np.random.default_rng(len(eigenvalues) + int(10 * damping))
    h = _sym(rng, 4, eigenvalues)
    grad = rng.standard_normal(4)
    x, got_code = newton_solve(torch.tensor(h), torch.tensor(grad), damping)
    assert got_code == code
    np.testing.assert_allclose(-x.numpy(), modified_newton_direction(h, grad, damping), rtol=1e-9, atol=1e-12)
    assert float(x @ torch.tensor(grad)) > 0  # a descent direction for the update x


def test_newton_solve_with_eigval_fn_is_saddle_free():
    rng = np.random.default_rng(0)
    lam = np.array([-3.0, 0.5, 2.0, 7.0])
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    h = q @ np.diag(lam) @ q.T
    grad = rng.standard_normal(4)
    x, code = newton_solve(torch.tensor(h), torch.tensor(grad), eigval_fn=torch.abs)
    assert code == EIGVAL_FN
    np.testing.assert_allclose(x.numpy(), q @ np.diag(1 / np.abs(lam)) @ q.T @ grad, rtol=1e-10)


def test_newton_solve_least_squares_and_non_finite():
    h = torch.full((2, 2), float("nan"), dtype=F64)
    assert newton_solve(h, torch.ones(2, dtype=F64)) == (None, NONE)
    # eigenvalues all 0: no shift possible, least squares (the zero vector for a zero matrix)
    x, code = newton_solve(torch.zeros(2, 2, dtype=F64), torch.ones(2, dtype=F64))
    assert code == LSTSQ and torch.equal(x, torch.zeros(2, dtype=F64))


@pytest.mark.parametrize(
    "eigenvalues",
    [
        pytest.param([1.0, 2.0, 3.0, 5.0, 8.0, 13.0], id="positive-definite"),
        pytest.param([-2.0, 1.0, 3.0, 5.0, 8.0, 13.0], id="indefinite"),
        pytest.param([-2.0, -1.0, -3.0, -5.0, -8.0, -13.0], id="negative-definite"),
    ],
)
@pytest.mark.parametrize("rtol", [1e-1, 1e-8])
def test_cg_solve_matches_newton_cg_reference(eigenvalues, rtol):
    rng = np.random.default_rng(len(eigenvalues))
    h = _sym(rng, 6, eigenvalues)
    grad = rng.standard_normal(6)
    res = cg_solve(lambda v: torch.tensor(h) @ v, torch.tensor(grad), rtol=rtol, maxiter=20)
    p, iterations, negative = newton_cg_direction(h, grad, rtol * np.linalg.norm(grad), 20)
    np.testing.assert_allclose(-res.x.numpy(), p, rtol=1e-9, atol=1e-12)
    assert (res.iterations, res.negative_curvature) == (iterations, negative)
    assert float(res.x @ torch.tensor(grad)) > 0


@pytest.mark.parametrize("history", [(None, None), (2.0, 0.5), (0.1, 0.5), (1.0, 0.9), (0.5, 0.2)], ids=str)
@pytest.mark.parametrize("g_norm", [0.05, 0.5, 3.0])
def test_eisenstat_walker_matches_its_formula(history, g_norm):
    g_prev, eta_prev = history
    assert eisenstat_walker(g_norm, g_prev, eta_prev) == pytest.approx(eisenstat_walker_2(g_norm, g_prev, eta_prev), rel=1e-15)
