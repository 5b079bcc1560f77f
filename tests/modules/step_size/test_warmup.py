"""StepSize, Warmup and WarmupNormClip: against their definitions, param groups, schedulers, convergence."""
from __future__ import annotations

import io
import math

import pytest
import torch

import torchzero as tz
from conftest import make_params, set_grads
from training import mlp_data, run_mlp, run_rosenbrock
from torchzero.functional.warmup import linear_warmup

SHAPES = ((6, 4), (4,), (), (3, 2, 2))


def ref_warmup_factor(k, steps, start, end):
    """Written from the definition: linear from start (k = 0) to end (k = steps), then end."""
    if k >= steps:
        return end
    return start + (end - start) * k / steps


def _moves(opt, params, steps, seed0=0):
    """Runs ``steps`` steps with seeded gradients; returns each step's (p_before - p_after) / grad.

    The ratio is the factor the update was multiplied by (the same for every element here);
    elements whose gradient is 0 give NaN and are never checked (seeded randn has none).
    """
    out = []
    for s in range(steps):
        set_grads(params, seed0 + s)
        grads = [None if p.grad is None else p.grad.clone() for p in params]
        before = [p.detach().clone() for p in params]
        opt.step()
        out.append([(b - p.detach()) / (g if g is not None else 1.0) for b, p, g in zip(before, params, grads)])
    return out


def _factor(ratio, expected):
    torch.testing.assert_close(ratio, torch.full_like(ratio, expected), rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------------ StepSize
def test_step_size_is_lr():
    params = make_params(SHAPES)
    ref = [p.detach().clone().requires_grad_() for p in params]
    a = tz.Modular(params, tz.m.Adam(), tz.m.StepSize(1e-2))
    b = tz.Modular(ref, tz.m.Adam(), tz.m.LR(1e-2))
    for s in range(50):
        set_grads(params, s)
        set_grads(ref, s)
        a.step()
        b.step()
    for p, q in zip(params, ref):
        # not bitwise: Modular folds a trailing LR into the parameter update (one rounding less)
        torch.testing.assert_close(p, q, rtol=1e-13, atol=1e-15)


def test_step_size_does_not_share_lr():
    """The 'lr' of the groups and a scheduler on it change LR only, not StepSize."""
    (p,) = make_params([(3,)])
    opt = tz.Modular([{"params": [p], "lr": 0.5}], tz.m.StepSize(0.1), tz.m.LR(1.0))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)
    for s, lr in enumerate([0.5, 0.05, 0.005]):
        (move,) = _moves(opt, [p], 1, seed0=s)[0]
        _factor(move, 0.1 * lr)
        sched.step()
    assert "step_size" not in opt.param_groups[0]  # not published, unlike "lr"


def test_step_size_key_in_param_group_overrides_and_keys_are_independent():
    a, b = make_params([(3,), (3,)])
    groups = [{"params": [a]}, {"params": [b], "outer": 0.5}]
    opt = tz.Modular(groups, tz.m.StepSize(2.0, key="inner"), tz.m.StepSize(3.0, key="outer"))
    ma, mb = _moves(opt, [a, b], 1)[0]
    _factor(ma, 6.0)
    _factor(mb, 1.0)


def test_two_step_sizes_with_the_same_key_keep_their_values_until_a_group_sets_it():
    a, b = make_params([(3,), (3,)])
    opt = tz.Modular([{"params": [a]}, {"params": [b], "step_size": 0.5}], tz.m.StepSize(2.0), tz.m.StepSize(3.0))
    ma, mb = _moves(opt, [a, b], 1)[0]
    _factor(ma, 6.0)
    _factor(mb, 0.25)


def test_step_size_group_value_is_validated():
    (p,) = make_params([(3,)])
    with pytest.raises(ValueError, match="StepSize.*step_size.*'gain'"):
        tz.Modular([{"params": [p], "gain": -1.0}], tz.m.StepSize(1.0, key="gain"))


# ------------------------------------------------------------------------------ Warmup
@pytest.mark.parametrize(
    "steps, start, end", [(4, 0.1, 1.0), (10, 1e-5, 1.0), (3, 2.0, 0.5), (0, 0.1, 0.7), (1, 0.0, 1.0)], ids=["4", "defaults-10", "decreasing", "zero-steps", "one-step"]
)
def test_warmup_factor_sequence(steps, start, end):
    params = make_params([(4,), (2, 2)])
    opt = tz.Modular(params, tz.m.Warmup(steps, start, end))
    for k, moves in enumerate(_moves(opt, params, steps + 5)):
        f = ref_warmup_factor(k, steps, start, end)
        for m in moves:
            _factor(m, f)


