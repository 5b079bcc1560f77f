"""Adagrad against torch.optim.Adagrad and, for the options torch lacks, a reference loop."""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from conftest import make_params, step_in_lockstep

SHAPES = ((6, 4), (4,), (), (3, 2, 2))


@pytest.mark.parametrize(
    "kw",
    [dict(), dict(lr_decay=1e-2), dict(initial_accumulator_value=0.5), dict(lr_decay=0.1, initial_accumulator_value=2.0, eps=1e-6)],
    ids=["defaults", "lr_decay", "initial_accumulator_value", "all"],
)
def test_matches_torch_adagrad_500_steps(kw):
    params = make_params(SHAPES, dtype=torch.float32)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.Adagrad(**kw), tz.m.LR(0.1))
    topt = torch.optim.Adagrad(ref, lr=0.1, **kw)
    step_in_lockstep(params, opt, ref, topt, 500)
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_param_groups_with_different_settings_match_torch():
    params = make_params(((6, 4), (4,), (5,), (2, 2)), dtype=torch.float32)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(
        [
            {"params": params[:2], "lr": 0.1},
            {"params": params[2:], "lr": 0.03, "lr_decay": 0.01, "eps": 1e-6},
        ],
        tz.m.Adagrad(initial_accumulator_value=1.0),
        tz.m.LR(0.05),
    )
    topt = torch.optim.Adagrad(
        [
            {"params": ref[:2], "lr": 0.1},
            {"params": ref[2:], "lr": 0.03, "lr_decay": 0.01, "eps": 1e-6},
        ],
        lr=0.05,
        initial_accumulator_value=1.0,
    )
    step_in_lockstep(params, opt, ref, topt, 500)
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_initial_accumulator_value_per_param_group_is_honoured():
    """torch.optim.Adagrad reads initial_accumulator_value from its constructor only and ignores a
    param-group value; here a param-group value applies to that group, like every other setting."""
    a, b = make_params([(3,), (2,)])
    a.grad, b.grad = torch.ones_like(a), torch.ones_like(b)
    opt = tz.Modular([{"params": [a]}, {"params": [b], "initial_accumulator_value": 3.0}], tz.m.Adagrad(0, 1.0), tz.m.LR(1.0))
    opt.step()
    torch.testing.assert_close(opt.state[a]["0.sum"], torch.full((3,), 2.0, dtype=a.dtype))
    torch.testing.assert_close(opt.state[b]["0.sum"], torch.full((2,), 4.0, dtype=b.dtype))


def test_lr_decay_counts_steps_per_parameter_like_torch():
    params = make_params(((4,), (3, 2)), dtype=torch.float64)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.Adagrad(lr_decay=0.05), tz.m.LR(0.1))
    topt = torch.optim.Adagrad(ref, lr=0.1, lr_decay=0.05)
    step_in_lockstep(params, opt, ref, topt, 60, missing=1)
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)


def _ref_adagrad(grads, lr_decay, initial_accumulator_value, eps, alpha, pow, use_sqrt, divide, beta, decay):
    """Reference: the formula of the docstring, one tensor, a plain loop over steps."""
    acc = torch.full_like(grads[0], initial_accumulator_value)
    out = []
    for t, g in enumerate(grads, start=1):
        if beta is None:
            acc = acc + g.abs() ** pow
        else:
            acc = beta * acc + (1 - beta) * g.abs() ** pow
        if decay is not None:
            acc = (1 - decay) * acc
        a = acc / t if divide else acc
        denom = a ** (1 / pow) + eps if use_sqrt else a + eps
        out.append(alpha / (1 + (t - 1) * lr_decay) * g / denom)
    return out


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(alpha=0.5, lr_decay=0.3),
        dict(pow=3),
        dict(pow=1.5, initial_accumulator_value=0.2),
        dict(use_sqrt=False, eps=1e-3),
        dict(divide=True),
        dict(beta=0.9),
        dict(decay=0.1),
        dict(beta=0.5, decay=0.2, divide=True, pow=4, alpha=-1.0),
    ],
    ids=["defaults", "alpha-lr_decay", "pow3", "pow1.5-init", "no-sqrt", "divide", "beta", "decay", "everything"],
)
def test_options_match_reference(kw):
    full = dict(
        lr_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, alpha=1.0, pow=2, use_sqrt=True, divide=False, beta=None, decay=None
    ) | kw
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(5, generator=g, dtype=torch.float64) * (1 + i % 3) for i in range(30)]
    mod = tz.m.Adagrad(**full)
    (p,) = make_params([(5,)])
    got = [tz.apply_transform(mod, [gr], params=[p])[0] for gr in grads]
    for a, b in zip(got, _ref_adagrad(grads, **full)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_inner_sees_the_update_after_the_sum_is_formed():
    g = torch.Generator().manual_seed(1)
    grads = [torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(10)]
    (p,) = make_params([(4, 3)])
    (q,) = make_params([(4, 3)], seed=1)
    with_inner, plain = tz.m.Adagrad(lr_decay=0.1, inner=tz.m.LR(3.0)), tz.m.Adagrad(lr_decay=0.1)
    for gr in grads:
        a = tz.apply_transform(with_inner, [gr], params=[p])[0]
        b = tz.apply_transform(plain, [gr], params=[q])[0]
        torch.testing.assert_close(a, 3 * b, rtol=1e-12, atol=0)


def test_state_is_torch_layout():
    (p,) = make_params([(3,)])
    p.grad = torch.ones(3, dtype=p.dtype)
    opt = tz.Modular([p], tz.m.Adagrad(initial_accumulator_value=0.5), tz.m.LR(0.1))
    opt.step()
    st = opt.state[p]
    assert set(opt.state_dict()["state"][0]) == {"0.step", "0.sum"} and st["0.step"] == 1
    torch.testing.assert_close(st["0.sum"], torch.full((3,), 1.5, dtype=p.dtype))
