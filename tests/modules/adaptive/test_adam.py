"""Adam against torch.optim.Adam and against a small reference for the options torch lacks."""
from __future__ import annotations

import math

import pytest
import torch

import torchzero as tz
from conftest import make_params, set_grads


def _run_pair(tz_modules, torch_opt_fn, steps, shapes=((6, 4), (4,), (), (3, 2, 2)), dtype=torch.float32, groups=None):
    params = make_params(shapes, dtype=dtype)
    ref = [p.detach().clone().requires_grad_() for p in params]
    if groups is None:
        opt = tz.Modular(params, *tz_modules)
        topt = torch_opt_fn(ref)
    else:
        opt = tz.Modular(groups(params), *tz_modules)
        topt = torch_opt_fn(groups(ref))
    for step in range(steps):
        set_grads(params, step)
        set_grads(ref, step)
        opt.step()
        topt.step()
    return params, ref


@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
def test_matches_torch_adam_1000_steps(amsgrad):
    params, ref = _run_pair(
        [tz.m.Adam(0.9, 0.99, 1e-8, amsgrad=amsgrad), tz.m.LR(1e-2)],
        lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.9, 0.99), eps=1e-8, amsgrad=amsgrad),
        1000,
    )
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_param_groups_with_different_settings_match_torch():
    def groups(ps):
        return [
            {"params": ps[:2], "lr": 1e-2},
            {"params": ps[2:], "lr": 3e-3, "beta1": 0.8, "betas": (0.8, 0.95), "beta2": 0.95, "eps": 1e-6},
        ]

    def torch_groups(ps):
        gs = groups(ps)
        for g in gs:
            g.pop("beta1", None), g.pop("beta2", None)
        return gs

    params = make_params(((6, 4), (4,), (5,), (2, 2)), dtype=torch.float32)
    ref = [p.detach().clone().requires_grad_() for p in params]
    gs = groups(params)
    for g in gs:
        g.pop("betas", None)
    opt = tz.Modular(gs, tz.m.Adam(), tz.m.LR(1e-3))
    topt = torch.optim.Adam(torch_groups(ref), lr=1e-3)
    for step in range(500):
        set_grads(params, step)
        set_grads(ref, step)
        opt.step()
        topt.step()
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_missing_grads_are_corrected_per_parameter_like_torch():
    params = make_params(((4,), (3,)), dtype=torch.float64)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.Adam(), tz.m.LR(1e-2))
    topt = torch.optim.Adam(ref, lr=1e-2)
    for step in range(30):
        set_grads(params, step)
        set_grads(ref, step)
        if step % 3 == 0:  # the second parameter misses every third gradient
            params[1].grad = None
            ref[1].grad = None
        opt.step()
        topt.step()
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)


def _ref_adam(grads, beta1, beta2, eps, alpha, pow, debiased, amsgrad):
    """Reference: a plain loop over steps for one tensor; returns the list of updates."""
    m = torch.zeros_like(grads[0])
    v = torch.zeros_like(grads[0])
    vmax = torch.zeros_like(grads[0])
    out = []
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g.abs() ** pow
        vmax = torch.maximum(vmax, v)
        vv = vmax if amsgrad else v
        if debiased:
            num, den = m / (1 - beta1**t), (vv / (1 - beta2**t)) ** (1 / pow)
        else:
            num, den = m, vv ** (1 / pow)
        out.append(alpha * num / (den + eps))
    return out


