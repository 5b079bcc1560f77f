"""Non-finite gradients, for every module in the registry: the Modular-level policy.

Under ``nonfinite="skip"`` (the default) and ``"raise"`` a bad step changes nothing, bitwise;
under ``"propagate"`` a NaN reaches only its own parameter.
"""
from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import torch

import torchzero as tz
from conftest import make_params, set_grads
from registry import CASES

SHAPES = [(4, 3), (3,), (2, 2)]
BAD = {"nan": math.nan, "+inf": math.inf, "-inf": -math.inf}
cases = [c for c in CASES if not c.needs_closure]


def _snapshot(opt, params):
    return [p.detach().clone() for p in params], copy.deepcopy(opt.state_dict())


def _assert_same(snap, opt, params):
    ps, sd = snap
    for a, b in zip(ps, params):
        assert torch.equal(a, b)
    now = opt.state_dict()["state"]
    assert sd["state"].keys() == now.keys()
    for i in now:
        assert sd["state"][i].keys() == now[i].keys()
        for k, v in now[i].items():
            if isinstance(v, torch.Tensor):
                assert torch.equal(v, sd["state"][i][k]), k
            else:
                assert v == sd["state"][i][k], k


def _poison(params, value, whole):
    g = params[0].grad
    if whole:
        g.fill_(value)
    else:
        g.view(-1)[1] = value


