"""Wrap: torch.optim optimizers as modules, equal to themselves, with resumable inner state."""
from __future__ import annotations

import copy
import io

import pytest
import torch

import torchzero as tz
from conftest import make_params, set_grads

SHAPES = [(6, 4), (4,), (), (3, 2, 2)]

OPTIMIZERS = {
    "Adam": (torch.optim.Adam, dict(lr=1e-3)),
    "Adam-amsgrad-wd": (torch.optim.Adam, dict(lr=1e-2, betas=(0.8, 0.99), amsgrad=True, weight_decay=1e-2)),
    "AdamW": (torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1)),
    "SGD-nesterov": (torch.optim.SGD, dict(lr=1e-2, momentum=0.9, nesterov=True)),
    "RMSprop-centered": (torch.optim.RMSprop, dict(lr=1e-3, centered=True, momentum=0.5)),
    "Adagrad": (torch.optim.Adagrad, dict(lr=1e-2, lr_decay=1e-3)),
    "NAdam": (torch.optim.NAdam, dict(lr=1e-2)),
    "Rprop": (torch.optim.Rprop, dict(lr=1e-3)),
}


@pytest.mark.parametrize("cls, kwargs", list(OPTIMIZERS.values()), ids=list(OPTIMIZERS))
def test_wrap_alone_equals_the_optimizer_over_500_steps(cls, kwargs):
    params = make_params(SHAPES, dtype=torch.float32)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.Wrap(cls, **kwargs))
    topt = cls(ref, **kwargs)
    for s in range(500):
        set_grads(params, s)
        set_grads(ref, s)
        opt.step()
        topt.step()
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_wrap_positional_arguments():
    params = make_params(SHAPES)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.Wrap(torch.optim.SGD, 0.1, 0.9))  # lr, momentum
    topt = torch.optim.SGD(ref, 0.1, 0.9)
    for s in range(20):
        set_grads(params, s)
        set_grads(ref, s)
        opt.step()
        topt.step()
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def test_inner_state_is_the_modules_state_with_prefixed_keys():
    params = make_params(SHAPES)
    opt = tz.Modular(params, tz.m.Wrap(torch.optim.Adam, lr=1e-3))
    set_grads(params, 0)
    opt.step()
    assert set(opt.state_dict()["state"][0]) == {"0.opt_step", "0.opt_exp_avg", "0.opt_exp_avg_sq"}


def test_wrap_state_dict_round_trip_into_a_new_modular_is_bitwise():
    def run(params, start, stop, opt):
        for s in range(start, stop):
            set_grads(params, s)
            opt.step()

    params = make_params(SHAPES, dtype=torch.float32)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.Wrap(torch.optim.Adam, lr=1e-3))
    topt = torch.optim.Adam(ref, lr=1e-3)
    run(params, 0, 250, opt)
    run(ref, 0, 250, topt)
    buf = io.BytesIO()
    torch.save({"params": [p.detach().clone() for p in params], "opt": opt.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    params2 = [p.clone().requires_grad_() for p in ckpt["params"]]
    opt2 = tz.Modular(params2, tz.m.Wrap(torch.optim.Adam, lr=1e-3))
    opt2.load_state_dict(ckpt["opt"])
    run(params, 250, 500, opt)
    run(params2, 250, 500, opt2)
    run(ref, 250, 500, topt)
    for p, q, r in zip(params, params2, ref):
        assert torch.equal(p, q)  # resumed == uninterrupted, bitwise
        torch.testing.assert_close(q, r, rtol=1e-5, atol=1e-6)  # and both are torch's Adam
    flat, flat2 = opt.state_dict()["state"][0], opt2.state_dict()["state"][0]
    assert flat.keys() == flat2.keys()
    for k in flat:
        assert torch.equal(torch.as_tensor(flat[k]), torch.as_tensor(flat2[k]))


def test_fresh_wrap_without_loading_does_not_reuse_state():
    params = make_params(SHAPES)
    opt = tz.Modular(params, tz.m.Wrap(torch.optim.Adam, lr=1e-3))
    set_grads(params, 0)
    opt.step()
    opt.load_state_dict(tz.Modular(params, tz.m.Wrap(torch.optim.Adam, lr=1e-3)).state_dict())  # empty state
    ref = [p.detach().clone().requires_grad_() for p in params]
    topt = torch.optim.Adam(ref, lr=1e-3)
    for s in range(1, 4):
        set_grads(params, s)
        set_grads(ref, s)
        opt.step()
        topt.step()
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)


def test_missing_gradients_are_skipped_like_torch():
    params = make_params(SHAPES)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.Wrap(torch.optim.Adam, lr=1e-2))
    topt = torch.optim.Adam(ref, lr=1e-2)
    for s in range(30):
        set_grads(params, s)
        set_grads(ref, s)
        if s % 3 == 0:
            params[1].grad = ref[1].grad = None
        if s < 5:  # the last parameter first gets a gradient at step 5 (added to the optimizer then)
            params[3].grad = ref[3].grad = None
        opt.step()
        topt.step()
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)


