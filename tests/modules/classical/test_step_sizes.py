"""BarzilaiBorwein and PolyakStepSize against the formulas written out by hand (NumPy)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import torchzero as tz

F64 = torch.float64
A = np.diag(np.linspace(1.0, 20.0, 6))
B = np.ones(6)


def _f(x):
    a, b = torch.tensor(A), torch.tensor(B)
    return 0.5 * x @ a @ x - b @ x


def _run(module, steps):
    x = torch.nn.Parameter(torch.zeros(6, dtype=F64))
    opt = tz.Modular([x], module)

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
    return out


@pytest.mark.parametrize("kind", ["short", "long", "geom"])
def test_barzilai_borwein_is_its_formula(kind):
    # reference: x_{k+1} = x_k - eta_k g_k, eta_0 = min(1, 1/|g_0|_1), then the BB formula
    x = np.zeros(6)
    ref, x_prev, g_prev = [], None, None
    for k in range(15):
        g = A @ x - B
        if k == 0:
            eta = min(1.0, 1.0 / np.abs(g).sum())
        else:
            s, y = x - x_prev, g - g_prev
            eta = {"short": (s @ y) / (y @ y), "long": (s @ s) / (s @ y), "geom": np.sqrt((s @ y) / (y @ y) * (s @ s) / (s @ y))}[kind]
        x_prev, g_prev = x, g
        x = x - eta * g
        ref.append(x)
    got = _run(tz.m.BarzilaiBorwein(type=kind), 15)
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)


def test_polyak_step_is_its_formula():
    f_star = float(-0.5 * B @ np.linalg.solve(A, B))
    x = np.zeros(6)
    ref = []
    for _ in range(10):
        g = A @ x - B
        f = 0.5 * x @ A @ x - B @ x
        x = x - (f - f_star) / (g @ g) * g
        ref.append(x)
    got = _run(tz.m.PolyakStepSize(f_star=f_star), 10)
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)


def _constant_closure(x, loss):
    def closure(backward=True):
        x.grad = torch.ones(2, dtype=F64)
        return torch.tensor(loss, dtype=F64)

    return closure


def test_polyak_step_is_zero_below_the_estimate_and_capped():
    x = torch.nn.Parameter(torch.ones(2, dtype=F64))
    opt = tz.Modular([x], tz.m.PolyakStepSize(f_star=10.0))
    opt.step(_constant_closure(x, 1.0))
    assert x.tolist() == [1.0, 1.0] and float(opt.stats()["PolyakStepSize/step_size"]) == 0.0
    opt = tz.Modular([x], tz.m.PolyakStepSize(f_star=0.0, max=0.25))
    opt.step(_constant_closure(x, 100.0))
    assert x.tolist() == [0.75, 0.75]
