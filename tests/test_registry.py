"""Generic tests run over every module in the registry (tests/registry/)."""
from __future__ import annotations

import copy
import inspect
import io
import re

import pytest
import torch

import torchzero as tz
from conftest import make_params, set_grads
from registry import BAD_ARGS, CASES, Case

SHAPES = [(4, 3), (3,), (), (2, 3, 2)]
case_params = pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])


def _opt(case: Case, params, grad_target: bool = False) -> tz.Modular:
    module = case.make_grad() if grad_target else case.make()
    return tz.Modular(params, *case.chain(module))


def _closure_for(params, step):
    def closure(backward=True):
        loss = sum((p * p).sum() for p in params) * (1 + step)
        if backward:
            for p in params:
                p.grad = None
            loss.backward()
        return loss

    return closure


def _step(opt, params, step, case: Case):
    if case.needs_closure:
        return opt.step(_closure_for(params, step))
    set_grads(params, step)
    return opt.step()


def _state_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, dict):
            _state_equal(x, y)
        elif isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and torch.equal(x, y), k
        else:
            assert x == y, k


def test_registry_covers_every_module():
    covered = {name for c in CASES for name in c.covers}
    public = {n for n in tz.m.__all__ if inspect.isclass(getattr(tz.m, n)) and issubclass(getattr(tz.m, n), tz.Module)}
    missing = sorted(public - covered - {"Chain"})
    assert not missing, f"modules without a registry case: {missing}"


@pytest.mark.parametrize("bad", BAD_ARGS, ids=[b.id for b in BAD_ARGS])
def test_bad_argument_raises_at_construction(bad):
    with pytest.raises(bad.exc) as info:
        bad.make()
    assert re.search(bad.match, str(info.value)), str(info.value)


def test_at_least_150_bad_argument_cases():
    assert len(BAD_ARGS) >= 150


@case_params
def test_checkpoint_round_trip_is_bitwise(case):
    params = make_params(SHAPES, dtype=torch.float32)
    opt = _opt(case, params)
    for s in range(3):
        _step(opt, params, s, case)
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    sd = torch.load(buf, weights_only=True)
    params2 = [p.detach().clone().requires_grad_() for p in params]
    opt2 = _opt(case, params2)
    opt2.load_state_dict(sd)
    for s in range(3, 7):
        _step(opt, params, s, case)
        _step(opt2, params2, s, case)
    for p, q in zip(params, params2):
        assert torch.equal(p, q)
    _state_equal(opt.state_dict()["state"], opt2.state_dict()["state"])


@case_params
def test_deepcopy_steps_bitwise(case):
    params = make_params(SHAPES, dtype=torch.float32)
    opt = _opt(case, params)
    for s in range(2):
        _step(opt, params, s, case)
    clone = copy.deepcopy(opt)
    cparams = [p for g in clone.param_groups for p in g["params"]]
    for s in range(2, 5):
        _step(opt, params, s, case)
        _step(clone, cparams, s, case)
    for p, q in zip(params, cparams):
        assert torch.equal(p, q)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@case_params
def test_zero_gradients_give_no_nan(case, dtype):
    if case.needs_closure:
        pytest.skip("evaluates its own closure")
    if dtype == torch.float16 and "torch-optimizer" in case.tags:
        pytest.skip("a wrapped torch.optim optimizer behaves as torch does (Adam's eps is 0 in float16)")
    params = [p.detach().to(dtype).requires_grad_() for p in make_params(SHAPES + [(0,), (3, 0)], dtype=torch.float32)]
    opt = _opt(case, params)
    for _ in range(3):
        for p in params:
            p.grad = torch.zeros_like(p)
        opt.step()
    for p in params:
        assert torch.isfinite(p).all()
    for st in opt.state.values():
        for v in st.values():
            if isinstance(v, torch.Tensor) and v.is_floating_point():
                assert not torch.isnan(v).any()


@case_params
def test_missing_gradient_leaves_param_and_state_untouched(case):
    if case.needs_closure:
        pytest.skip("evaluates its own closure")
    params = make_params(SHAPES, dtype=torch.float32)
    opt = _opt(case, params)
    for s in range(2):
        _step(opt, params, s, case)
    frozen = params[1]
    before = frozen.detach().clone()
    state_before = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in opt.state[frozen].items()}
    for s in range(2, 5):
        set_grads(params, s)
        frozen.grad = None
        opt.step()
    assert torch.equal(frozen, before)
    _state_equal(state_before, opt.state[frozen])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
@case_params
def test_dtypes(case, dtype):
    params = make_params(SHAPES, dtype=torch.float32)
    params = [p.detach().to(dtype).requires_grad_() for p in params]
    opt = _opt(case, params)
    for s in range(3):
        _step(opt, params, s, case)
    for p in params:
        assert p.dtype == dtype and torch.isfinite(p).all()


@case_params
def test_mixed_dtypes_in_one_optimizer(case):
    a, b, c = make_params([(4, 3), (3,), (2, 2)], dtype=torch.float32)
    params = [a.detach().half().requires_grad_(), b.detach().double().requires_grad_(), c]
    opt = _opt(case, params)
    for s in range(3):
        _step(opt, params, s, case)
    assert all(torch.isfinite(p).all() for p in params)


@pytest.mark.parametrize("case", [c for c in CASES if c.target_grad], ids=[c.id for c in CASES if c.target_grad])
def test_target_grad_writes_the_gradient(case):
    params = make_params(SHAPES, dtype=torch.float64)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, case.make_grad())
    ref_opt = tz.Modular(ref, case.make())
    for s in range(3):
        set_grads(params, s)
        set_grads(ref, s)
        before = [p.detach().clone() for p in params]
        opt.step()
        ref_opt.step()
        for b, p, q in zip(before, params, ref):
            # p moved by exactly its (transformed) gradient, and agrees with the update-target run
            torch.testing.assert_close(b - p.detach(), p.grad, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)


@case_params
def test_complex_params_equal_the_run_on_real_views(case):
    if case.needs_closure:
        pytest.skip("its closure computes a real loss of real parameters")
    if "real-only" in case.tags:
        pytest.skip("refuses complex parameters, as its torch.optim counterpart does (tested with the module)")
    g = torch.Generator().manual_seed(0)
    cplx = [torch.randn(s, dtype=torch.complex64, generator=g).requires_grad_() for s in [(4, 3), (3,)]]
    real = [torch.view_as_real(p.detach()).clone().requires_grad_() for p in cplx]
    opt_c = _opt(case, cplx)
    opt_r = _opt(case, real)
    for s in range(4):
        gen = torch.Generator().manual_seed(s)
        for pc, pr in zip(cplx, real):
            gc = torch.randn(pc.shape, dtype=torch.complex64, generator=gen)
            pc.grad = gc
            pr.grad = torch.view_as_real(gc).clone()
        opt_c.step()
        opt_r.step()
    for pc, pr in zip(cplx, real):
        assert torch.equal(torch.view_as_real(pc.detach()), pr.detach())