def test_linear_warmup_function_matches_the_definition():
    for steps in (0, 1, 7):
        for k in range(10):
            assert math.isclose(linear_warmup(k, steps, 0.3, 1.7), ref_warmup_factor(k, steps, 0.3, 1.7), rel_tol=1e-15)


def test_warmup_param_groups_with_different_settings():
    a, b = make_params([(3,), (2,)])
    groups = [{"params": [a]}, {"params": [b], "steps": 2, "start_lr": 0.5, "end_lr": 2.0}]
    opt = tz.Modular(groups, tz.m.Warmup(5, 0.0, 1.0), tz.m.LR(0.1))
    for k, (ma, mb) in enumerate(_moves(opt, [a, b], 8)):
        _factor(ma, 0.1 * ref_warmup_factor(k, 5, 0.0, 1.0))
        _factor(mb, 0.1 * ref_warmup_factor(k, 2, 0.5, 2.0))


def test_warmup_counts_steps_per_parameter():
    """A parameter without a gradient does not advance its warmup."""
    a, b = make_params([(3,), (3,)])
    opt = tz.Modular([a, b], tz.m.Warmup(4, 0.0, 1.0))
    set_grads([a, b], 0)
    b.grad = None
    opt.step()
    (ma, mb) = _moves(opt, [a, b], 1, seed0=1)[0]
    _factor(ma, 0.25)
    _factor(mb, 0.0)  # b's first step: factor start_lr = 0
    assert opt.state[a]["0.step"] == 2 and opt.state[b]["0.step"] == 1


def test_warmup_multiplies_a_scheduled_lr():
    (p,) = make_params([(3,)])
    opt = tz.Modular([p], tz.m.LR(1.0), tz.m.Warmup(2, 0.5, 1.0))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.1**k)
    for k, (move,) in enumerate(_moves_with(opt, [p], 4, sched)):
        _factor(move, 0.1**k * ref_warmup_factor(k, 2, 0.5, 1.0))


def _moves_with(opt, params, steps, sched):
    out = []
    for s in range(steps):
        out.extend(_moves(opt, params, 1, seed0=s))
        sched.step()
    return out


def test_warmup_resumes_from_a_checkpoint_mid_warmup():
    params = make_params([(4,)])
    opt = tz.Modular(params, tz.m.Warmup(10, 0.0, 1.0))
    _moves(opt, params, 3)
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    params2 = [p.detach().clone().requires_grad_() for p in params]
    opt2 = tz.Modular(params2, tz.m.Warmup(10, 0.0, 1.0))
    opt2.load_state_dict(torch.load(buf, weights_only=True))
    (m,) = _moves(opt2, params2, 1, seed0=3)[0]
    _factor(m, 0.3)


# ------------------------------------------------------------------------------ WarmupNormClip
def ref_warmup_norm_clip(updates, steps, start, end):
    """Per step k < steps: clip the norm of all tensors together to start + (end - start) k / steps; then nothing."""
    out = []
    for k, us in enumerate(updates):
        if k >= steps:
            out.append([u.clone() for u in us])
            continue
        limit = start + (end - start) * k / steps
        norm = math.sqrt(sum(float((u.double() ** 2).sum()) for u in us))
        scale = min(1.0, limit / norm) if norm > 1e-12 else 1.0
        out.append([u * scale for u in us])
    return out


@pytest.mark.parametrize("steps, start, end", [(5, 0.01, 1.0), (8, 2.0, 20.0), (0, 0.01, 1.0)], ids=["5-small", "8-large", "zero-steps"])
def test_warmup_norm_clip_matches_reference(steps, start, end):
    g = torch.Generator().manual_seed(0)
    updates = [[torch.randn(s, generator=g, dtype=torch.float64) * 5 for s in SHAPES] for _ in range(steps + 4)]
    params = make_params(SHAPES)
    mod = tz.m.WarmupNormClip(steps, start, end)
    got = [tz.apply_transform(mod, us, params=params) for us in updates]
    for k, (a, b) in enumerate(zip(got, ref_warmup_norm_clip(updates, steps, start, end))):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-15, msg=f"step {k}")


def test_warmup_norm_clip_sets_the_global_norm_to_the_limit():
    params = make_params(SHAPES)
    mod = tz.m.WarmupNormClip(10, 0.1, 1.0)
    for k in range(10):
        us = [torch.randn(s, dtype=torch.float64) * 10 for s in SHAPES]
        out = tz.apply_transform(mod, us, params=params)
        norm = torch.linalg.vector_norm(torch.cat([o.reshape(-1) for o in out]))
        torch.testing.assert_close(norm.item(), 0.1 + 0.9 * k / 10, rtol=1e-12, atol=0)