def test_gradients_are_restored_and_not_modified():
    params = make_params(SHAPES)
    opt = tz.Modular(params, tz.m.Wrap(torch.optim.SGD, lr=0.1, momentum=0.9))
    set_grads(params, 0)
    grads = [p.grad for p in params]
    copies = [g.clone() for g in grads]
    opt.step()
    for p, g, c in zip(params, grads, copies):
        assert p.grad is g and torch.equal(g, c)


def test_modules_around_wrap():
    """ClipNorm before Wrap(Adam) = Adam on clipped gradients; Mul after it halves Adam's step."""
    params = make_params(SHAPES)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.ClipNorm(0.5), tz.m.Wrap(torch.optim.Adam, lr=1e-2), tz.m.Mul(0.5))
    ref_opt = tz.Modular(ref, tz.m.ClipNorm(0.5), tz.m.Adam(), tz.m.LR(0.5e-2))
    for s in range(100):
        set_grads(params, s)
        set_grads(ref, s)
        opt.step()
        ref_opt.step()
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)


def test_wrap_in_split_branches_builds_on_the_params_it_sees():
    params = make_params(SHAPES)
    ref = [p.detach().clone().requires_grad_() for p in params]
    matrices = [p for p in params if p.ndim >= 2]
    opt = tz.Modular(
        params,
        tz.m.Split(lambda p: p.ndim >= 2, tz.m.Wrap(torch.optim.SGD, lr=0.1, momentum=0.9), tz.m.Wrap(torch.optim.Adam, lr=1e-2)),
    )
    t_sgd = torch.optim.SGD([q for q in ref if q.ndim >= 2], lr=0.1, momentum=0.9)
    t_adam = torch.optim.Adam([q for q in ref if q.ndim < 2], lr=1e-2)
    for s in range(50):
        set_grads(params, s)
        set_grads(ref, s)
        opt.step()
        t_sgd.step()
        t_adam.step()
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)
    inner_sgd = opt.chain.modules[0].children["true"]._opt
    assert {id(p) for g in inner_sgd.param_groups for p in g["params"]} == {id(p) for p in matrices}


def test_deepcopy_does_not_share_the_inner_optimizer():
    params = make_params(SHAPES)
    opt = tz.Modular(params, tz.m.Wrap(torch.optim.Adam, lr=1e-2))
    set_grads(params, 0)
    opt.step()
    clone = copy.deepcopy(opt)
    cparams = clone.param_groups[0]["params"]
    for s in range(1, 5):
        set_grads(params, s)
        set_grads(cparams, s)
        opt.step()
        clone.step()
    for p, q in zip(params, cparams):
        assert torch.equal(p, q) and p is not q
    assert clone.chain.modules[0]._opt is not opt.chain.modules[0]._opt


def test_bad_optimizer_arguments_raise_at_construction():
    with pytest.raises(ValueError, match=r"Wrap: torch\.optim\.Adam\(params, lr=-1\).*Invalid learning rate"):
        tz.m.Wrap(torch.optim.Adam, lr=-1)
    with pytest.raises(TypeError, match="Wrap.*instance"):
        tz.m.Wrap(torch.optim.Adam([torch.zeros(1, requires_grad=True)]))
