"""WeightDecay (coupled and decoupled, by position) against torch.optim; DirectWeightDecay's definition."""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from torchzero.functional import cpu_kernels
from conftest import make_params, set_grads
from training import mlp_data, rosenbrock, run_mlp, run_rosenbrock

SHAPES = ((6, 4), (4,), (), (3, 2, 2))


def _run_pair(tz_modules, torch_opt_fn, steps, dtype=torch.float32, groups=None, fused=None):
    params = make_params(SHAPES, dtype=dtype)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params if groups is None else groups(params), *tz_modules, fused=fused)
    topt = torch_opt_fn(ref if groups is None else groups(ref))
    for step in range(steps):
        set_grads(params, step)
        set_grads(ref, step)
        opt.step()
        topt.step()
    return params, ref


def _close(params, ref, rtol=1e-5, atol=1e-6):
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=rtol, atol=atol)


# ------------------------------------------------------------------------------ coupled: before momentum
@pytest.mark.parametrize(
    "wd, momentum, dampening", [(1e-2, 0.9, 0.0), (0.1, 0.5, 0.2), (1e-3, 0.0, 0.0)], ids=["wd1e-2-m0.9", "wd0.1-m0.5-d0.2", "wd1e-3-plain"]
)
def test_weight_decay_before_heavyball_is_sgd_weight_decay_500_steps(wd, momentum, dampening):
    params, ref = _run_pair(
        [tz.m.WeightDecay(wd), tz.m.HeavyBall(momentum, dampening), tz.m.LR(1e-2)],
        lambda p: torch.optim.SGD(p, lr=1e-2, momentum=momentum, dampening=dampening, weight_decay=wd),
        500,
    )
    _close(params, ref)


def test_weight_decay_before_nag_is_sgd_nesterov_weight_decay():
    params, ref = _run_pair(
        [tz.m.WeightDecay(5e-2), tz.m.NAG(0.9), tz.m.LR(1e-2)],
        lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, nesterov=True, weight_decay=5e-2),
        500,
    )
    _close(params, ref)


def test_coupled_param_groups_with_different_settings_match_sgd():
    def groups(ps):
        return [
            {"params": ps[:2], "lr": 1e-2, "weight_decay": 0.1, "momentum": 0.9},
            {"params": ps[2:3], "lr": 3e-2, "weight_decay": 0.0, "momentum": 0.5},
            {"params": ps[3:], "lr": 5e-3, "weight_decay": 1e-2, "momentum": 0.8, "dampening": 0.1},
        ]

    params, ref = _run_pair(
        [tz.m.WeightDecay(1e-3), tz.m.HeavyBall(), tz.m.LR(1e-3)],
        lambda g: torch.optim.SGD(g, lr=1e-3, momentum=0.9, weight_decay=1e-3),
        600,
        groups=groups,
    )
    _close(params, ref)


def test_coupled_before_adam_is_adam_weight_decay():
    params, ref = _run_pair(
        [tz.m.WeightDecay(1e-2), tz.m.Adam(0.9, 0.99), tz.m.LR(1e-2)],
        lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.9, 0.99), weight_decay=1e-2),
        500,
    )
    _close(params, ref)


# ------------------------------------------------------------------------------ decoupled: after Adam (AdamW)
# ``Adam, WeightDecay, LR`` has a fused form: by default Modular runs it through torch's fused AdamW
# kernel; ``fused=False`` runs the general chain. Both are compared with torch.optim.AdamW.
# The general chain adds wd * p to Adam's direction and takes one step, where AdamW decays the
# parameter first (p *= 1 - lr * wd) and then takes the Adam step: the same math (float64 agrees to
# ~1e-14), rounded differently in float32 (~1.5e-5 relative drift after 500 steps). So the
# trajectories are compared in float64 at rtol 1e-10, and in float32 at rtol 1e-4.
PATHS = pytest.mark.parametrize("fused", [None, False], ids=["fused-path", "general-path"])
ADAMW_GRID = [(1e-2, 1e-2), (0.1, 1e-3), (0.5, 3e-2)]


