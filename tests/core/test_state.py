"""``Modular.state`` is a dict as ``torch.optim``'s is, and every write to it reaches the modules;
state-dict hooks see and change what ``torch.optim``'s hooks see and change."""
from __future__ import annotations

import copy
import pickle
from collections import OrderedDict, defaultdict

import pytest
import torch

import torchzero as tz


def adam_chain(params, **kw):
    return tz.Modular(params, tz.m.ClipNorm(1.0), tz.m.Adam(), tz.m.LR(1e-2), **kw)


def make(seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g, dtype=dtype)) for s in [(4, 3), (3,)]]


def grads_for(params, step: int):
    g = torch.Generator().manual_seed(1000 + step)
    return [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]


def run(opt, params, start: int, stop: int) -> None:
    for i in range(start, stop):
        for p, g in zip(params, grads_for(params, i)):
            p.grad = g
        opt.step()


def test_state_is_a_defaultdict_holding_any_key():
    params = make()
    opt = adam_chain(params)
    assert isinstance(opt.state, defaultdict) and isinstance(opt.state, dict)
    assert not opt.state  # nothing before the first step, as torch.optim (DCP relies on it)
    opt.state["note"] = 1
    run(opt, params, 0, 2)
    assert opt.state["note"] == 1
    sd = opt.state_dict()
    assert sd["state"]["note"] == 1  # kept as it is, as torch.optim keeps other keys
    new_params = make()
    new = adam_chain(new_params)
    new.load_state_dict(sd)
    assert new.state["note"] == 1


def test_param_state_layout_and_flat_keys():
    params = make()
    opt = adam_chain(params)
    run(opt, params, 0, 1)
    st = opt.state[params[0]]
    assert isinstance(st, dict)
    # flat, as state_dict() saves it: each value is what the module stores
    assert set(st) >= {"1.exp_avg", "1.exp_avg_sq", "1.step"}
    assert all(k.rpartition(".")[0] in {"0", "1", "2"} for k in st)
    assert all(isinstance(v, torch.Tensor) for k, v in st.items() if k != "1.step")
    assert st["1"]["exp_avg"] is st["1.exp_avg"]  # a module path gives that module's view
    assert set(st["1"]) >= {"exp_avg", "exp_avg_sq", "step"}
    assert "1.exp_avg" in st and st.get("1.nothing") is None
    # the module's view is the same state
    adam = opt.chain.modules[1]
    assert adam.state[params[0]]["exp_avg"] is st["1.exp_avg"]


@pytest.mark.parametrize("how", ["module-dict", "flat-key", "whole-param", "in-place", "device-move"])
def test_writes_through_opt_state_reach_the_module(how):
    params, twin_params = make(), make()
    opt, twin = adam_chain(params), adam_chain(twin_params)
    run(opt, params, 0, 3)
    run(twin, twin_params, 0, 3)
    p, q = params[0], twin_params[0]
    new = torch.full_like(p, 0.25)
    if how == "module-dict":
        opt.state[p]["1"] = {**opt.state[p]["1"], "exp_avg": new.clone()}
    elif how == "flat-key":
        opt.state[p]["1.exp_avg"] = new.clone()
    elif how == "whole-param":
        opt.state[p] = {**opt.state[p], "1.exp_avg": new.clone()}
    elif how == "in-place":
        opt.state[p]["1"]["exp_avg"].copy_(new)
    else:  # what Lightning does to move optimizer state between devices
        # (lightning_utilities.apply_to_collection rebuilds each mapping as type(m)(OrderedDict(...)))
        for key, v in opt.state.items():
            opt.state[key] = type(v)(OrderedDict((k, x.clone() if isinstance(x, torch.Tensor) else x) for k, x in v.items()))
        opt.state[p]["1"]["exp_avg"].copy_(new)
    twin.state[q]["1"]["exp_avg"].copy_(new)
    run(opt, params, 3, 6)
    run(twin, twin_params, 3, 6)
    for a, b in zip(params, twin_params):
        assert torch.equal(a, b)


def test_deleting_a_param_state_restarts_it():
    params, fresh_params = make(), make()
    opt = adam_chain(params)
    run(opt, params, 0, 3)
    with torch.no_grad():
        for a, b in zip(fresh_params, params):
            a.copy_(b)
    for p in params:
        del opt.state[p]
    fresh = adam_chain(fresh_params)
    run(opt, params, 3, 5)
    run(fresh, fresh_params, 3, 5)
    for a, b in zip(params, fresh_params):
        assert torch.equal(a, b)


def test_unknown_module_path_is_refused():
    params = make()
    opt = adam_chain(params)
    with pytest.raises(KeyError, match="no module at path"):
        opt.state[params[0]]["9"] = {}
    with pytest.raises(KeyError, match="no module at path"):
        opt.state[params[0]]["9.exp_avg"] = torch.zeros(3)
    with pytest.raises(KeyError, match="no module at path"):
        opt.state[params[0]] = {"7.exp_avg": torch.zeros(3)}
    with pytest.raises(TypeError, match="dict"):
        opt.state[params[0]] = 3