@pytest.mark.parametrize(
    "kw",
    [
        dict(pow=3),
        dict(pow=1.5, amsgrad=True),
        dict(debiased=False),
        dict(alpha=0.5, eps=1e-3),
        dict(beta1=0.0, beta2=0.5),
    ],
    ids=["pow3", "pow1.5-amsgrad", "not-debiased", "alpha-eps", "beta1-zero"],
)
def test_options_match_reference(kw):
    full = dict(beta1=0.9, beta2=0.999, eps=1e-8, alpha=1.0, pow=2, debiased=True, amsgrad=False) | kw
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(5, generator=g, dtype=torch.float64) for _ in range(20)]
    mod = tz.m.Adam(**full)
    (p,) = make_params([(5,)])
    got = [tz.apply_transform(mod, [gr], params=[p])[0] for gr in grads]
    for a, b in zip(got, _ref_adam(grads, **full)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_inner_transforms_the_first_moment():
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(5, generator=g, dtype=torch.float64) for _ in range(5)]
    (p,) = make_params([(5,)])
    mod = tz.m.Adam(inner=tz.m.LR(2.0))
    got = [tz.apply_transform(mod, [gr], params=[p])[0] for gr in grads]
    # doubling the numerator doubles the update, eps aside
    ref = _ref_adam(grads, 0.9, 0.999, 1e-8, 2.0, 2, True, False)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "kw, exc, name",
    [
        (dict(beta1=1.0), ValueError, "beta1"),
        (dict(beta1=-0.1), ValueError, "beta1"),
        (dict(beta2=math.nan), ValueError, "beta2"),
        (dict(beta2="0.9"), TypeError, "beta2"),
        (dict(eps=-1e-8), ValueError, "eps"),
        (dict(eps=math.inf), ValueError, "eps"),
        (dict(alpha=math.nan), ValueError, "alpha"),
        (dict(pow=0), ValueError, "pow"),
        (dict(amsgrad=1), TypeError, "amsgrad"),
        (dict(debiased="yes"), TypeError, "debiased"),
        (dict(inner="LR"), TypeError, "inner"),
    ],
    ids=lambda x: repr(x) if isinstance(x, dict) else None,
)
def test_bad_arguments(kw, exc, name):
    with pytest.raises(exc, match=f"Adam.*{name}"):
        tz.m.Adam(**kw)


# ------------------------------------------------------------------ state and precision
def test_step_is_a_0dim_float_tensor_like_torch():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(3))
    ref_w = torch.nn.Parameter(w.detach().clone())
    opt, ref = tz.Modular([w], tz.m.Adam(), tz.m.LR(1e-2)), torch.optim.Adam([ref_w], lr=1e-2)
    for _ in range(3):
        w.grad = ref_w.grad = torch.randn(3)
        opt.step()
        ref.step()
    mine, theirs = opt.state[w]["0.step"], ref.state[ref_w]["step"]
    assert type(mine) is torch.Tensor and mine.shape == theirs.shape == ()
    assert mine.dtype == theirs.dtype and mine.device == theirs.device and mine.item() == theirs.item() == 3


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_half_precision_general_path_matches_fused_and_stays_finite(dtype):
    torch.manual_seed(0)
    grads = [torch.randn(64) * 1e-4 for _ in range(20)]  # small: eps=1e-8 would round to 0 in float16
    out = {}
    for fused in (False, None):
        w = torch.nn.Parameter(torch.ones(64, dtype=dtype))
        opt = tz.Modular([w], tz.m.Adam(), tz.m.LR(1e-3), fused=fused)
        for g in grads:
            w.grad = g.to(dtype)
            opt.step()
        assert w.isfinite().all(), f"fused={fused}"
        out[fused] = w.detach().float()
    # the same float32 math; the general path rounds the update to the parameter's dtype once more
    tol = 2e-3 if dtype == torch.float16 else 2e-2
    torch.testing.assert_close(out[False], out[None], rtol=tol, atol=tol)


@pytest.mark.parametrize("fused", [False, None], ids=["general", "fused"])
def test_eps_zero_with_zero_update_is_zero_not_nan(fused):
    w = torch.nn.Parameter(torch.ones(5))
    opt = tz.Modular([w], tz.m.ClipNorm(0.0), tz.m.Adam(eps=0.0), tz.m.LR(0.1), fused=fused)
    w.grad = torch.randn(5)
    opt.step()
    assert torch.equal(w.detach(), torch.ones(5))
    w.grad = torch.tensor([0.0, 1.0, 0.0, -2.0, 0.0])
    opt = tz.Modular([w], tz.m.Adam(eps=0.0), tz.m.LR(0.1), fused=fused)
    opt.step()
    assert w.isfinite().all()
    torch.testing.assert_close(w.detach(), torch.tensor([1.0, 0.9, 1.0, 1.1, 1.0]))
