"""The fused fast path agrees with the general chain for every chain shape it accepts."""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from conftest import assert_same_state, make_params, set_grads
from torchzero.functional import cpu_kernels

CHAINS = {
    "adam": lambda: [tz.m.Adam(), tz.m.LR(1e-2)],
    "adam-amsgrad-alpha": lambda: [tz.m.Adam(0.8, 0.99, 1e-6, amsgrad=True, alpha=0.5), tz.m.LR(1e-2)],
    "clipnorm-global": lambda: [tz.m.ClipNorm(1.0, dim="global"), tz.m.Adam(), tz.m.LR(1e-2)],
    "clipnorm-global-grad": lambda: [tz.m.ClipNorm(1.0, dim="global", target="grad"), tz.m.Adam(), tz.m.LR(1e-2)],
    "clipnorm-global-linf": lambda: [tz.m.ClipNorm(0.5, ord="linf", dim="global"), tz.m.Adam(), tz.m.LR(1e-2)],
    "normalize-global": lambda: [tz.m.Normalize(2.0, dim="global"), tz.m.Adam(), tz.m.LR(1e-2)],
}


def _groups(params):
    return [{"params": params[:2]}, {"params": params[2:], "lr": 3e-3, "beta1": 0.5, "max_norm": 0.3, "norm_value": 0.2}]


@pytest.fixture(params=["cpu-kernel", "torch-kernel"])
def backend(request, monkeypatch):
    """The fast path on torchzero's CPU kernel (where it compiles) and on torch's fused kernels."""
    if request.param == "torch-kernel":
        monkeypatch.setattr(cpu_kernels, "library", lambda: None)
    elif cpu_kernels.library() is None:
        pytest.skip("no C compiler here: the fast path uses torch's fused kernels")
    return request.param


def _run(chain, fused, steps=60, grouped=False, dtype=torch.float32):
    params = make_params([(6, 5), (5,), (), (3, 2, 2)], dtype=dtype)
    if dtype == "mixed":
        params = make_params([(6, 5), (5,), (), (3, 2, 2)])
        params = [p.detach().float().requires_grad_() if i % 2 else p for i, p in enumerate(params)]
    opt = tz.Modular(_groups(params) if grouped else params, *chain(), fused=fused)
    grads_after = []
    for s in range(steps):
        set_grads(params, s)
        if s % 7 == 3:
            params[1].grad = None
        opt.step()
        grads_after.append([None if p.grad is None else p.grad.clone() for p in params])
    return params, opt, grads_after


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("grouped", [False, True], ids=["one-group", "two-groups"])
@pytest.mark.parametrize("name", list(CHAINS))
def test_fused_matches_general(name, grouped, dtype, backend):
    p1, o1, g1 = _run(CHAINS[name], None, grouped=grouped, dtype=dtype)
    p2, o2, g2 = _run(CHAINS[name], False, grouped=grouped, dtype=dtype)
    assert o1._fused_plan is not None and o2._fused_plan is None
    for a, b in zip(p1, p2):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    for step_a, step_b in zip(g1, g2):  # p.grad after each step: same semantics on both paths
        for a, b in zip(step_a, step_b):
            if a is None:
                assert b is None
            else:
                torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert_same_state(o1, o2, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", ["adam", "clipnorm-global", "clipnorm-global-grad"])
def test_fused_path_is_taken(monkeypatch, backend, name):
    calls = []
    for mod, fn in ((torch, "_fused_adam_"), (cpu_kernels, "adam_")):
        real = getattr(mod, fn)
        monkeypatch.setattr(mod, fn, lambda *a, _real=real, _fn=fn, **k: (calls.append(_fn), _real(*a, **k))[1])
    _run(CHAINS[name], None, steps=3)
    # the CPU kernel only reads the gradient: target="grad" (which writes it) takes torch's kernel
    own = backend == "cpu-kernel" and name != "clipnorm-global-grad"
    assert calls == ["adam_" if own else "_fused_adam_"] * 3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=["f32", "f64", "bf16"])
def test_update_target_keeps_raw_grad_on_fused_path(backend, dtype):
    params = make_params([(50,)], dtype=dtype)
    opt = tz.Modular(params, tz.m.ClipNorm(1e-3, dim="global"), tz.m.Adam(), tz.m.LR(1e-2))
    set_grads(params, 0)
    g = params[0].grad.clone()
    opt.step()
    assert torch.equal(params[0].grad, g)


def test_switching_paths_mid_run_keeps_state():
    # overrides added mid-run force the general path; the Adam state carries over
    params = make_params([(5, 4), (4,)], dtype=torch.float64)
    ref = [p.detach().clone().requires_grad_() for p in params]
    clip = tz.m.ClipNorm(1.0, dim="global")
    opt = tz.Modular(params, clip, tz.m.Adam(), tz.m.LR(1e-2))
    ref_opt = tz.Modular(ref, tz.m.ClipNorm(1.0, dim="global"), tz.m.Adam(), tz.m.LR(1e-2), fused=False)
    for s in range(10):
        if s == 5:
            clip.set_param_groups([{"params": params, "max_norm": 1.0}])  # same value: must not change results
        set_grads(params, s)
        set_grads(ref, s)
        opt.step()
        ref_opt.step()
    for a, b in zip(params, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_fused_true_on_unfusable_chain_raises():
    with pytest.raises(ValueError, match="no fused form"):
        tz.Modular(make_params([(3,)]), tz.m.ClipNorm(1.0), tz.m.Adam(), tz.m.LR(1e-2), fused=True)


def test_unfusable_settings_fall_back(monkeypatch):
    # per-tensor ClipNorm has no fused form: the general path runs
    calls = []
    monkeypatch.setattr(torch, "_fused_adam_", lambda *a, **k: calls.append(1))
    params = make_params([(5,)], dtype=torch.float64)
    opt = tz.Modular(params, tz.m.ClipNorm(1.0), tz.m.Adam(), tz.m.LR(1e-2))
    set_grads(params, 0)
    opt.step()
    assert not calls and "0.exp_avg" not in opt.state[params[0]] and "1.exp_avg" in opt.state[params[0]]


def test_strided_state_falls_back_to_torch_kernel_per_group(backend):
    """A group whose Adam state isn't contiguous (e.g. loaded so) runs on torch's kernel while the
    other group stays on the CPU kernel; the clip factor is applied once on each."""
    def run(fused):
        params = make_params([(6, 5), (5,), (4, 3)], dtype=torch.float32)
        groups = [{"params": params[:2]}, {"params": params[2:], "lr": 3e-3}]
        opt = tz.Modular(groups, tz.m.ClipNorm(0.5, dim="global"), tz.m.Adam(), tz.m.LR(1e-2), fused=fused)
        for s in range(6):
            set_grads(params, s)
            opt.step()
            if s == 1:  # make the last parameter's moments non-contiguous, same values
                st = opt.chain.modules[1].state[params[2]]
                for k in ("exp_avg", "exp_avg_sq"):
                    st[k] = st[k].t().contiguous().t()
                    assert not st[k].is_contiguous()
        return params

    for a, b in zip(run(None), run(False)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
