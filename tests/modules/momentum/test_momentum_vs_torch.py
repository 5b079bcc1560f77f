"""HeavyBall and NAG against torch.optim.SGD: trajectories over 500+ steps, param groups, missing grads."""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from conftest import make_params, set_grads

SHAPES = ((6, 4), (4,), (), (3, 2, 2))


def _run_pair(tz_modules, torch_opt_fn, steps, shapes=SHAPES, dtype=torch.float32, groups=None, skip=None):
    """Runs torchzero and torch on the same gradients; ``skip(step, i)`` drops parameter i's grad."""
    params = make_params(shapes, dtype=dtype)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params if groups is None else groups(params), *tz_modules)
    topt = torch_opt_fn(ref if groups is None else groups(ref))
    for step in range(steps):
        set_grads(params, step)
        set_grads(ref, step)
        if skip is not None:
            for i, (p, q) in enumerate(zip(params, ref)):
                if skip(step, i):
                    p.grad = None
                    q.grad = None
        opt.step()
        topt.step()
    return params, ref


def _close(params, ref, rtol=1e-5, atol=1e-6):
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=rtol, atol=atol)


@pytest.mark.parametrize(
    "momentum, dampening",
    [(0.9, 0.0), (0.9, 0.5), (0.5, 0.1), (0.99, 0.0), (0.0, 0.0)],
    ids=["m0.9", "m0.9-d0.5", "m0.5-d0.1", "m0.99", "m0"],
)
def test_heavyball_lr_is_sgd_momentum_500_steps(momentum, dampening):
    params, ref = _run_pair(
        [tz.m.HeavyBall(momentum, dampening), tz.m.LR(1e-2)],
        lambda p: torch.optim.SGD(p, lr=1e-2, momentum=momentum, dampening=dampening),
        500,
    )
    _close(params, ref)


def test_heavyball_param_groups_with_different_settings_match_sgd():
    def groups(ps):
        return [
            {"params": ps[:2], "lr": 1e-2, "momentum": 0.9},
            {"params": ps[2:3], "lr": 3e-3, "momentum": 0.5, "dampening": 0.3},
            {"params": ps[3:], "lr": 2e-2, "momentum": 0.95, "dampening": 0.1},
        ]

    params, ref = _run_pair(
        [tz.m.HeavyBall(), tz.m.LR(1e-3)], lambda g: torch.optim.SGD(g, lr=1e-3, momentum=0.9), 600, groups=groups
    )
    _close(params, ref)


def test_heavyball_first_update_is_the_gradient():
    """torchzero 0.3.x counted the first gradient twice (first update 1.9 g); SGD's first update is g."""
    (p,) = make_params([(5,)])
    g = torch.randn(5, dtype=p.dtype)
    p0 = p.detach().clone()
    p.grad = g.clone()
    tz.Modular([p], tz.m.HeavyBall(0.9), tz.m.LR(1.0)).step()
    assert torch.equal(p.detach(), p0 - g)  # SGD's first step, bitwise; 0.3.x gave p0 - 1.9 g


def test_heavyball_missing_grads_match_sgd():
    params, ref = _run_pair(
        [tz.m.HeavyBall(0.9, 0.2), tz.m.LR(1e-2)],
        lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, dampening=0.2),
        100,
        dtype=torch.float64,
        skip=lambda step, i: (step + i) % 3 == 0,
    )
    _close(params, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("momentum", [0.9, 0.5, 0.99], ids=lambda m: f"m{m}")
def test_nag_lr_is_sgd_nesterov_500_steps(momentum):
    params, ref = _run_pair(
        [tz.m.NAG(momentum), tz.m.LR(1e-2)],
        lambda p: torch.optim.SGD(p, lr=1e-2, momentum=momentum, nesterov=True),
        500,
    )
    _close(params, ref)


def test_nag_param_groups_with_different_settings_match_sgd():
    def groups(ps):
        return [
            {"params": ps[:1], "lr": 1e-2, "momentum": 0.9},
            {"params": ps[1:], "lr": 5e-3, "momentum": 0.7},
        ]

    params, ref = _run_pair(
        [tz.m.NAG(), tz.m.LR(1e-3)],
        lambda g: torch.optim.SGD(g, lr=1e-3, momentum=0.9, nesterov=True),
        500,
        groups=groups,
    )
    _close(params, ref)


def test_nag_missing_grads_match_sgd():
    params, ref = _run_pair(
        [tz.m.NAG(0.9), tz.m.LR(1e-2)],
        lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, nesterov=True),
        100,
        dtype=torch.float64,
        skip=lambda step, i: (step * (i + 1)) % 4 == 1,
    )
    _close(params, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["HeavyBall", "NAG"])
def test_target_grad_puts_the_momentum_direction_in_p_grad(name):
    """With target="grad", p.grad holds the direction SGD would step along (here with lr=1)."""
    params, ref = _run_pair(
        [getattr(tz.m, name)(0.9, target="grad"), tz.m.LR(1e-2)],
        lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, nesterov=name == "NAG"),
        50,
        dtype=torch.float64,
    )
    _close(params, ref, rtol=1e-12, atol=1e-12)


def test_lr_scheduler_on_heavyball_matches_sgd():
    def sched(opt):
        return torch.optim.lr_scheduler.StepLR(opt, step_size=100, gamma=0.5)

    params = make_params(SHAPES, dtype=torch.float64)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.HeavyBall(0.9), tz.m.LR(0.05))
    topt = torch.optim.SGD(ref, lr=0.05, momentum=0.9)
    s1, s2 = sched(opt), sched(topt)
    for step in range(500):
        set_grads(params, step)
        set_grads(ref, step)
        opt.step()
        topt.step()
        s1.step()
        s2.step()
    _close(params, ref, rtol=1e-10, atol=1e-10)