def test_warmup_norm_clip_leaves_small_and_zero_updates_unchanged():
    params = make_params([(3,), (2,)])
    mod = tz.m.WarmupNormClip(5, 1.0, 2.0)
    small = [torch.full((3,), 0.1, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)]
    out = tz.apply_transform(mod, small, params=params)
    assert all(torch.equal(a, b) for a, b in zip(out, small))
    zeros = [torch.zeros(3, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)]
    out = tz.apply_transform(mod, zeros, params=params)
    assert all(torch.equal(a, b) for a, b in zip(out, zeros))


def test_warmup_norm_clip_groups_are_clipped_separately():
    a, b = make_params([(4,), (4,)])
    groups = [{"params": [a]}, {"params": [b], "start_norm": 0.5}]
    opt = tz.Modular(groups, tz.m.WarmupNormClip(3, 0.1, 1.0))
    set_grads([a, b], 0)
    a0, b0 = a.detach().clone(), b.detach().clone()
    opt.step()
    torch.testing.assert_close(torch.linalg.vector_norm(a0 - a.detach()).item(), 0.1, rtol=1e-12, atol=0)
    torch.testing.assert_close(torch.linalg.vector_norm(b0 - b.detach()).item(), 0.5, rtol=1e-12, atol=0)


def test_warmup_norm_clip_target_grad_is_not_an_argument():
    with pytest.raises(TypeError):
        tz.m.WarmupNormClip(target="grad")  # type: ignore[call-arg]


# ------------------------------------------------------------------------------ convergence smoke
def test_warmup_is_a_linear_lambda_lr_schedule():
    """Adam + LR + Warmup follows the same trajectory as Adam + LR under an equivalent LambdaLR."""
    params = make_params(SHAPES)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.Adam(), tz.m.LR(1e-2), tz.m.Warmup(20, 0.01, 1.0))
    ref_opt = tz.Modular(ref, tz.m.Adam(), tz.m.LR(1e-2))
    sched = torch.optim.lr_scheduler.LambdaLR(ref_opt, lambda k: ref_warmup_factor(k, 20, 0.01, 1.0))
    for s in range(60):
        set_grads(params, s)
        set_grads(ref, s)
        opt.step()
        ref_opt.step()
        sched.step()
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


# Convergence smoke: thresholds from plain SGD with the same lr and steps, run in the same test.
# WarmupNormClip goes before the momentum (it limits the gradient the buffer accumulates): after
# momentum, 30 steps of near-zero moves let the buffer grow to ~10x the gradient, and the first
# unclipped step jumps out of Rosenbrock's valley.
ROSENBROCK_CHAINS = {
    "SGDM-Warmup": lambda: [tz.m.HeavyBall(0.9), tz.m.LR(1e-3), tz.m.Warmup(30)],
    "WarmupNormClip-SGDM": lambda: [tz.m.WarmupNormClip(30, 1e-3, 1.0), tz.m.HeavyBall(0.9), tz.m.LR(1e-3)],
}


@pytest.mark.parametrize("name", list(ROSENBROCK_CHAINS))
def test_rosenbrock_warmed_up_momentum_beats_plain_sgd(name):
    sgd = run_rosenbrock([tz.m.LR(1e-3)])
    loss = run_rosenbrock(ROSENBROCK_CHAINS[name]())
    assert loss < 0.01 * sgd, (loss, sgd)


MLP_CHAINS = {
    "Adam-Warmup": lambda: [tz.m.Adam(), tz.m.LR(1e-2), tz.m.Warmup(30)],
    "Adam-WarmupNormClip": lambda: [tz.m.Adam(), tz.m.WarmupNormClip(30, 1e-3, 1.0), tz.m.LR(1e-2)],
    "SGDM-Warmup": lambda: [tz.m.HeavyBall(0.9), tz.m.LR(0.05), tz.m.Warmup(30)],
    "WarmupNormClip-SGDM": lambda: [tz.m.WarmupNormClip(30, 1e-3, 1.0), tz.m.HeavyBall(0.9), tz.m.LR(0.05)],
}


@pytest.fixture(scope="module")
def mlp_sgd_loss():
    return run_mlp([tz.m.LR(0.05)])


@pytest.mark.parametrize("name", list(MLP_CHAINS))
def test_mlp_warmed_up_optimizers_beat_plain_sgd(name, mlp_sgd_loss):
    loss = run_mlp(MLP_CHAINS[name]())
    assert loss < 0.5 * mlp_sgd_loss, (loss, mlp_sgd_loss)


def test_mlp_step_size_trains_like_lr():
    X, y = mlp_data()
    initial = torch.nn.functional.mse_loss(torch.zeros_like(y), y).item()
    base = run_mlp([tz.m.Adam(), tz.m.LR(1e-2)])
    loss = run_mlp([tz.m.Adam(), tz.m.StepSize(1e-2)])
    assert base < 0.1 * initial
    assert loss < 1.5 * base, (loss, base)
