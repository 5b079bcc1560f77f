"""ScheduleFree against the ``schedulefree`` package (PyPI, a test-only dependency): its SGD and
AdamW over 500 steps with every option and with train/eval switches along the way; the average
against its definition; the eval-mode contract; checkpoints; errors."""
from __future__ import annotations

import copy
import io

import pytest
import schedulefree
import torch

import torchzero as tz

F64 = torch.float64

CASES = {
    "SGD": (
        lambda p: schedulefree.SGDScheduleFree(p, lr=0.5),
        lambda p: tz.Modular(p, tz.m.ScheduleFree(0.5)),
    ),
    "SGD-momentum-weight_decay-warmup": (
        lambda p: schedulefree.SGDScheduleFree(p, lr=0.5, momentum=0.8, weight_decay=1e-3, warmup_steps=10),
        lambda p: tz.Modular(p, tz.m.WeightDecay(1e-3), tz.m.ScheduleFree(0.5, 0.8, warmup_steps=10)),
    ),
    "SGD-r-weight_lr_power": (
        lambda p: schedulefree.SGDScheduleFree(p, lr=0.3, r=1.0, weight_lr_power=0.0),
        lambda p: tz.Modular(p, tz.m.ScheduleFree(0.3, r=1.0, weight_lr_power=0.0)),
    ),
    "AdamW": (
        lambda p: schedulefree.AdamWScheduleFree(p, lr=2.5e-3),
        lambda p: tz.Modular(p, tz.m.RMSprop(0.999, 1e-8, debiased=True), tz.m.ScheduleFree(2.5e-3, 0.9)),
    ),
    "AdamW-all-options": (
        lambda p: schedulefree.AdamWScheduleFree(
            p, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2, warmup_steps=20, r=0.5, weight_lr_power=1.5
        ),
        lambda p: tz.Modular(
            p,
            tz.m.RMSprop(0.99, 1e-6, debiased=True),
            tz.m.WeightDecay(1e-2),
            tz.m.ScheduleFree(1e-2, 0.8, warmup_steps=20, r=0.5, weight_lr_power=1.5),
        ),
    ),
}


def _model(dtype: torch.dtype = F64) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).to(dtype)


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int, switch_every: int = 0, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    for t in range(steps):
        x = torch.randn(16, 5, generator=g).to(dtype)
        opt.zero_grad()
        (model(x).sin() ** 2).mean().backward()
        opt.step()
        if switch_every and t % switch_every == 0:
            opt.eval()
            opt.train()


@pytest.mark.parametrize(("dtype", "rtol"), [(F64, 1e-12), (torch.float32, 1e-4)], ids=["float64", "float32"])
@pytest.mark.parametrize("case", list(CASES))
def test_500_steps_match_schedulefree(case, dtype, rtol):
    make_ref, make_tz = CASES[case]
    ref, ours = _model(dtype), _model(dtype)
    opt_ref, opt = make_ref(ref.parameters()), make_tz(ours.parameters())
    opt_ref.train()
    _train(ref, opt_ref, 500, switch_every=37)
    _train(ours, opt, 500, switch_every=37)
    for a, b in zip(ours.parameters(), ref.parameters()):  # the training point y
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * 1e-2)
    opt_ref.eval()
    opt.eval()
    for a, b in zip(ours.parameters(), ref.parameters()):  # the average x
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * 1e-2)


def test_param_groups_with_their_own_lr_and_momentum_match_schedulefree():
    ref, ours = _model(), _model()
    groups = lambda m: [  # noqa: E731
        {"params": list(m.parameters())[:2], "lr": 0.2, "momentum": 0.7},
        {"params": list(m.parameters())[2:]},
    ]
    opt_ref = schedulefree.SGDScheduleFree(groups(ref), lr=0.5)
    opt_ref.train()
    opt = tz.Modular(groups(ours), tz.m.ScheduleFree(0.5))
    _train(ref, opt_ref, 200)
    _train(ours, opt, 200)
    opt_ref.eval()
    opt.eval()
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_the_eval_point_is_the_weighted_average_of_z():
    """x_T = sum_t w_t z_t / sum_t w_t, with z_t written out from its definition (z_{t+1} = z_t -
    lr_t g_t, g_t taken at y_t), against what opt.eval() puts in the parameters."""
    torch.manual_seed(0)
    w = torch.randn(6, dtype=F64, requires_grad=True)
    A = torch.randn(6, 6, dtype=F64)
    A = A @ A.T / 6 + torch.eye(6, dtype=F64)
    opt = tz.Modular([w], tz.m.ScheduleFree(0.1, 0.9, warmup_steps=3, r=1.0, weight_lr_power=2.0))
    z = w.detach().clone()
    x_num, x_den = torch.zeros(6, dtype=F64), 0.0
    zs = [z.clone()]
    weights = []
    lr_max = -1.0
    for t in range(12):
        opt.zero_grad()
        (0.5 * w @ A @ w).backward()
        lr_t = 0.1 * min(1.0, (t + 1) / 3)
        lr_max = max(lr_max, lr_t)
        weights.append((t + 1) ** 1.0 * lr_max**2)
        z = z - lr_t * w.grad.detach()
        zs.append(z.clone())
        opt.step()
    # x_1 = z_1 (c_1 = 1), then x_{t+1} = (1 - c) x_t + c z_{t+1}: the average of z_1..z_T
    for wt, zt in zip(weights, zs[1:]):
        x_num += wt * zt
        x_den += wt
    opt.eval()
    torch.testing.assert_close(w.detach(), x_num / x_den, rtol=1e-12, atol=1e-13)
    assert not opt.training


