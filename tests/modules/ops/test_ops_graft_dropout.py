"""Graft against a direct computation of the norms; Dropout's statistics, grafting and reproducibility."""
from __future__ import annotations

import io
import math

import pytest
import torch

import torchzero as tz
from conftest import make_params, set_grads
from torchzero.functional.ops import dropout_, graft_

SHAPES = [(4, 3), (3,), (), (2, 3, 2)]


def _tensors(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=dtype) for s in SHAPES]


def _norm(t, ord):
    flat = t.reshape(-1).double()
    if ord == "mad":
        return flat.abs().mean()
    return torch.linalg.vector_norm(flat, ord)


# ------------------------------------------------------------------ Graft
@pytest.mark.parametrize("ord", [2, 1, math.inf, "mad"], ids=lambda o: f"ord={o}")
@pytest.mark.parametrize("tensorwise", [True, False], ids=["tensorwise", "global"])
def test_graft_keeps_direction_and_takes_magnitude_norm(tensorwise, ord):
    u = _tensors(0)
    # the magnitude chain is |u| + 1: a different direction, so the norms differ from u's
    out = tz.apply_transform(tz.m.Graft([tz.m.Abs(), tz.m.Add(1.0)], tensorwise=tensorwise, ord=ord), u)
    m = [t.abs() + 1 for t in u]
    if tensorwise:
        expected = [t * _norm(mi, ord) / max(_norm(t, ord), 1e-6) for t, mi in zip(u, m)]
    else:
        cat_u, cat_m = torch.cat([t.reshape(-1) for t in u]), torch.cat([t.reshape(-1) for t in m])
        expected = [t * _norm(cat_m, ord) / _norm(cat_u, ord) for t in u]
    for o, e in zip(out, expected):
        torch.testing.assert_close(o, e, rtol=1e-12, atol=1e-14)


def test_graft_takes_adams_norm_per_tensor():
    params = make_params(SHAPES)
    opt = tz.Modular(params, tz.m.Sign(), tz.m.Graft([tz.m.Grad(), tz.m.Adam()]))
    ref_adam = tz.m.Adam()
    ref_params = [p.detach().clone() for p in params]
    for s in range(5):
        set_grads(params, s)
        grads = [p.grad.clone() for p in params]
        adam_step = tz.apply_transform(ref_adam, grads, params=ref_params)
        expected = [g.sign() * a.norm() / max(g.sign().norm(), 1e-6) for g, a in zip(grads, adam_step)]
        before = [p.detach().clone() for p in params]
        opt.step()
        for b, p, e in zip(before, params, expected):
            torch.testing.assert_close(b - p.detach(), e, rtol=1e-12, atol=1e-14)


def test_graft_of_zero_update_stays_zero():
    out = tz.apply_transform(tz.m.Graft(tz.m.Add(1.0)), [torch.zeros(3), torch.zeros(2, 2)])
    assert all(torch.equal(o, torch.zeros_like(o)) for o in out)


def test_graft_eps_bounds_the_denominator():
    u = torch.tensor([1e-9, 0.0])
    out = graft_([u.clone()], [torch.tensor([1.0, 0.0])], eps=1e-6)[0]
    torch.testing.assert_close(out, u * (1.0 / 1e-6))


def test_graft_tensorwise_is_independent_of_parameter_order():
    u = _tensors(0)
    out = tz.apply_transform(tz.m.Graft(tz.m.Abs(), ord=1), u)
    out_rev = tz.apply_transform(tz.m.Graft(tz.m.Abs(), ord=1), u[::-1])
    for a, b in zip(out, out_rev[::-1]):
        assert torch.equal(a, b)


