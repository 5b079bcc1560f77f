"""Hutchinson's diagonal estimate against the exact diagonal, and AdaHessian and SophiaH
against NumPy transcriptions of their papers' algorithms (with the exact Hessian and the same
random vectors), their resume of the generator, and their settings."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import torchzero as tz
from torchzero.functional.hessian import hutchinson_diagonal, rademacher_like

F64 = torch.float64


def _f(x: torch.Tensor) -> torch.Tensor:
    """A smooth nonconvex function whose Hessian has off-diagonal terms."""
    return (x.sin() * x.roll(1)).sum() + 0.25 * (x**4).sum() + x.prod()


def test_hutchinson_mean_converges_to_the_diagonal():
    x = torch.tensor([0.3, -1.2, 0.8, 2.0], dtype=F64, requires_grad=True)
    (g,) = torch.autograd.grad(_f(x), x, create_graph=True)
    exact = torch.autograd.functional.hessian(_f, x.detach()).diagonal()
    gen = torch.Generator().manual_seed(0)
    estimates = torch.stack([hutchinson_diagonal([g], [x], gen)[0] for _ in range(4000)])
    # unbiased: the mean approaches diag(H) at the rate of its standard error
    err = (estimates.mean(0) - exact).abs()
    assert bool((err <= 5 * estimates.std(0) / np.sqrt(4000) + 1e-12).all())


def test_hutchinson_is_exact_for_a_diagonal_hessian():
    x = torch.tensor([1.0, 2.0, 3.0], dtype=F64, requires_grad=True)
    (g,) = torch.autograd.grad((x**3).sum(), x, create_graph=True)
    out = hutchinson_diagonal([g], [x], torch.Generator().manual_seed(5), n_samples=3)
    torch.testing.assert_close(out[0], 6 * x.detach())


def _draws(seed, n, steps):
    gen = torch.Generator().manual_seed(seed)
    return [rademacher_like([torch.zeros(n, dtype=F64)], gen)[0].numpy() for _ in range(steps)]


def _run(module, x0, steps, lr):
    x = torch.nn.Parameter(torch.tensor(x0, dtype=F64))
    opt = tz.Modular([x], module, tz.m.LR(lr))

    def closure(backward=True):
        loss = _f(x)
        if backward:
            opt.zero_grad()
            loss.backward()
        return loss

    out = []
    for _ in range(steps):
        opt.step(closure)
        out.append(x.detach().numpy().copy())
    return out, opt


def _grad_hess(v):
    xt = torch.tensor(v, dtype=F64)
    return torch.autograd.functional.jacobian(_f, xt).numpy(), torch.autograd.functional.hessian(_f, xt).numpy()


X0 = [0.3, -1.2, 0.8, 2.0]


@pytest.mark.parametrize(("update_freq", "power"), [(1, 1.0), (3, 0.5)])
def test_adahessian_matches_algorithm_1(update_freq, power):
    b1, b2, eps, lr = 0.9, 0.999, 1e-4, 0.05
    got, _ = _run(tz.m.AdaHessian(hessian_power=power, update_freq=update_freq), X0, 12, lr)
    zs = iter(_draws(0, 4, 12))
    x, m, v, d = np.array(X0), np.zeros(4), np.zeros(4), None
    for t, step in enumerate(got, start=1):
        g, h = _grad_hess(x)
        if (t - 1) % update_freq == 0:
            z = next(zs)
            d = z * (h @ z)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * d * d
        x = x - lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)) ** (power / 2) + eps)
        np.testing.assert_allclose(step, x, rtol=1e-10, atol=1e-12)


def test_sophia_h_matches_its_algorithm():
    b1, b2, gamma, eps, lr, k = 0.96, 0.99, 0.01, 1e-12, 0.02, 3
    got, _ = _run(tz.m.SophiaH(update_freq=k), X0, 10, lr)
    zs = iter(_draws(0, 4, 10))
    x, m, hd = np.array(X0), np.zeros(4), np.zeros(4)
    for t, step in enumerate(got, start=1):
        g, h = _grad_hess(x)
        if (t - 1) % k == 0:
            z = next(zs)
            hd = b2 * hd + (1 - b2) * z * (h @ z)
        m = b1 * m + (1 - b1) * g
        x = x - lr * np.clip(m / np.maximum(gamma * hd, eps), -1, 1)
        np.testing.assert_allclose(step, x, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("module", [lambda: tz.m.AdaHessian(update_freq=2), lambda: tz.m.SophiaH(update_freq=2)], ids=["AdaHessian", "SophiaH"])
def test_resume_continues_the_random_draws(module):
    straight, _ = _run(module(), X0, 8, 0.05)
    first, opt = _run(module(), X0, 3, 0.05)
    sd = opt.state_dict()
    x = torch.nn.Parameter(torch.tensor(first[-1], dtype=F64))
    opt2 = tz.Modular([x], module(), tz.m.LR(0.05))
    opt2.load_state_dict(sd)

    def closure(backward=True):
        loss = _f(x)
        if backward:
            opt2.zero_grad()
            loss.backward()
        return loss

    for i in range(5):
        opt2.step(closure)
        np.testing.assert_array_equal(x.detach().numpy(), straight[3 + i])
