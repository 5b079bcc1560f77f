"""Alternate (which module runs on which step, state only where it ran, resumable cycle) and
Multistep (inner steps on fresh gradients, displacement as the update)."""
from __future__ import annotations

import io

import pytest
import torch

import torchzero as tz
from conftest import make_params, set_grads

SHAPES = [(4, 3), (3,), ()]


def _scales(alt, n_steps):
    """The factor each step applied to the gradient, for Alternate over Mul modules."""
    params = make_params([(2,)])
    opt = tz.Modular(params, alt)
    out = []
    for s in range(n_steps):
        params[0].grad = torch.ones(2, dtype=torch.float64)
        before = params[0].detach().clone()
        opt.step()
        out.append(round((before - params[0].detach())[0].item(), 10))
    return out


@pytest.mark.parametrize(
    "steps, expected",
    [
        (1, [1, 2, 3, 1, 2, 3, 1]),
        (2, [1, 1, 2, 2, 3, 3, 1]),
        ((1, 3, 2), [1, 2, 2, 2, 3, 3, 1]),
    ],
    ids=["every-step", "every-2-steps", "per-module-counts"],
)
def test_alternate_schedule(steps, expected):
    alt = tz.m.Alternate(tz.m.Mul(1.0), tz.m.Mul(2.0), [tz.m.Mul(3.0)], steps=steps)
    assert _scales(alt, len(expected)) == expected


def test_single_module_is_that_module():
    assert _scales(tz.m.Alternate(tz.m.Mul(2.0), steps=3), 4) == [2, 2, 2, 2]


def test_alternate_modules_keep_their_own_state_and_only_update_it_when_active():
    params = make_params(SHAPES)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.Alternate(tz.m.Adam(), tz.m.Adam(beta1=0.5), steps=2), tz.m.LR(0.1))
    ref_a = tz.Modular(ref, tz.m.Adam(), tz.m.LR(0.1))
    ref_b = tz.Modular(ref, tz.m.Adam(beta1=0.5), tz.m.LR(0.1))
    for s in range(20):
        set_grads(params, s)
        set_grads(ref, s)
        opt.step()
        (ref_a if (s // 2) % 2 == 0 else ref_b).step()
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-14, atol=1e-15)
    alt = opt.chain.modules[0]
    assert alt.children["0"].state[params[0]]["step"] == 10 and alt.children["1"].state[params[0]]["step"] == 10


def test_alternate_counter_is_saved_and_the_cycle_resumes():
    def build(params):
        return tz.Modular(params, tz.m.Alternate(tz.m.Adam(), [tz.m.Sign(), tz.m.Mul(0.1)], tz.m.Adam(beta2=0.9), steps=(2, 1, 3)), tz.m.LR(0.1))

    params = make_params(SHAPES, dtype=torch.float32)
    opt = build(params)
    for s in range(4):
        set_grads(params, s)
        opt.step()
    sd = opt.state_dict()
    assert sd["param_groups"][0]["torchzero"]["global_state"] == {"0": {"step": 4}}
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    params2 = [p.detach().clone().requires_grad_() for p in params]
    opt2 = build(params2)
    opt2.load_state_dict(torch.load(buf, weights_only=True))
    for s in range(4, 15):
        set_grads(params, s)
        set_grads(params2, s)
        opt.step()
        opt2.step()
    for p, q in zip(params, params2):
        assert torch.equal(p, q)
    assert opt2.chain.modules[0].global_state["step"] == 15


# ------------------------------------------------------------------ Multistep
def _quadratic(params, A):
    """A closure for f(x) = sum_i 0.5 x_i^T A_i x_i + sum(x_i), counting its calls."""
    calls = []

    def closure(backward=True):
        calls.append(backward)
        loss = sum(0.5 * (p.reshape(-1) @ a @ p.reshape(-1)) + p.sum() for p, a in zip(params, A))
        if backward:
            for p in params:
                p.grad = None
            loss.backward()
        return loss

    return closure, calls


def _matrices(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in shapes:
        n = max(1, int(torch.tensor(s).prod().item()) if s else 1)
        m = torch.randn(n, n, generator=g, dtype=torch.float64)
        out.append(m @ m.T / n + torch.eye(n, dtype=torch.float64))
    return out


def test_multistep_alone_equals_that_many_torch_adam_steps():
    params = make_params(SHAPES)
    ref = [p.detach().clone().requires_grad_() for p in params]
    A = _matrices(SHAPES)
    closure, calls = _quadratic(params, A)
    ref_closure, _ = _quadratic(ref, A)
    opt = tz.Modular(params, tz.m.Multistep([tz.m.Adam(), tz.m.LR(1e-2)], 4))
    topt = torch.optim.Adam(ref, lr=1e-2)
    for _ in range(100):
        opt.step(closure)
        for _ in range(4):
            topt.step(ref_closure)
    assert len(calls) == 100 * 4  # one evaluation by Modular, three by Multistep per step
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)


def test_multistep_update_is_the_displacement_and_later_modules_scale_it():
    params = make_params(SHAPES)
    A = _matrices(SHAPES)
    closure, _ = _quadratic(params, A)
    opt = tz.Modular(params, tz.m.Multistep(tz.m.LR(0.05), 3), tz.m.LR(0.5))
    # reference: three plain gradient steps from x0, then x0 + 0.5 (x3 - x0)
    x = [p.detach().clone() for p in params]
    x0 = [t.clone() for t in x]
    for _ in range(3):
        ps = [t.clone().requires_grad_() for t in x]
        c, _ = _quadratic(ps, A)
        c()
        x = [t - 0.05 * p.grad for t, p in zip(x, ps)]
    opt.step(closure)
    for p, a, b in zip(params, x0, x):
        torch.testing.assert_close(p.detach(), a + 0.5 * (b - a), rtol=1e-12, atol=1e-14)


def test_multistep_passes_on_the_gradient_at_the_starting_point():
    params = make_params(SHAPES)
    A = _matrices(SHAPES)
    closure, _ = _quadratic(params, A)
    opt = tz.Modular(params, tz.m.Multistep(tz.m.LR(0.1), 3), tz.m.Grad(), tz.m.LR(0.01))
    x0 = [p.detach().clone() for p in params]
    ps = [t.clone().requires_grad_() for t in x0]
    c, _ = _quadratic(ps, A)
    c()
    opt.step(closure)
    for p, a, q in zip(params, x0, ps):
        torch.testing.assert_close(p.detach(), a - 0.01 * q.grad, rtol=1e-12, atol=1e-14)


def test_multistep_one_step_is_the_module_and_needs_no_closure():
    params = make_params(SHAPES)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.Multistep([tz.m.Adam(), tz.m.LR(0.1)], 1))
    ref_opt = tz.Modular(ref, tz.m.Adam(), tz.m.LR(0.1))
    for s in range(5):
        set_grads(params, s)
        set_grads(ref, s)
        opt.step()
        ref_opt.step()
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-14, atol=1e-15)


