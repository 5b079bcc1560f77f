"""RMSprop against torch.optim.RMSprop and, for the options torch lacks, a reference loop."""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from conftest import make_params, set_grads, step_in_lockstep

SHAPES = ((6, 4), (4,), (), (3, 2, 2))


@pytest.mark.parametrize("centered", [False, True], ids=["plain", "centered"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
def test_matches_torch_rmsprop_500_steps(centered, dtype):
    params = make_params(SHAPES, dtype=dtype)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.RMSprop(0.9, 1e-6, centered=centered), tz.m.LR(1e-2))
    topt = torch.optim.RMSprop(ref, lr=1e-2, alpha=0.9, eps=1e-6, centered=centered)
    step_in_lockstep(params, opt, ref, topt, 500)
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_defaults_match_torch_defaults():
    params = make_params(SHAPES, dtype=torch.float32)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.RMSprop(), tz.m.LR(1e-2))
    topt = torch.optim.RMSprop(ref, lr=1e-2)  # alpha=0.99, eps=1e-8
    step_in_lockstep(params, opt, ref, topt, 500)
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_param_groups_with_different_settings_match_torch():
    params = make_params(((6, 4), (4,), (5,), (2, 2)), dtype=torch.float32)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(
        [
            {"params": params[:2], "lr": 1e-2},
            {"params": params[2:], "lr": 3e-3, "smoothing": 0.9, "eps": 1e-6, "centered": True},
        ],
        tz.m.RMSprop(),
        tz.m.LR(1e-3),
    )
    topt = torch.optim.RMSprop(
        [
            {"params": ref[:2], "lr": 1e-2},
            {"params": ref[2:], "lr": 3e-3, "alpha": 0.9, "eps": 1e-6, "centered": True},
        ],
        lr=1e-3,
    )
    step_in_lockstep(params, opt, ref, topt, 500)
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_missing_gradients_match_torch():
    params = make_params(((4,), (3, 2)), dtype=torch.float64)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.RMSprop(centered=True), tz.m.LR(1e-2))
    topt = torch.optim.RMSprop(ref, lr=1e-2, centered=True)
    step_in_lockstep(params, opt, ref, topt, 60, missing=1)
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)


def _ref_rmsprop(grads, smoothing, eps, centered, debiased, amsgrad, pow, init):
    """Reference: the formula of the docstring, one tensor, a plain loop over steps."""
    v = torch.zeros_like(grads[0])
    m = torch.zeros_like(grads[0])
    d_max = torch.zeros_like(grads[0])
    out = []
    for t, g in enumerate(grads, start=1):
        if t == 1 and init == "update":
            v, m = g.abs() ** pow, g.clone()
        else:
            v = smoothing * v + (1 - smoothing) * g.abs() ** pow
            m = smoothing * m + (1 - smoothing) * g
        c = 1 - smoothing**t if (debiased and init == "zeros") else 1.0
        d = (v / c - (m / c).abs() ** pow).clamp_min(0) if centered else v / c
        if amsgrad:
            d_max = torch.maximum(d_max, d)
            d = d_max
        out.append(g / (d ** (1 / pow) + eps))
    return out


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(centered=True),
        dict(debiased=True),
        dict(debiased=True, centered=True, eps=1e-3),
        dict(amsgrad=True),
        dict(amsgrad=True, centered=True, debiased=True, eps=1e-3),
        dict(pow=3),
        dict(pow=1.5, centered=True),
        dict(init="update"),
        dict(init="update", centered=True, debiased=True, eps=1e-3),
        dict(smoothing=0.0, eps=0.1),
    ],
    ids=[
        "plain",
        "centered",
        "debiased",
        "debiased-centered",
        "amsgrad",
        "amsgrad-centered-debiased",
        "pow3",
        "pow1.5-centered",
        "init-update",
        "init-update-centered-debiased-ignored",
        "smoothing0",
    ],
)
def test_options_match_reference(kw):
    full = dict(smoothing=0.9, eps=1e-8, centered=False, debiased=False, amsgrad=False, pow=2, init="zeros") | kw
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(5, generator=g, dtype=torch.float64) * (1 + i % 4) for i in range(30)]
    mod = tz.m.RMSprop(**full)
    (p,) = make_params([(5,)])
    got = [tz.apply_transform(mod, [gr], params=[p])[0] for gr in grads]
    ref = _ref_rmsprop(grads, **full)
    if full["centered"] and full["debiased"] and full["init"] == "zeros":
        # the debiased centered variance of one update is 0 up to rounding: the first step is u / eps
        # up to that rounding noise, which differs between any two implementations
        torch.testing.assert_close(got[0], grads[0] / full["eps"], rtol=1e-4, atol=0)
        got, ref = got[1:], ref[1:]
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_inner_sees_the_update_after_the_average_is_formed():
    """inner=LR(2) doubles the output; the averages still see the raw update."""
    g = torch.Generator().manual_seed(1)
    grads = [torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(10)]
    (p,) = make_params([(4, 3)])
    (q,) = make_params([(4, 3)], seed=1)
    with_inner = tz.m.RMSprop(centered=True, inner=tz.m.LR(2.0))
    plain = tz.m.RMSprop(centered=True)
    for gr in grads:
        a = tz.apply_transform(with_inner, [gr], params=[p])[0]
        b = tz.apply_transform(plain, [gr], params=[q])[0]
        torch.testing.assert_close(a, 2 * b, rtol=1e-12, atol=0)


