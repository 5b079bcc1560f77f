"""The fused form of ``Muon [WeightDecay] LR`` (torch.optim.Muon's loop) agrees with the chain of
modules, keeps the same state, and steps aside where it can't take the settings."""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
import torchzero.core.fused_muon as fused_muon
from conftest import assert_same_state, make_params, set_grads

F64 = torch.float64
SHAPES = [(6, 5), (5,), (), (3, 2, 2), (4, 9), (0, 3)]  # matrices, a vector, a scalar, a conv-shaped, empty

CHAINS = {
    "muon-lr": lambda: [tz.m.Muon(), tz.m.LR(2e-2)],
    "muon-wd-lr": lambda: [tz.m.Muon(), tz.m.WeightDecay(0.1), tz.m.LR(2e-2)],
    "options": lambda: [
        tz.m.Muon(0.9, False, (3.0, -3.2, 1.2), 1e-4, 3, "match_rms_adamw", ns_dtype="float64"),
        tz.m.WeightDecay(0.05),
        tz.m.LR(1e-2),
    ],
}


def _groups(params):
    return [{"params": params[:3]}, {"params": params[3:], "lr": 5e-3, "momentum": 0.8, "weight_decay": 0.01}]


def _run(chain, fused, steps=200, grouped=False, dtype=F64):
    params = make_params(SHAPES, dtype=dtype)
    opt = tz.Modular(_groups(params) if grouped else params, *chain(), fused=fused)
    for s in range(steps):
        set_grads(params, s)
        if s % 7 == 3:
            params[1].grad = None  # a parameter without a gradient this step
        raw = [None if p.grad is None else p.grad.clone() for p in params]
        opt.step()
        for p, g in zip(params, raw):
            assert g is None or torch.equal(p.grad, g), "p.grad changed"
    return params, opt


@pytest.mark.parametrize("grouped", [False, True], ids=["one-group", "two-groups"])
@pytest.mark.parametrize("name", list(CHAINS))
def test_fused_muon_matches_the_chain(name, grouped):
    p1, o1 = _run(CHAINS[name], None, grouped=grouped)
    p2, o2 = _run(CHAINS[name], False, grouped=grouped)
    assert isinstance(o1._fused_plan, fused_muon.FusedMuon) and o2._fused_plan is None
    for a, b in zip(p1, p2):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert_same_state(o1, o2, rtol=1e-10, atol=1e-12)


def test_fused_path_is_taken_and_steps_aside_for_overrides_and_tensor_lr(monkeypatch):
    calls = []
    real = fused_muon.muon_step_
    monkeypatch.setattr(fused_muon, "muon_step_", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    _run(CHAINS["muon-wd-lr"], None, steps=3)
    assert len(calls) == 3
    calls.clear()
    _run(lambda: [tz.m.Muon(), tz.m.LR(torch.tensor(2e-2, dtype=F64))], None, steps=3)
    assert not calls  # a tensor learning rate: the chain runs
    params = make_params(SHAPES)
    muon = tz.m.Muon()
    opt = tz.Modular(params, muon, tz.m.LR(2e-2))
    muon.set_param_groups([{"params": params[:1], "momentum": 0.5}])  # an override: the chain runs
    set_grads(params, 0)
    opt.step()
    assert not calls


def test_switching_paths_mid_run_keeps_the_momentum():
    params = make_params(SHAPES)
    ref = [p.detach().clone().requires_grad_() for p in params]
    muon = tz.m.Muon()
    opt = tz.Modular(params, muon, tz.m.WeightDecay(0.1), tz.m.LR(2e-2))
    ref_opt = tz.Modular(ref, tz.m.Muon(), tz.m.WeightDecay(0.1), tz.m.LR(2e-2), fused=False)
    for s in range(12):
        if s == 6:
            muon.set_param_groups([{"params": params, "momentum": 0.95}])  # same value, general path from here
        set_grads(params, s)
        set_grads(ref, s)
        opt.step()
        ref_opt.step()
    for a, b in zip(params, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_fused_true_is_accepted_and_refused_where_there_is_no_fused_form():
    tz.Modular(make_params([(3, 2)]), tz.m.Muon(), tz.m.WeightDecay(0.1), tz.m.LR(2e-2), fused=True)
    with pytest.raises(ValueError, match="Muon \\[WeightDecay\\] LR"):
        tz.Modular(make_params([(3, 2)]), tz.m.Muon(), tz.m.Mul(2.0), tz.m.LR(2e-2), fused=True)


def test_a_momentum_buffer_of_another_shape_is_refused_before_anything_changes():
    params = make_params([(4, 3)])
    opt = tz.Modular(params, tz.m.Muon(), tz.m.LR(2e-2))
    set_grads(params, 0)
    opt.step()
    key = next(k for k in opt.state[params[0]] if k.endswith("momentum_buffer"))
    opt.state[params[0]][key] = torch.zeros(3, 4, dtype=F64)
    before = params[0].detach().clone()
    with pytest.raises(RuntimeError, match="momentum_buffer"):
        opt.step()
    assert torch.equal(params[0].detach(), before)