def test_graft_global_groups_follow_param_group_settings():
    a, b, c = make_params([(3,), (4,), (2,)])
    opt = tz.Modular([{"params": [a, b]}, {"params": [c], "tensorwise": True}], tz.m.Graft(tz.m.Mul(2.0), tensorwise=False))
    set_grads([a, b, c], 0)
    grads = [p.grad.clone() for p in (a, b, c)]
    before = [p.detach().clone() for p in (a, b, c)]
    opt.step()
    # global over {a, b}: scaled by 2 * ||g_ab|| / ||g_ab|| = 2; c tensorwise: also exactly 2
    for p, b0, g in zip((a, b, c), before, grads):
        torch.testing.assert_close(b0 - p.detach(), 2 * g, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_graft_low_precision(dtype):
    u = [t.to(dtype) for t in _tensors(0)]
    out = tz.apply_transform(tz.m.Graft(tz.m.Mul(3.0)), u)
    for o, t in zip(out, u):
        assert o.dtype == dtype
        torch.testing.assert_close(o.float(), 3 * t.float(), rtol=2e-2, atol=1e-2)


# ------------------------------------------------------------------ Dropout
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_zeroes_a_fraction_p_and_keeps_the_rest(p):
    torch.manual_seed(0)
    u = torch.rand(200_000, dtype=torch.float64) + 1.0  # no zeros before dropout
    out = tz.apply_transform(tz.m.Dropout(p), [u])[0]
    dropped = (out == 0).double().mean().item()
    assert abs(dropped - p) < 0.01
    kept = out != 0
    assert torch.equal(out[kept], u[kept])  # no 1/(1-p) rescaling


def test_dropout_masks_differ_between_tensors_and_steps():
    torch.manual_seed(0)
    u = [torch.ones(1000), torch.ones(1000)]
    a = tz.apply_transform(tz.m.Dropout(0.5), u)
    b = tz.apply_transform(tz.m.Dropout(0.5), u)
    assert not torch.equal(a[0], a[1]) and not torch.equal(a[0], b[0])


def test_dropout_graft_restores_the_global_l2_norm():
    torch.manual_seed(1)
    u = _tensors(0)
    before = torch.cat([t.reshape(-1) for t in u]).norm()
    out = tz.apply_transform(tz.m.Dropout(0.5, graft=True), u)
    after = torch.cat([t.reshape(-1) for t in out]).norm()
    torch.testing.assert_close(after, before, rtol=1e-12, atol=0)
    kept_norm = torch.cat([(t * (o != 0)).reshape(-1) for t, o in zip(u, out)]).norm()
    for o, t in zip(out, u):  # each element is either dropped or scaled by the same factor
        torch.testing.assert_close(o, t * (o != 0) * (before / kept_norm), rtol=1e-12, atol=0)


def test_dropout_graft_of_all_dropped_stays_zero():
    out = dropout_([torch.zeros(5)], 0.5, graft=True)[0]
    assert torch.equal(out, torch.zeros(5))


def test_dropout_is_reproducible_under_manual_seed():
    def run():
        torch.manual_seed(123)
        params = make_params(SHAPES, dtype=torch.float32)
        opt = tz.Modular(params, tz.m.Dropout(0.3), tz.m.Adam(), tz.m.LR(0.1))
        for s in range(5):
            set_grads(params, s)
            opt.step()
        return params

    for p, q in zip(run(), run()):
        assert torch.equal(p, q)


def test_dropout_p0_is_identity_and_draws_nothing():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    u = _tensors(0)
    out = tz.apply_transform(tz.m.Dropout(0.0, graft=True), u)
    assert all(torch.equal(o, t) for o, t in zip(out, u))
    assert torch.equal(torch.get_rng_state(), state)


def test_dropout_per_group_p():
    torch.manual_seed(0)
    a = torch.zeros(50_000, requires_grad=True)
    b = torch.zeros(50_000, requires_grad=True)
    opt = tz.Modular([{"params": [a]}, {"params": [b], "p": 0.0}], tz.m.Dropout(0.5))
    a.grad, b.grad = -torch.ones_like(a), -torch.ones_like(b)
    opt.step()
    assert abs((a == 0).float().mean().item() - 0.5) < 0.01
    assert (b == 1).all()


def test_dropout_checkpoint_resume_with_rng_state_is_bitwise():
    """The optimizer's state_dict does not hold the RNG state; saved beside it, a resume is bitwise."""

    def build(params):
        return tz.Modular(params, tz.m.Dropout(0.5, graft=True), tz.m.Adam(), tz.m.LR(0.1))

    torch.manual_seed(0)
    params = make_params(SHAPES, dtype=torch.float32)
    opt = build(params)
    for s in range(3):
        set_grads(params, s)
        opt.step()
    buf = io.BytesIO()
    torch.save({"params": [p.detach().clone() for p in params], "opt": opt.state_dict(), "rng": torch.get_rng_state()}, buf)
    for s in range(3, 8):  # the uninterrupted run
        set_grads(params, s)
        opt.step()

    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    torch.manual_seed(999)  # a different generator state until the checkpoint restores it
    params2 = [p.clone().requires_grad_() for p in ckpt["params"]]
    opt2 = build(params2)
    opt2.load_state_dict(ckpt["opt"])
    torch.set_rng_state(ckpt["rng"])
    for s in range(3, 8):
        set_grads(params2, s)
        opt2.step()
    for p, q in zip(params, params2):
        assert torch.equal(p, q)