def test_state_keys_and_no_aliasing_of_the_update():
    (p,) = make_params([(3,)])
    p.grad = torch.ones(3, dtype=p.dtype)
    opt = tz.Modular([p], tz.m.RMSprop(centered=True, amsgrad=True, init="update"), tz.m.LR(0.1))
    opt.step()
    st = opt.state[p]
    assert set(opt.state_dict()["state"][0]) == {"0.step", "0.exp_avg_sq", "0.exp_avg", "0.max_exp_avg_sq"}
    # init="update" copies the first update: changing the gradient afterwards must not change the state
    p.grad.fill_(5.0)
    torch.testing.assert_close(st["0.exp_avg"], torch.ones(3, dtype=p.dtype))


def test_settings_are_independent_of_parameter_order():
    shapes = [(3, 2), (4,), (2, 2)]
    a = make_params(shapes, dtype=torch.float64)
    b = [p.detach().clone().requires_grad_() for p in reversed(a)]
    opt_a = tz.Modular([{"params": a[:1], "smoothing": 0.5, "centered": True}, {"params": a[1:]}], tz.m.RMSprop(amsgrad=True), tz.m.LR(0.1))
    opt_b = tz.Modular([{"params": b[:2]}, {"params": b[2:], "smoothing": 0.5, "centered": True}], tz.m.RMSprop(amsgrad=True), tz.m.LR(0.1))
    for s in range(20):
        set_grads(a, s)
        for x, y in zip(a, reversed(b)):
            y.grad = x.grad.clone()
        opt_a.step()
        opt_b.step()
    for x, y in zip(a, reversed(b)):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kw", [dict(), dict(debiased=True, smoothing=0.0), dict(centered=True)], ids=["plain", "debias-is-1", "centered"])
def test_the_state_is_not_modified_by_taking_the_root(kw):
    (p,) = make_params([(4,)])
    mod = tz.m.RMSprop(**kw)
    u = torch.full((4,), 3.0, dtype=p.dtype)
    beta = kw.get("smoothing", 0.99)
    v = torch.zeros(4, dtype=p.dtype)
    for _ in range(3):
        tz.apply_transform(mod, [u], params=[p])
        v = beta * v + (1 - beta) * 9.0
        torch.testing.assert_close(mod.state[p]["exp_avg_sq"], v, rtol=1e-12, atol=0)