def test_multistep_without_closure_raises():
    params = make_params(SHAPES)
    opt = tz.Modular(params, tz.m.Multistep(tz.m.LR(0.1), 2))
    set_grads(params, 0)
    with pytest.raises(RuntimeError, match="Multistep.*closure"):
        opt.step()


def test_multistep_inner_state_round_trips_bitwise():
    A = _matrices(SHAPES)

    def build(params):
        return tz.Modular(params, tz.m.Multistep([tz.m.Adam(), tz.m.LR(1e-2)], 3), tz.m.Mul(0.5))

    params = make_params(SHAPES, dtype=torch.float32)
    A32 = [a.float() for a in A]
    opt = build(params)
    closure, _ = _quadratic(params, A32)
    for _ in range(3):
        opt.step(closure)
    sd = opt.state_dict()
    assert sd["state"][0]["0.module.0.step"] == 9
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    params2 = [p.detach().clone().requires_grad_() for p in params]
    opt2 = build(params2)
    opt2.load_state_dict(torch.load(buf, weights_only=True))
    closure2, _ = _quadratic(params2, A32)
    for _ in range(5):
        opt.step(closure)
        opt2.step(closure2)
    for p, q in zip(params, params2):
        assert torch.equal(p, q)


def test_multistep_with_accumulation_inside_moves_once_per_two_inner_steps():
    params = make_params([(3,)])
    A = _matrices([(3,)])
    closure, _ = _quadratic(params, A)
    opt = tz.Modular(params, tz.m.Multistep([tz.m.GradientAccumulation(2), tz.m.LR(0.1)], 2))
    x0 = params[0].detach().clone()
    ps = [x0.clone().requires_grad_()]
    c, _ = _quadratic(ps, A)
    c()
    opt.step(closure)
    # the first inner step accumulates, the second is at the same point: the mean is g(x0)
    torch.testing.assert_close(params[0].detach(), x0 - 0.1 * ps[0].grad, rtol=1e-12, atol=1e-14)
