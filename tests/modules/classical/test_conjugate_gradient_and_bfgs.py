"""CG and the dense quasi-Newton methods against linear CG (exact line search on a quadratic),
the dense updates against their formulas, and the properties they guarantee."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import torchzero as tz
from reference.quasi_newton import bfgs_inverse, dfp_inverse, linear_cg, sr1_inverse
from torchzero.functional.quasi_newton import bfgs_inverse_update, dfp_inverse_update, sr1_inverse_update

from reference.exact_line_search import QuadraticExact

F64 = torch.float64
N = 8


def _quadratic(seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((N, N)))
    a = q @ np.diag(np.geomspace(1, 50, N)) @ q.T
    b = rng.standard_normal(N)
    return a, b


def _iterates(make, a, b, steps):
    at, bt = torch.tensor(a), torch.tensor(b)
    x = torch.nn.Parameter(torch.zeros(N, dtype=F64))
    opt = tz.Modular([x], *make())

    def closure(backward=True):
        loss = 0.5 * x @ at @ x - bt @ x
        if backward:
            opt.zero_grad()
            loss.backward()
        return loss

    out = []
    for _ in range(steps):
        opt.step(closure)
        out.append(x.detach().numpy().copy())
    return out


CG = ["PolakRibiere", "FletcherReeves", "HestenesStiefel", "DaiYuan", "LiuStorey", "HagerZhang"]


@pytest.mark.parametrize("name", CG)
def test_cg_with_exact_line_search_is_linear_cg(name):
    a, b = _quadratic()
    ref = linear_cg(a, b, np.zeros(N), N)
    got = _iterates(lambda: [getattr(tz.m, name)(), QuadraticExact()], a, b, N)
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r, rtol=1e-7, atol=1e-9)
    # and it terminates in at most n iterations: the n-th iterate is the solution
    np.testing.assert_allclose(got[-1], np.linalg.solve(a, b), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("make", [lambda: tz.m.BFGS(init_scale=1.0), lambda: tz.m.DFP(init_scale=1.0)], ids=["BFGS", "DFP"])
def test_bfgs_and_dfp_with_exact_line_search_reproduce_cg(make):
    # Nocedal & Wright, Section 6.1 / Theorem: on a quadratic with exact line searches and
    # H0 = I, the Broyden-class iterates are those of CG
    a, b = _quadratic(1)
    ref = linear_cg(a, b, np.zeros(N), N)
    got = _iterates(lambda: [make(), QuadraticExact()], a, b, N)
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(
    "update, reference",
    [(bfgs_inverse_update, bfgs_inverse), (dfp_inverse_update, dfp_inverse), (sr1_inverse_update, sr1_inverse)],
    ids=["BFGS", "DFP", "SR1"],
)
def test_updates_match_their_formulas_and_the_secant_equation(update, reference):
    rng = np.random.default_rng(3)
    m = rng.standard_normal((5, 5))
    h = m @ m.T + np.eye(5)
    s = rng.standard_normal(5)
    y = (m @ m.T + 2 * np.eye(5)) @ s
    got = update(torch.tensor(h), torch.tensor(s), torch.tensor(y)).numpy()
    np.testing.assert_allclose(got, reference(h, s, y), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got @ y, s, rtol=1e-10, atol=1e-12)  # H y = s


def test_bfgs_inverse_stays_symmetric_positive_definite():
    torch.manual_seed(0)
    x = torch.nn.Parameter(torch.tensor([-1.2, 1.0, 0.5, -0.3], dtype=F64))
    bfgs = tz.m.BFGS()
    opt = tz.Modular([x], bfgs, tz.m.StrongWolfe())

    def closure(backward=True):
        loss = sum((1 - x[i]) ** 2 + 100 * (x[i + 1] - x[i] ** 2) ** 2 for i in range(3))
        if backward:
            opt.zero_grad()
            loss.backward()
        return loss

    for _ in range(40):
        opt.step(closure)
        h = bfgs.global_state.get("H")
        if h is not None:
            torch.testing.assert_close(h, h.T, rtol=1e-12, atol=1e-12)
            assert torch.linalg.eigvalsh(h).min() > 0


def test_sr1_skips_pairs_that_break_its_denominator():
    h = torch.eye(2, dtype=F64)
    s = torch.tensor([1.0, 0.0], dtype=F64)
    y = torch.tensor([1.0, 0.0], dtype=F64)  # s - H y = 0: the update is undefined
    assert sr1_inverse_update(h.clone(), s, y) is None


def test_dense_methods_refuse_too_many_elements():
    x = torch.nn.Parameter(torch.zeros(20_000))
    x.grad = torch.ones(20_000)
    with pytest.raises(ValueError, match=r"BFGS keeps an n x n matrix.*n = 20,000.*LBFGS"):
        tz.Modular([x], tz.m.BFGS(), tz.m.LR(0.1)).step()
    assert torch.count_nonzero(x) == 0


@pytest.mark.parametrize("pairs", [1, 2, 5])
def test_lsr1_compact_form_is_sequential_sr1(pairs):
    from torchzero.modules.quasi_newton.lsr1 import compact_sr1

    rng = np.random.default_rng(pairs)
    n = 7
    m = rng.standard_normal((n, n))
    hess = m @ m.T - 2 * np.eye(n)  # indefinite: SR1's business
    s = [rng.standard_normal(n) for _ in range(pairs)]
    y = [hess @ si for si in s]
    gamma = np.linalg.norm(s[-1]) / np.linalg.norm(y[-1])
    h = gamma * np.eye(n)
    for si, yi in zip(s, y):
        h = sr1_inverse(h, si, yi)
    q = rng.standard_normal(n)
    got = compact_sr1(torch.tensor(q), [torch.tensor(v) for v in s], [torch.tensor(v) for v in y])
    np.testing.assert_allclose(got.numpy(), h @ q, rtol=1e-8, atol=1e-10)


def test_lsr1_reaches_the_minimum_of_a_quadratic():
    a, b = _quadratic(2)
    got = _iterates(lambda: [tz.m.LSR1(history_size=N), tz.m.StrongWolfe(plus_minus=True)], a, b, 4 * N)
    np.testing.assert_allclose(got[-1], np.linalg.solve(a, b), rtol=1e-6, atol=1e-8)