@pytest.mark.parametrize("copier", ["deepcopy", "pickle"])
def test_copies_keep_state_and_modules_together(copier):
    params = make()
    opt = adam_chain(params)
    run(opt, params, 0, 3)
    if copier == "deepcopy":
        other = copy.deepcopy(opt)
    else:
        other = pickle.loads(pickle.dumps(opt))
    other_params = [p for g in other.param_groups for p in g["params"]]
    run(opt, params, 3, 6)
    run(other, other_params, 3, 6)
    for a, b in zip(params, other_params):
        assert torch.equal(a, b)
    # the copy's modules read the copy's state, not the original's
    other.chain.modules[1].state[other_params[0]]["note"] = 1
    assert other.state[other_params[0]]["1.note"] == 1 and "1.note" not in opt.state[params[0]]


# ------------------------------------------------------------------------------ hooks
def test_state_dict_hooks_see_the_whole_dict():
    params = make()
    opt = adam_chain(params)
    run(opt, params, 0, 2)
    seen = {}

    def pre(o):
        o.state["test"] = 1

    def post(o, sd):
        seen["record"] = sd["param_groups"][0]["torchzero"]
        seen["test"] = sd["state"].pop("test")

    opt.register_state_dict_pre_hook(pre)
    opt.register_state_dict_post_hook(post)
    sd = opt.state_dict()
    assert seen["test"] == 1 and "test" not in sd["state"]
    assert seen["record"]["modules"] == {"0": "ClipNorm", "1": "Adam", "2": "LR"}


def test_state_dict_post_hook_may_return_a_new_dict():
    params = make()
    opt = adam_chain(params)
    run(opt, params, 0, 2)

    def post(o, sd):
        out = copy.deepcopy(sd)
        out["param_groups"][0]["lr"] = 0.003
        return out

    opt.register_state_dict_post_hook(post)
    sd = opt.state_dict()
    assert sd["param_groups"][0]["lr"] == 0.003 and opt.param_groups[0]["lr"] == 1e-2


def test_load_pre_hook_result_is_loaded_and_post_hook_sees_the_loaded_state():
    params = make()
    opt = adam_chain(params)
    run(opt, params, 0, 3)
    sd = opt.state_dict()
    new_params = make()
    new = adam_chain(new_params)

    def pre(o, sd):
        sd = copy.deepcopy(sd)
        sd["param_groups"][0]["lr"] = 0.002
        return sd

    seen = {}

    def post(o):
        st = o.state[new_params[0]]["1"]
        seen["step"] = float(st["step"])
        st["exp_avg"].zero_()  # an edit made by a post-hook is kept
        o.state["ran"] = True

    new.register_load_state_dict_pre_hook(pre)
    new.register_load_state_dict_post_hook(post)
    new.load_state_dict(sd)
    assert new.param_groups[0]["lr"] == 0.002 and seen["step"] == 3 and new.state["ran"] is True
    assert torch.count_nonzero(new.state[new_params[0]]["1"]["exp_avg"]) == 0


def test_step_hooks_run_around_the_step():
    params = make()
    opt = adam_chain(params)
    calls = []
    opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: calls.append(("post", len(o.state))))
    run(opt, params, 0, 1)
    assert calls == ["pre", ("post", 2)]


# ------------------------------------------------------------------------------ dtype on load
@pytest.mark.parametrize("saved,model", [(torch.float64, torch.float32), (torch.float32, torch.float64)], ids=["f64-into-f32", "f32-into-f64"])
@pytest.mark.parametrize("fused", [None, False], ids=["default", "general"])
def test_floating_state_takes_the_parameter_dtype_on_load(saved, model, fused):
    src_params = make(dtype=saved)
    src = adam_chain(src_params)
    run(src, src_params, 0, 3)
    params = make(dtype=model)
    opt = adam_chain(params, fused=fused)
    opt.load_state_dict(src.state_dict())
    st = opt.state[params[0]]["1"]
    assert st["exp_avg"].dtype == model and st["exp_avg_sq"].dtype == model
    # the same as setting the state by hand, cast to the model's dtype
    twin_params = make(dtype=model)
    twin = adam_chain(twin_params, fused=fused)
    for q, (_, flat) in zip(twin_params, sorted(src.state_dict()["state"].items())):
        twin.state[q] = {k: (v if not isinstance(v, torch.Tensor) else v.clone() if k == "1.step" else v.to(model))
                         for k, v in flat.items()}
    run(opt, params, 3, 6)
    run(twin, twin_params, 3, 6)
    for a, b in zip(params, twin_params):
        assert a.dtype == model and torch.equal(a, b)


def test_param_group_beta1_still_overrides_adam():
    a, b = make(), make()
    opt = tz.Modular([{"params": a[:1], "beta1": 0.5}, {"params": a[1:]}], tz.m.Adam(), tz.m.LR(1e-2))
    assert opt.param_groups[0]["betas"] == (0.5, 0.999) and opt.param_groups[1]["betas"] == (0.9, 0.999)
    ref = torch.optim.Adam([{"params": b[:1], "betas": (0.5, 0.999)}, {"params": b[1:]}], lr=1e-2)
    run(opt, a, 0, 5)
    run(ref, b, 0, 5)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-14)
