"""EMA, HeavyBall, NAG and Debias against small references written from their definitions.

Each reference is a plain loop over steps for one tensor, returning the update of every step;
the module runs through ``tz.apply_transform`` (float64) on several tensors at once and each
tensor's stream is compared with the reference to rtol 1e-12.
"""
from __future__ import annotations

import itertools

import pytest
import torch

import torchzero as tz
from conftest import make_params

SHAPES = [(5,), (2, 3), ()]
STEPS = 25


def _streams(seed=0):
    """STEPS updates for each tensor of SHAPES, as a list over steps of lists over tensors."""
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=g, dtype=torch.float64) for s in SHAPES] for _ in range(STEPS)]


def _run(module, streams):
    params = make_params(SHAPES)
    return [tz.apply_transform(module, us, params=params) for us in streams]


def _compare(got, ref_fn, streams):
    for i in range(len(SHAPES)):
        expected = ref_fn([us[i] for us in streams])
        for step, (a, b) in enumerate(zip((o[i] for o in got), expected)):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14, msg=f"tensor {i}, step {step}")


def ref_ema(updates, momentum, dampening, debiased, lerp, ema_init):
    """b_1 = u_1 (ema_init="update") else b = mu b + w u from b_0 = 0; w = (1-mu)(1-d) with lerp else 1-d."""
    w = (1 - momentum) * (1 - dampening) if lerp else 1 - dampening
    b, out = None, []
    for t, u in enumerate(updates, start=1):
        if b is None and ema_init == "update":
            b = u.clone()
        else:
            b = momentum * (torch.zeros_like(u) if b is None else b) + w * u
        out.append(b / (1 - momentum**t) if debiased else b.clone())
    return out


def ref_nag(updates, momentum, dampening, lerp):
    """The heavy-ball buffer (starting at the first update), then u + mu b, or (1-mu) u + mu b with lerp."""
    bufs = ref_ema(updates, momentum, dampening, False, lerp, "update")
    c = 1 - momentum if lerp else 1.0
    return [c * u + momentum * b for u, b in zip(updates, bufs)]


def ref_debias(updates, beta1, beta2, alpha, pow):
    out = []
    for t, u in enumerate(updates, start=1):
        num = 1.0 if beta2 is None else (1 - beta2**t) ** (1 / pow)
        den = 1.0 if beta1 is None else 1 - beta1**t
        out.append(alpha * num / den * u)
    return out


EMA_GRID = list(itertools.product([0.9, 0.5], [0.0, 0.3], [False, True], [False, True], ["zeros", "update"]))


@pytest.mark.parametrize(
    "momentum, dampening, debiased, lerp, ema_init",
    EMA_GRID,
    ids=[f"m{m}-d{d}-{'debiased' if db else 'biased'}-{'lerp' if l else 'sum'}-{i}" for m, d, db, l, i in EMA_GRID],
)
def test_ema_matches_reference(momentum, dampening, debiased, lerp, ema_init):
    kw = dict(momentum=momentum, dampening=dampening, debiased=debiased, lerp=lerp, ema_init=ema_init)
    streams = _streams()
    _compare(_run(tz.m.EMA(**kw), streams), lambda us: ref_ema(us, **kw), streams)
    _compare(_run(tz.m.HeavyBall(**kw), streams), lambda us: ref_ema(us, **kw), streams)


def test_heavyball_is_ema_with_sgd_defaults():
    streams = _streams(1)
    ref = dict(momentum=0.9, dampening=0.0, debiased=False, lerp=False, ema_init="update")
    _compare(_run(tz.m.HeavyBall(), streams), lambda us: ref_ema(us, **ref), streams)
    _compare(_run(tz.m.EMA(), streams), lambda us: ref_ema(us, **(ref | dict(lerp=True, ema_init="zeros"))), streams)


def test_ema_does_not_alias_its_input_or_output():
    """The buffer is a copy of the first update, and the output is not the buffer itself."""
    (p,) = make_params([(4,)])
    u = torch.ones(4, dtype=p.dtype)
    mod = tz.m.HeavyBall()
    out = tz.apply_transform(mod, [u], params=[p])[0]
    out.mul_(100)  # a later module scaling the update in place must not touch the buffer
    u.mul_(100)
    torch.testing.assert_close(mod.state[p]["momentum_buffer"], torch.ones(4, dtype=p.dtype))


NAG_GRID = list(itertools.product([0.9, 0.5], [0.0, 0.3], [False, True]))