def test_step_in_eval_mode_raises_and_changes_nothing():
    model = _model()
    opt = tz.Modular(model.parameters(), tz.m.ScheduleFree(0.5))
    _train(model, opt, 3)
    opt.eval()
    before = [p.detach().clone() for p in model.parameters()]
    sd = copy.deepcopy(opt.state_dict())
    model(torch.randn(2, 5, dtype=F64)).sum().backward()
    with pytest.raises(RuntimeError, match=r"eval mode.*call opt\.train\(\)"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before))
    assert str(opt.state_dict()) == str(sd)


def test_train_eval_round_trip_returns_to_the_training_point():
    model = _model()
    opt = tz.Modular(model.parameters(), tz.m.ScheduleFree(0.5))
    _train(model, opt, 5)
    y = [p.detach().clone() for p in model.parameters()]
    opt.eval()
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), y))
    opt.eval()  # twice: no further move
    opt.train()
    opt.train()
    for a, b in zip(model.parameters(), y):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-15)


def test_a_checkpoint_saved_in_eval_mode_resumes_identically():
    model = _model()
    opt = tz.Modular(model.parameters(), tz.m.ScheduleFree(0.5, warmup_steps=4))
    _train(model, opt, 6)
    opt.eval()
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    opt.train()
    _train(model, opt, 5, seed=9)

    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    twin = _model()
    twin.load_state_dict(ckpt["model"])
    twin_opt = tz.Modular(twin.parameters(), tz.m.ScheduleFree(0.5, warmup_steps=4))
    twin_opt.load_state_dict(ckpt["opt"])
    assert not twin_opt.training  # the mode is part of the checkpoint
    twin_opt.train()
    _train(twin, twin_opt, 5, seed=9)
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)


def test_split_branches_each_with_their_own_schedule_free():
    """Muon-style split: ScheduleFree last in each branch; eval moves both sets of parameters."""
    model = _model()
    opt = tz.Modular(
        model.parameters(),
        tz.m.Split(lambda p: p.ndim >= 2, tz.m.ScheduleFree(0.3, 0.9), [tz.m.RMSprop(0.999, debiased=True), tz.m.ScheduleFree(1e-2, 0.8)]),
    )
    ref = _model()
    opt_ref = schedulefree.SGDScheduleFree(
        [{"params": [p for p in ref.parameters() if p.ndim >= 2]}], lr=0.3, momentum=0.9
    )
    opt_ref.train()
    _train(model, opt, 20)
    g = torch.Generator().manual_seed(1)
    for _ in range(20):  # the reference trains only the matrices: compare those
        x = torch.randn(16, 5, generator=g, dtype=F64)
        opt_ref.zero_grad()
        (ref(x).sin() ** 2).mean().backward()
        opt_ref.step()
    y = [p.detach().clone() for p in model.parameters()]
    opt.eval()
    opt_ref.eval()
    assert all(not torch.equal(p, q) for p, q in zip(model.parameters(), y))  # every parameter moved to x
    opt.train()
    assert all(torch.allclose(p, q, rtol=1e-13, atol=1e-15) for p, q in zip(model.parameters(), y))


def test_chains_without_schedule_free_have_no_modes():
    model = _model()
    opt = tz.Modular(model.parameters(), tz.m.Adam(), tz.m.LR(1e-3))
    before = [p.detach().clone() for p in model.parameters()]
    opt.eval()
    assert opt.training
    opt.train()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before))
    _train(model, opt, 1)  # eval() did not block the step
    with pytest.raises(TypeError, match="mode must be a bool"):
        opt.train("no")


def test_schedule_free_must_be_last():
    p = [torch.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError, match=r"ScheduleFree forms the final update.*LR"):
        tz.Modular(p, tz.m.ScheduleFree(), tz.m.LR(0.1))


def test_lr_is_published_for_schedulers():
    model = _model()
    opt = tz.Modular(model.parameters(), tz.m.ScheduleFree(0.5))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    ref = _model()
    opt_ref = schedulefree.SGDScheduleFree(ref.parameters(), lr=0.5)
    opt_ref.train()
    sched_ref = torch.optim.lr_scheduler.StepLR(opt_ref, step_size=1, gamma=0.5)
    for m, o, s in ((model, opt, sched), (ref, opt_ref, sched_ref)):
        for _ in range(4):
            _train(m, o, 1)
            s.step()
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