@pytest.mark.parametrize("whole", [False, True], ids=["one-element", "whole-tensor"])
@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize("policy", ["skip", "raise"])
@pytest.mark.parametrize("case", cases, ids=[c.id for c in cases])
def test_bad_step_changes_nothing(case, policy, bad, whole):
    params = make_params(SHAPES, dtype=torch.float32)
    opt = tz.Modular(params, *case.chain(case.make()), nonfinite=policy)
    for s in range(2):
        set_grads(params, s)
        opt.step()
    snap = _snapshot(opt, params)
    set_grads(params, 2)
    _poison(params, BAD[bad], whole)
    if policy == "raise":
        with pytest.raises(FloatingPointError, match="NaN or inf"):
            opt.step()
    else:
        with pytest.warns(RuntimeWarning, match="skipped a step"):
            opt.step()
        assert opt.skipped_steps == 1
    _assert_same(snap, opt, params)
    # and the run goes on normally afterwards
    set_grads(params, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
    assert all(torch.isfinite(p).all() for p in params)


@pytest.mark.parametrize("global_", [False, True], ids=["per-tensor", "global"])
def test_propagate_keeps_finite_params_finite(global_):
    # a NaN gradient poisons its own parameter only, also through a global clip
    params = make_params(SHAPES, dtype=torch.float32)
    clip = tz.m.ClipNorm(1.0, dim="global" if global_ else None)
    opt = tz.Modular(params, clip, tz.m.Adam(), tz.m.LR(1e-2), nonfinite="propagate")
    set_grads(params, 0)
    params[0].grad.view(-1)[0] = math.nan
    opt.step()
    assert torch.isnan(params[0]).any()
    assert all(torch.isfinite(p).all() for p in params[1:])


def test_nonfinite_loss_from_closure_is_skipped():
    params = make_params(SHAPES, dtype=torch.float32)
    opt = tz.Modular(params, tz.m.Adam(), tz.m.LR(1e-2))
    before = [p.detach().clone() for p in params]

    def closure(backward=True):
        loss = sum((p * p).sum() for p in params) * math.inf
        if backward:
            for p in params:
                p.grad = torch.ones_like(p)
        return loss

    with pytest.warns(RuntimeWarning, match="the loss"):
        opt.step(closure)
    assert all(torch.equal(a, b) for a, b in zip(before, params))


@pytest.mark.parametrize(
    "loss",
    [math.nan, math.inf, -math.inf, np.float32("nan"), np.float64("inf")],
    ids=["py-nan", "py-inf", "py--inf", "np.float32-nan", "np.float64-inf"],
)
@pytest.mark.parametrize("policy", ["skip", "raise"])
def test_nonfinite_number_loss_from_closure(loss, policy):
    """A closure may return a plain number (loss.item()): NaN and inf are caught as a tensor's are."""
    params = make_params(SHAPES, dtype=torch.float32)
    opt = tz.Modular(params, tz.m.Adam(), tz.m.LR(1e-2), nonfinite=policy)
    before = [p.detach().clone() for p in params]

    def closure(backward=True):
        if backward:
            for p in params:
                p.grad = torch.ones_like(p)
        return loss

    if policy == "skip":
        with pytest.warns(RuntimeWarning, match="the loss"):
            opt.step(closure)
    else:
        with pytest.raises(FloatingPointError, match="the loss"):
            opt.step(closure)
    assert all(torch.equal(a, b) for a, b in zip(before, params))


def test_bad_policy():
    with pytest.raises(ValueError, match="nonfinite.*'ignore'"):
        tz.Modular(make_params([(2,)]), tz.m.LR(0.1), nonfinite="ignore")


def test_skipped_steps_count_survives_a_checkpoint():
    params = make_params(SHAPES, dtype=torch.float32)
    opt = tz.Modular(params, tz.m.Adam(), tz.m.LR(1e-2))
    set_grads(params, 0)
    params[0].grad[0, 0] = math.nan
    with pytest.warns(RuntimeWarning):
        opt.step()
    opt2 = tz.Modular([p.detach().clone().requires_grad_() for p in params], tz.m.Adam(), tz.m.LR(1e-2))
    opt2.load_state_dict(opt.state_dict())
    assert opt2.skipped_steps == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize("bad", list(BAD))
def test_finite_probe_is_finite_iff_all_elements_are(bad, dtype):
    from torchzero.functional.norms import finite_probe

    g = torch.Generator().manual_seed(0)
    ts = [(torch.randn(s, generator=g) * 100).to(dtype) for s in [(5, 4), (7,), (), (0,)]]
    assert torch.isfinite(finite_probe(ts))
    for i in range(3):
        poisoned = [t.clone() for t in ts]
        poisoned[i].view(-1)[0] = BAD[bad]
        assert not torch.isfinite(finite_probe(poisoned))
    # +inf and -inf in different tensors must not cancel
    mixed = [t.clone() for t in ts]
    mixed[0].view(-1)[0], mixed[1].view(-1)[0] = math.inf, -math.inf
    assert not torch.isfinite(finite_probe(mixed))


# ------------------------------------------------ the check taken from the first module's probe
PROBING = {
    "ClipNorm": lambda: tz.m.ClipNorm(0.5),
    "ClipNorm-global": lambda: tz.m.ClipNorm(0.5, dim="global"),
    "ClipNorm-dim0-min_size": lambda: tz.m.ClipNorm(0.5, dim=0, min_size=4),
    "ClipNorm-linf": lambda: tz.m.ClipNorm(0.5, ord="linf"),
    "Normalize": lambda: tz.m.Normalize(2.0),
    "Centralize": lambda: tz.m.Centralize(),
    "Centralize-rows": lambda: tz.m.Centralize(dim=0, inverse_dims=True),
    "Centralize-global": lambda: tz.m.Centralize(dim="global"),
}
PROBE_SHAPES = [(4, 3), (3,), (), (2, 2), (1,)]  # 1-D and 0-dim tensors: left unchanged by some settings


@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize("where", range(len(PROBE_SHAPES)), ids=[f"tensor{i}" for i in range(len(PROBE_SHAPES))])
@pytest.mark.parametrize("name", list(PROBING))
def test_probing_first_module_skips_bad_steps(name, where, bad):
    """A stateless first module runs before the check, which reads its norms or means: a NaN or
    inf in any tensor (one it scales, one it leaves unchanged) still skips the step, bitwise."""
    params = make_params(PROBE_SHAPES)
    opt = tz.Modular(params, PROBING[name](), tz.m.Adam(), tz.m.LR(0.1))
    set_grads(params, 0)
    opt.step()
    snap = _snapshot(opt, params)
    set_grads(params, 1)
    params[where].grad.view(-1)[0] = BAD[bad]
    with pytest.warns(RuntimeWarning, match="skipped a step"):
        opt.step()
    _assert_same(snap, opt, params)
    assert opt.stats() == {}


@pytest.mark.parametrize("name", list(PROBING))
def test_probing_first_module_spares_the_extra_read(name, monkeypatch):
    import torchzero.core.modular as modular

    calls = []
    real = modular.finite_probe
    monkeypatch.setattr(modular, "finite_probe", lambda ts: (calls.append(1), real(ts))[1])
    params = make_params(PROBE_SHAPES)
    opt = tz.Modular(params, PROBING[name](), tz.m.LR(0.1))
    set_grads(params, 0)
    opt.step()
    assert calls == []
    # an order whose norm doesn't propagate NaN (counting non-zeros) gives no probe: the gradients are read
    opt = tz.Modular(params, tz.m.ClipNorm(0.5, ord=0), tz.m.LR(0.1))
    opt.step()
    assert calls == [1]