@pytest.mark.parametrize(
    "momentum, dampening, lerp", NAG_GRID, ids=[f"m{m}-d{d}-{'lerp' if l else 'sum'}" for m, d, l in NAG_GRID]
)
def test_nag_matches_reference(momentum, dampening, lerp):
    streams = _streams(2)
    kw = dict(momentum=momentum, dampening=dampening, lerp=lerp)
    _compare(_run(tz.m.NAG(**kw), streams), lambda us: ref_nag(us, **kw), streams)


def test_nag_lerp_first_update_is_unchanged():
    (p,) = make_params([(3,)])
    u = torch.tensor([1.0, -2.0, 3.0], dtype=p.dtype)
    out = tz.apply_transform(tz.m.NAG(0.9, lerp=True), [u], params=[p])[0]
    torch.testing.assert_close(out, u, rtol=1e-15, atol=0)


DEBIAS_GRID = [
    dict(beta1=0.9, beta2=None, alpha=1, pow=2),
    dict(beta1=None, beta2=0.999, alpha=1, pow=2),
    dict(beta1=0.8, beta2=0.99, alpha=0.5, pow=3),
    dict(beta1=None, beta2=None, alpha=-2.0, pow=2),
    dict(beta1=0.0, beta2=0.5, alpha=1, pow=1.5),
]


@pytest.mark.parametrize("kw", DEBIAS_GRID, ids=["beta1", "beta2", "both-pow3-alpha", "alpha-only", "beta1-zero-pow1.5"])
def test_debias_matches_reference(kw):
    streams = _streams(3)
    _compare(_run(tz.m.Debias(**kw), streams), lambda us: ref_debias(us, **kw), streams)


def test_ema_then_debias_is_debiased_ema():
    streams = _streams(4)
    a = _run([tz.m.EMA(0.8), tz.m.Debias(beta1=0.8)], streams)
    b = _run(tz.m.EMA(0.8, debiased=True), streams)
    for x, y in zip(a, b):
        for s, t in zip(x, y):
            torch.testing.assert_close(s, t, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("pow", [2, 3], ids=["pow2", "pow3"])
def test_undebiased_adam_then_debias_is_adam_without_eps(pow):
    """With eps=0, Adam's corrections factor out of the division: Debias restores them exactly."""
    streams = _streams(5)
    a = _run([tz.m.Adam(0.9, 0.99, eps=0.0, pow=pow, debiased=False), tz.m.Debias(0.9, 0.99, pow=pow)], streams)
    b = _run(tz.m.Adam(0.9, 0.99, eps=0.0, pow=pow), streams)
    for x, y in zip(a, b):
        for s, t in zip(x, y):
            torch.testing.assert_close(s, t, rtol=1e-12, atol=1e-14)


def test_step_counts_are_per_parameter():
    """A parameter that misses steps is corrected by its own step count (as torch.optim.Adam does)."""
    a, b = make_params([(3,), (3,)])
    opt = tz.Modular([a, b], tz.m.EMA(0.9, debiased=True), tz.m.LR(1.0))
    g = torch.Generator().manual_seed(0)
    grads_b = []
    for step in range(7):  # b gets gradients on steps 0, 2, 4, 6
        a.grad = torch.randn(3, generator=g, dtype=a.dtype)
        b.grad = torch.randn(3, generator=g, dtype=b.dtype) if step % 2 == 0 else None
        if b.grad is not None:
            grads_b.append(b.grad.clone())
        b0 = b.detach().clone()
        opt.step()
    expected = ref_ema(grads_b, 0.9, 0.0, True, True, "zeros")[-1]
    torch.testing.assert_close(b0 - b.detach(), expected, rtol=1e-12, atol=1e-14)
    assert opt.state[b]["0.step"] == 4 and opt.state[a]["0.step"] == 7


def test_different_settings_per_param_group():
    """One optimizer, two groups with different momentum/lerp/debiased: each follows its reference."""
    a, b = make_params([(4,), (2, 2)])
    groups = [{"params": [a], "momentum": 0.5, "lerp": False}, {"params": [b], "debiased": True, "dampening": 0.2}]
    opt = tz.Modular(groups, tz.m.EMA(0.9), tz.m.LR(1.0))
    g = torch.Generator().manual_seed(1)
    ga, gb = [], []
    for _ in range(10):
        a.grad = torch.randn(4, generator=g, dtype=a.dtype)
        b.grad = torch.randn(2, 2, generator=g, dtype=b.dtype)
        ga.append(a.grad.clone())
        gb.append(b.grad.clone())
        a0, b0 = a.detach().clone(), b.detach().clone()
        opt.step()
    torch.testing.assert_close(a0 - a.detach(), ref_ema(ga, 0.5, 0.0, False, False, "zeros")[-1], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(b0 - b.detach(), ref_ema(gb, 0.9, 0.2, True, True, "zeros")[-1], rtol=1e-12, atol=1e-14)