@PATHS
@pytest.mark.parametrize("wd, lr", ADAMW_GRID, ids=["wd1e-2-lr1e-2", "wd0.1-lr1e-3", "wd0.5-lr3e-2"])
def test_adam_weight_decay_lr_is_adamw_500_steps(wd, lr, fused):
    params, ref = _run_pair(
        [tz.m.Adam(0.9, 0.999), tz.m.WeightDecay(wd), tz.m.LR(lr)],
        lambda p: torch.optim.AdamW(p, lr=lr, betas=(0.9, 0.999), weight_decay=wd),
        500,
        dtype=torch.float64,
        fused=fused,
    )
    _close(params, ref, rtol=1e-10, atol=1e-12)


@PATHS
def test_adam_weight_decay_lr_is_adamw_float32(fused):
    params, ref = _run_pair(
        [tz.m.Adam(0.9, 0.999), tz.m.WeightDecay(1e-2), tz.m.LR(1e-2)],
        lambda p: torch.optim.AdamW(p, lr=1e-2, betas=(0.9, 0.999), weight_decay=1e-2),
        500,
        fused=fused,
    )
    _close(params, ref, rtol=1e-4, atol=1e-5)


@PATHS
def test_adamw_param_groups_with_different_settings(fused):
    def groups(ps):
        return [
            {"params": ps[:2], "lr": 1e-2, "weight_decay": 0.1},
            {"params": ps[2:], "lr": 3e-3, "weight_decay": 0.0},
        ]

    params, ref = _run_pair(
        [tz.m.Adam(), tz.m.WeightDecay(1e-2), tz.m.LR(1e-3)],
        lambda g: torch.optim.AdamW(g, lr=1e-3, weight_decay=1e-2),
        500,
        dtype=torch.float64,
        groups=groups,
        fused=fused,
    )
    _close(params, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernel", ["cpu-kernel", "torch-kernel"])
def test_adamw_chain_takes_the_fused_path(monkeypatch, kernel):
    calls = []
    if kernel == "torch-kernel":
        monkeypatch.setattr(cpu_kernels, "library", lambda: None)
    elif cpu_kernels.library() is None:
        pytest.skip("no C compiler here")
    real = torch._fused_adamw_
    monkeypatch.setattr(torch, "_fused_adamw_", lambda *a, **k: (calls.append(k["weight_decay"]), real(*a, **k))[1])
    real_own = cpu_kernels.adam_
    monkeypatch.setattr(cpu_kernels, "adam_", lambda *a: (calls.append(a[5][0]["weight_decay"]), real_own(*a))[1])
    params = make_params(SHAPES, dtype=torch.float32)
    opt = tz.Modular(params, tz.m.Adam(), tz.m.WeightDecay(0.1), tz.m.LR(1e-2))
    set_grads(params, 0)
    opt.step()
    assert calls == [0.1]


@pytest.mark.parametrize(
    "wd",
    [lambda: tz.m.WeightDecay(0.1, ord=1), lambda: tz.m.WeightDecay(0.1, target="grad")],
    ids=["ord1", "target-grad"],
)
def test_weight_decay_without_fused_form_runs_the_general_chain(wd, monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "_fused_adamw_", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(torch, "_fused_adam_", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(cpu_kernels, "adam_", lambda *a, **k: calls.append(1))
    params = make_params(SHAPES, dtype=torch.float32)
    opt = tz.Modular(params, tz.m.Adam(), wd(), tz.m.LR(1e-2))
    set_grads(params, 0)
    opt.step()
    assert not calls and "0.exp_avg" in opt.state[params[0]]


def test_adamw_follows_an_lr_schedule_like_torch():
    """Decoupled decay is multiplied by LR, so it follows the scheduler exactly as AdamW's does."""
    params = make_params(SHAPES, dtype=torch.float64)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.Adam(), tz.m.WeightDecay(0.1), tz.m.LR(1e-2))
    topt = torch.optim.AdamW(ref, lr=1e-2, weight_decay=0.1)
    s1 = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=500)
    s2 = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=500)
    for step in range(500):
        set_grads(params, step)
        set_grads(ref, step)
        opt.step(), topt.step(), s1.step(), s2.step()
    _close(params, ref, rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------------------ the decay term
def _apply(module, u, p):
    return tz.apply_transform(module, [u], params=[p])[0]


@pytest.mark.parametrize("ord", [1, 1.5, 2, 3], ids=lambda o: f"ord{o}")
def test_decay_term_is_the_gradient_of_the_penalty(ord):
    """WeightDecay adds the gradient of wd/ord * sum |x|^ord."""
    (p,) = make_params([(20,)])
    u = torch.randn(20, dtype=p.dtype)
    out = _apply(tz.m.WeightDecay(0.3, ord=ord), u.clone(), p)
    x = p.detach().clone().requires_grad_()
    (0.3 / ord * x.abs().pow(ord).sum()).backward()
    torch.testing.assert_close(out, u + x.grad, rtol=1e-12, atol=1e-14)


def test_l1_is_sign_and_l2_is_the_parameter():
    p = torch.tensor([-2.0, 0.0, 0.5], dtype=torch.float64)
    u = torch.zeros(3, dtype=torch.float64)
    torch.testing.assert_close(_apply(tz.m.WeightDecay(0.1, ord=1), u.clone(), p), torch.tensor([-0.1, 0.0, 0.1], dtype=torch.float64))
    torch.testing.assert_close(_apply(tz.m.WeightDecay(0.1), u.clone(), p), torch.tensor([-0.2, 0.0, 0.05], dtype=torch.float64))


def test_target_grad_adds_the_decay_to_p_grad():
    (p,) = make_params([(5,)])
    g = torch.randn(5, dtype=p.dtype)
    p.grad = g.clone()
    expected_grad = g + 0.1 * p.detach()
    tz.Modular([p], tz.m.WeightDecay(0.1, target="grad"), tz.m.LR(0.0)).step()
    torch.testing.assert_close(p.grad, expected_grad, rtol=1e-14, atol=0)


def test_parameters_are_not_modified_by_weight_decay_itself():
    (p,) = make_params([(5,)])
    before = p.detach().clone()
    _apply(tz.m.WeightDecay(0.5), torch.zeros(5, dtype=p.dtype), p)
    assert torch.equal(p.detach(), before)


# ------------------------------------------------------------------------------ DirectWeightDecay
@pytest.mark.parametrize("lr", [1.0, 1e-2], ids=["lr1", "lr1e-2"])
def test_direct_weight_decay_is_not_scaled_by_lr(lr):
    """p <- (1 - wd) p, then the rest of the chain's update (here zero gradients) is applied."""
    params = make_params([(4,), (2, 3)])
    before = [p.detach().clone() for p in params]
    opt = tz.Modular(params, tz.m.DirectWeightDecay(0.1), tz.m.LR(lr))
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.step()
    for p, b in zip(params, before):
        torch.testing.assert_close(p.detach(), 0.9 * b, rtol=1e-15, atol=0)


def test_direct_weight_decay_is_independent_of_the_update():
    """The decay does not go through the chain: Adam's update is the same with or without it."""
    (p,) = make_params([(6,)])
    (q,) = [p.detach().clone().requires_grad_()]
    opt = tz.Modular([p], tz.m.DirectWeightDecay(1e-2), tz.m.Adam(), tz.m.LR(1e-2))
    ref = torch.optim.Adam([q], lr=1e-2)
    for step in range(50):
        set_grads([p], step)
        set_grads([q], step)
        opt.step()
        with torch.no_grad():
            q.mul_(1 - 1e-2)  # decay first, by wd (not lr * wd), then Adam's step
        ref.step()
    torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def test_direct_weight_decay_equals_adamw_with_wd_over_lr():
    """DirectWeightDecay(lr * wd) before Adam decays like AdamW(lr, weight_decay=wd)."""
    lr, wd = 1e-2, 0.1
    params, ref = _run_pair(
        [tz.m.DirectWeightDecay(lr * wd), tz.m.Adam(), tz.m.LR(lr)],
        lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=wd),
        500,
        dtype=torch.float64,
    )
    _close(params, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("ord", [1, 3], ids=["ord1", "ord3"])
def test_direct_weight_decay_other_orders(ord):
    p = torch.tensor([-2.0, 0.0, 0.5], dtype=torch.float64, requires_grad=True)
    p.grad = torch.zeros(3, dtype=torch.float64)
    before = p.detach().clone()
    tz.Modular([p], tz.m.DirectWeightDecay(0.1, ord=ord)).step()
    torch.testing.assert_close(p.detach(), before - 0.1 * before.sign() * before.abs() ** (ord - 1))


def test_direct_weight_decay_per_group_and_skips_params_without_grad():
    a, b, c = make_params([(3,), (3,), (3,)])
    opt = tz.Modular([{"params": [a, c]}, {"params": [b], "weight_decay": 0.5}], tz.m.DirectWeightDecay(0.1))
    before = [x.detach().clone() for x in (a, b, c)]
    a.grad, b.grad, c.grad = torch.zeros(3, dtype=a.dtype), torch.zeros(3, dtype=b.dtype), None
    opt.step()
    torch.testing.assert_close(a.detach(), 0.9 * before[0])
    torch.testing.assert_close(b.detach(), 0.5 * before[1])
    assert torch.equal(c.detach(), before[2])


def test_direct_weight_decay_works_in_apply_transform_on_leaf_params():
    (p,) = make_params([(4,)])  # requires_grad=True: the in-place decay must run under no_grad
    before = p.detach().clone()
    tz.apply_transform(tz.m.DirectWeightDecay(0.25), [torch.zeros(4, dtype=p.dtype)], params=[p])
    torch.testing.assert_close(p.detach(), 0.75 * before)


# ------------------------------------------------------------------------------ convergence smoke
@pytest.mark.parametrize(
    "name, chain, baseline",
    [
        ("AdamW", lambda: [tz.m.Adam(), tz.m.WeightDecay(1e-3), tz.m.LR(1e-2)], lambda: [tz.m.Adam(), tz.m.LR(1e-2)]),
        ("Adam-DirectWeightDecay", lambda: [tz.m.DirectWeightDecay(1e-5), tz.m.Adam(), tz.m.LR(1e-2)], lambda: [tz.m.Adam(), tz.m.LR(1e-2)]),
        ("SGDM-coupled", lambda: [tz.m.WeightDecay(1e-3), tz.m.HeavyBall(0.9), tz.m.LR(0.05)], lambda: [tz.m.HeavyBall(0.9), tz.m.LR(0.05)]),
    ],
    ids=["AdamW", "Adam-DirectWeightDecay", "SGDM-coupled"],
)
def test_mlp_small_weight_decay_trains_like_the_undecayed_optimizer(name, chain, baseline):
    X, y = mlp_data()
    initial = torch.nn.functional.mse_loss(torch.zeros_like(y), y).item()
    base = run_mlp(baseline())
    loss = run_mlp(chain())
    assert base < 0.1 * initial
    # a small decay regularises a little: within 1.5x of the undecayed optimizer's loss
    assert loss < 1.5 * base, (loss, base)


def test_rosenbrock_adamw_converges_like_adam():
    """The minimum (1, 1) is not at 0, so decay biases it slightly; AdamW must still reach Adam's basin."""
    start = rosenbrock(torch.tensor([-1.5, 2.0])).item()
    adam = run_rosenbrock([tz.m.Adam(), tz.m.LR(5e-2)])
    adamw = run_rosenbrock([tz.m.Adam(), tz.m.WeightDecay(1e-4), tz.m.LR(5e-2)])
    assert adam < 1e-2 * start
    assert adamw < 2 * adam + 1e-3, (adamw, adam)
