"""Rprop against torch.optim.Rprop (backtrack=False) and against the paper's algorithm (backtrack=True).

Riedmiller, M., & Braun, H. (1993). A direct adaptive method for faster backpropagation learning:
the RPROP algorithm. https://doi.org/10.1109/ICNN.1993.298623
"""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from conftest import make_params, set_grads

SHAPES = ((6, 4), (4,), (), (3, 2, 2))


def _run(tz_params, tz_opt, ref_params, ref_opt, steps, missing=None):
    for step in range(steps):
        set_grads(tz_params, step)
        set_grads(ref_params, step)
        if missing is not None and step % 3 == 0:
            tz_params[missing].grad = None
            ref_params[missing].grad = None
        tz_opt.step()
        ref_opt.step()


@pytest.mark.parametrize(
    "lr, etas, step_sizes",
    [(1e-2, (0.5, 1.2), (1e-6, 50)), (1e-2, (0.3, 1.5), (2e-3, 3e-2)), (0.5, (0.5, 1.2), (1e-3, 1.0))],
    ids=["torch-defaults", "tight-bounds", "large-lr"],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
def test_matches_torch_rprop_with_lr_500_steps(lr, etas, step_sizes, dtype):
    """Rprop(nplus, nminus, min/lr, max/lr, backtrack=False) + LR(lr) == torch.optim.Rprop(lr, etas, (min, max))."""
    nminus, nplus = etas
    lo, hi = step_sizes
    params = make_params(SHAPES, dtype=dtype)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.Rprop(nplus, nminus, lb=lo / lr, ub=hi / lr, backtrack=False), tz.m.LR(lr))
    topt = torch.optim.Rprop(ref, lr=lr, etas=etas, step_sizes=step_sizes)
    _run(params, opt, ref, topt, 500)
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64], ids=str)
def test_alpha_as_lr_is_bitwise_torch(dtype):
    """With the step sizes in absolute units (alpha=lr, no LR) the trajectory is torch's, bit for bit."""
    params = make_params(SHAPES, dtype=torch.float32)
    params = [p.detach().to(dtype).requires_grad_() for p in params]
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.Rprop(1.3, 0.4, lb=1e-4, ub=0.1, backtrack=False, alpha=0.01))
    topt = torch.optim.Rprop(ref, lr=0.01, etas=(0.4, 1.3), step_sizes=(1e-4, 0.1), foreach=False)
    _run(params, opt, ref, topt, 500)
    for p, q in zip(params, ref):
        assert torch.equal(p, q)


def test_param_groups_with_different_settings_match_torch():
    params = make_params(((6, 4), (4,), (5,), (2, 2)), dtype=torch.float32)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(
        [
            {"params": params[:2], "lr": 1e-2, "lb": 1e-6 / 1e-2, "ub": 50 / 1e-2},
            {"params": params[2:], "lr": 3e-2, "nplus": 1.5, "nminus": 0.25, "lb": 1e-3 / 3e-2, "ub": 0.1 / 3e-2},
        ],
        tz.m.Rprop(backtrack=False),
        tz.m.LR(1.0),
    )
    topt = torch.optim.Rprop(
        [
            {"params": ref[:2], "lr": 1e-2},
            {"params": ref[2:], "lr": 3e-2, "etas": (0.25, 1.5), "step_sizes": (1e-3, 0.1)},
        ],
    )
    _run(params, opt, ref, topt, 500)
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_missing_gradients_match_torch():
    params = make_params(((4,), (3, 2)), dtype=torch.float64)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.Rprop(backtrack=False, alpha=0.1))
    topt = torch.optim.Rprop(ref, lr=0.1)
    _run(params, opt, ref, topt, 60, missing=1)
    for p, q in zip(params, ref):
        assert torch.equal(p, q)


def _ref_rprop(grads, nplus, nminus, lb, ub, alpha, backtrack):
    """The paper's algorithm (with weight backtracking if ``backtrack``), elementwise, for one tensor.

    Returns the updates u_t (the parameter moves by -u_t), i.e. -Delta w_t of the paper.
    """
    delta = torch.full_like(grads[0], alpha)
    prev_g = torch.zeros_like(grads[0])
    prev_u = torch.zeros_like(grads[0])
    out = []
    for g in grads:
        u = torch.zeros_like(g)
        for i in range(g.numel()):
            s = (g[i] * prev_g[i]).item()
            if s > 0:
                delta[i] = min(delta[i].item() * nplus, ub)
                u[i] = torch.sign(g[i]) * delta[i]
                prev_g[i] = g[i]
            elif s < 0:
                delta[i] = max(delta[i].item() * nminus, lb)
                u[i] = -prev_u[i] if backtrack else 0.0
                prev_g[i] = 0.0
            else:
                u[i] = torch.sign(g[i]) * delta[i]
                prev_g[i] = g[i]
        prev_u = u.clone()
        out.append(u)
    return out


@pytest.mark.parametrize("backtrack", [True, False], ids=["backtrack", "no-backtrack"])
@pytest.mark.parametrize("kw", [dict(), dict(nplus=1.5, nminus=0.3, lb=0.05, ub=3.0, alpha=0.5)], ids=["defaults", "custom"])
def test_matches_the_paper(backtrack, kw):
    full = dict(nplus=1.2, nminus=0.5, lb=1e-6, ub=50.0, alpha=1.0) | kw
    g = torch.Generator().manual_seed(0)
    # a mix of persistent and flipping signs, and exact zeros
    base = torch.randn(8, generator=g, dtype=torch.float64)
    grads = [base + 0.8 * torch.randn(8, generator=g, dtype=torch.float64) for _ in range(40)]
    grads[5][2] = 0.0
    grads[6][2] = 0.0
    mod = tz.m.Rprop(**full, backtrack=backtrack)
    (p,) = make_params([(8,)])
    got = [tz.apply_transform(mod, [gr], params=[p])[0] for gr in grads]
    for a, b in zip(got, _ref_rprop(grads, **full, backtrack=backtrack)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)


def test_backtracking_undoes_the_overshoot_on_a_parabola():
    """On f(x) = x^2 with a too-large step, the flip undoes the step that overshot: x returns exactly."""
    x = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = tz.Modular([x], tz.m.Rprop(alpha=1.5))
    xs = []
    for _ in range(3):
        x.grad = 2 * x.detach()
        opt.step()
        xs.append(x.item())
    assert xs[0] == pytest.approx(-0.5)  # 1 - 1.5 overshoots the minimum
    assert xs[1] == pytest.approx(1.0)  # the sign flipped: the step is undone
    assert xs[2] == pytest.approx(1.0 - 0.75)  # then a step with the halved step size


def test_state_keys():
    (p,) = make_params([(3,)])
    p.grad = torch.ones(3, dtype=p.dtype)
    opt = tz.Modular([p], tz.m.Rprop(), tz.m.LR(0.1))
    opt.step()
    assert set(opt.state_dict()["state"][0]) == {"0.prev", "0.step_size", "0.prev_update"}
    opt2 = tz.Modular([p], tz.m.Rprop(backtrack=False), tz.m.LR(0.1))
    opt2.step()
    assert set(opt2.state_dict()["state"][0]) == {"0.prev", "0.step_size"}
