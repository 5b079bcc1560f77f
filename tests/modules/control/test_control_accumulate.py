"""GradientAccumulation: n accumulated steps equal one step on the mean of n gradients."""
from __future__ import annotations

import io

import pytest
import torch

import torchzero as tz
from conftest import make_params, set_grads

SHAPES = [(6, 4), (4,), (), (3, 2, 2)]


@pytest.mark.parametrize("n", [1, 2, 4])
def test_accumulated_adam_equals_torch_adam_on_mean_gradients(n):
    params = make_params(SHAPES, dtype=torch.float32)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.GradientAccumulation(n), tz.m.Adam(), tz.m.LR(1e-2))
    topt = torch.optim.Adam(ref, lr=1e-2)
    for cycle in range(500 // n):
        acc = [torch.zeros_like(q) for q in ref]
        for k in range(n):
            set_grads(params, cycle * n + k)
            before = [p.detach().clone() for p in params]
            opt.step()
            for a, p in zip(acc, params):
                a += p.grad
            if k < n - 1:  # the step is skipped: nothing moves
                assert all(torch.equal(b, p) for b, p in zip(before, params))
        for q, a in zip(ref, acc):
            q.grad = a / n
        topt.step()
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_skipped_steps_stop_the_chain():
    params = make_params(SHAPES)
    opt = tz.Modular(params, tz.m.GradientAccumulation(3), tz.m.Adam(), tz.m.LR(0.1))
    adam = opt.chain.modules[1]
    for s in range(2):
        set_grads(params, s)
        opt.step()
        assert not adam.state  # Adam has not run yet
    set_grads(params, 2)
    opt.step()
    assert all(adam.state[p]["step"] == 1 for p in params)


def test_sum_instead_of_mean():
    params = make_params(SHAPES)
    opt = tz.Modular(params, tz.m.GradientAccumulation(3, mean=False))
    start = [p.detach().clone() for p in params]
    total = [torch.zeros_like(p) for p in params]
    for s in range(3):
        set_grads(params, s)
        for t, p in zip(total, params):
            t += p.grad
        opt.step()
    for p, s0, t in zip(params, start, total):
        torch.testing.assert_close(p.detach(), s0 - t, rtol=1e-14, atol=1e-14)


def test_stop_false_passes_the_incoming_update_on_non_final_steps():
    params = make_params(SHAPES)
    opt = tz.Modular(params, tz.m.GradientAccumulation(3, stop=False), tz.m.LR(0.5))
    grads = []
    for s in range(6):
        set_grads(params, s)
        grads.append([p.grad.clone() for p in params])
        before = [p.detach().clone() for p in params]
        opt.step()
        if s % 3 == 2:
            expected = [sum(g[i] for g in grads[-3:]) / 3 for i in range(len(params))]
        else:
            expected = grads[-1]
        for b, p, e in zip(before, params, expected):
            torch.testing.assert_close(b - p.detach(), 0.5 * e, rtol=1e-14, atol=1e-14)


def test_missing_gradient_counts_as_zero_and_stale_sums_are_dropped():
    a, b = make_params([(3,), (2,)], dtype=torch.float32)
    opt = tz.Modular([a, b], tz.m.GradientAccumulation(2))
    a0, b0 = a.detach().clone(), b.detach().clone()
    # cycle 1: b has a gradient on the first step only, so it misses the final step
    a.grad, b.grad = torch.ones(3), torch.ones(2)
    opt.step()
    a.grad, b.grad = 3 * torch.ones(3), None
    opt.step()
    torch.testing.assert_close(a.detach(), a0 - 2)  # mean of 1 and 3
    assert torch.equal(b.detach(), b0)  # not moved on the final step
    # cycle 2: a misses the first step (counts as zero); b's stale sum from cycle 1 is not reused
    a.grad, b.grad = None, 10 * torch.ones(2)
    opt.step()
    a.grad, b.grad = 4 * torch.ones(3), 10 * torch.ones(2)
    opt.step()
    torch.testing.assert_close(a.detach(), a0 - 2 - 2)  # (0 + 4) / 2
    torch.testing.assert_close(b.detach(), b0 - 10)  # (10 + 10) / 2, nothing of cycle 1


def test_accumulator_is_not_an_alias_of_the_gradient():
    p = torch.zeros(3, requires_grad=True)
    opt = tz.Modular([p], tz.m.GradientAccumulation(2))
    p.grad = torch.ones(3)
    opt.step()
    p.grad.mul_(100)  # the user reuses the gradient buffer
    p.grad.copy_(torch.ones(3))
    opt.step()
    torch.testing.assert_close(p.detach(), -torch.ones(3))


def test_resume_mid_cycle_is_bitwise():
    def build(params):
        return tz.Modular(params, tz.m.GradientAccumulation(4), tz.m.Adam(), tz.m.LR(0.1))

    params = make_params(SHAPES, dtype=torch.float32)
    opt = build(params)
    for s in range(6):  # one full cycle and half of the next
        set_grads(params, s)
        opt.step()
    sd = opt.state_dict()
    assert sd["param_groups"][0]["torchzero"]["global_state"]["0"]["step"] == 6
    assert {"0.accumulator", "0.cycle", "1.exp_avg"} <= set(sd["state"][0])
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    params2 = [p.detach().clone().requires_grad_() for p in params]
    opt2 = build(params2)
    opt2.load_state_dict(torch.load(buf, weights_only=True))
    for s in range(6, 14):
        set_grads(params, s)
        set_grads(params2, s)
        opt.step()
        opt2.step()
    for p, q in zip(params, params2):
        assert torch.equal(p, q)
