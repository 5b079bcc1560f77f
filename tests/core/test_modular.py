"""Modular as a torch.optim.Optimizer: params, groups, closures, skipping, errors."""
from __future__ import annotations

import copy
import pickle

import pytest
import torch

import torchzero as tz
from conftest import make_params, set_grads


def test_is_optimizer():
    p = make_params([(3,)])
    assert isinstance(tz.Modular(p, tz.m.LR(0.1)), torch.optim.Optimizer)


@pytest.mark.parametrize(
    "kind", ["list", "generator", "named", "module", "groups"],
)
def test_params_forms(kind):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    if kind == "list":
        params = list(model.parameters())
    elif kind == "generator":
        params = model.parameters()
    elif kind == "named":
        params = model.named_parameters()
    elif kind == "module":
        params = model
    else:
        params = [{"params": [model.weight]}, {"params": [model.bias], "lr": 0.5}]
    opt = tz.Modular(params, tz.m.LR(0.1))
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    for b, p in zip(before, model.parameters()):
        lr = 0.5 if (kind == "groups" and p is model.bias) else 0.1
        torch.testing.assert_close(p.detach(), b - lr * p.grad)
    if kind in ("named", "module"):
        assert opt.param_groups[0]["param_names"] == ["weight", "bias"]


def test_grad_none_params_are_skipped_and_state_untouched():
    a, b = make_params([(3,), (2,)])
    opt = tz.Modular([a, b], tz.m.Adam(), tz.m.LR(0.1))
    set_grads([a, b], 0)
    opt.step()
    b_before = b.detach().clone()
    b_state = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in opt.state[b].items()}
    b.grad = None
    set_grads([a], 1)
    opt.step()
    assert torch.equal(b, b_before)
    after = opt.state[b]
    assert after.keys() == b_state.keys()
    for k, v in b_state.items():
        assert (torch.equal(v, after[k]) if isinstance(v, torch.Tensor) else v == after[k])


def test_no_grads_at_all_is_a_noop():
    (a,) = make_params([(3,)])
    before = a.detach().clone()
    opt = tz.Modular([a], tz.m.Adam(), tz.m.LR(0.1))
    opt.step()
    assert torch.equal(a, before) and len(opt.state) == 0


def test_closure_forms():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x = torch.randn(8, 3)
    ref = copy.deepcopy(model)
    opt = tz.Modular(model.parameters(), tz.m.LR(0.1))
    sgd = torch.optim.SGD(ref.parameters(), lr=0.1)

    def closure(backward=True):
        loss = model(x).pow(2).mean()
        if backward:
            opt.zero_grad()
            loss.backward()
        return loss

    def ref_closure():
        sgd.zero_grad()
        loss = ref(x).pow(2).mean()
        loss.backward()
        return loss

    for _ in range(3):
        l1 = opt.step(closure)
        l2 = sgd.step(ref_closure)
        torch.testing.assert_close(l1, l2)
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q)


def test_zero_grad_and_add_param_group():
    a, b = make_params([(3,), (2,)])
    opt = tz.Modular([a], tz.m.Adam(), tz.m.LR(0.1))
    opt.add_param_group({"params": [b], "lr": 0.01})
    assert opt.param_groups[1]["lr"] == 0.01
    set_grads([a, b], 0)
    b0 = b.detach().clone()
    opt.step()
    # Adam's first step moves each element by lr (sign of the gradient)
    torch.testing.assert_close(b0 - b.detach(), 0.01 * torch.sign(b.grad), rtol=1e-5, atol=1e-9)
    opt.zero_grad()
    assert a.grad is None and b.grad is None


@pytest.mark.parametrize(
    "sched",
    [
        lambda o: torch.optim.lr_scheduler.StepLR(o, 2, 0.5),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10),
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=20, cycle_momentum=False),
        lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1 / (s + 1)),
        lambda o: torch.optim.lr_scheduler.LinearLR(o, 0.1, 1.0, 5),
        lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.9),
    ],
    ids=["step", "cosine", "onecycle", "lambda", "linear", "exponential"],
)
def test_schedulers_match_torch_sgd(sched):
    params = make_params([(4, 3), (3,)])
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, tz.m.LR(0.05))
    sgd = torch.optim.SGD(ref, lr=0.05)
    s1, s2 = sched(opt), sched(sgd)
    for step in range(12):
        set_grads(params, step)
        set_grads(ref, step)
        opt.step()
        sgd.step()
        s1.step()
        s2.step()
        assert opt.param_groups[0]["lr"] == sgd.param_groups[0]["lr"]
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=0)


def test_no_lr_module_means_no_lr_key():
    (a,) = make_params([(3,)])
    opt = tz.Modular([a], tz.m.Adam())
    assert "lr" not in opt.param_groups[0]


def test_step_hooks_fire():
    (a,) = make_params([(3,)])
    opt = tz.Modular([a], tz.m.LR(0.1))
    calls = []
    opt.register_step_pre_hook(lambda o, args, kwargs: calls.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append("post"))
    set_grads([a], 0)
    opt.step()
    assert calls == ["pre", "post"]


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copy_steps_bitwise_like_original(how):
    params = make_params([(5, 3), (3,)])
    opt = tz.Modular(params, tz.m.ClipNormByEMA(), tz.m.Adam(), tz.m.LR(0.01))
    for step in range(3):
        set_grads(params, step)
        opt.step()
    clone = copy.deepcopy(opt) if how == "deepcopy" else pickle.loads(pickle.dumps(opt))
    cparams = [p for g in clone.param_groups for p in g["params"]]
    for step in range(3, 6):
        set_grads(params, step)
        set_grads(cparams, step)
        opt.step()
        clone.step()
    for p, q in zip(params, cparams):
        assert p is not q
        assert torch.equal(p, q)


# ----------------------------------------------------------------------------- errors
def _p():
    return make_params([(3,)])


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: tz.Modular([], tz.m.LR(0.1)), ValueError, "empty"),
        (lambda: tz.Modular(_p()), ValueError, "no modules"),
        (lambda: tz.Modular(_p(), tz.m.Adam), TypeError, "instantiate"),
        (lambda: tz.Modular(_p(), "adam"), TypeError, "Module"),
        (lambda: tz.Modular([torch.randn(3, requires_grad=True) * 2], tz.m.LR(0.1)), ValueError, "non-leaf"),
        (lambda: tz.Modular(3.0, tz.m.LR(0.1)), TypeError, "params"),
    ],
    ids=["no-params", "no-modules", "class-not-instance", "string-module", "non-leaf", "float-params"],
)
def test_construction_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_parameter_in_two_groups_raises():
    (a,) = make_params([(3,)])
    with pytest.raises(ValueError, match="more than one"):
        tz.Modular([{"params": [a]}, {"params": [a]}], tz.m.LR(0.1))


def test_duplicate_in_one_group_warns_as_torch_and_steps_once():
    (a,) = make_params([(3,)])
    with pytest.warns(UserWarning, match="duplicate"):
        torch.optim.SGD([a, a], lr=0.1)
    with pytest.warns(UserWarning, match="duplicate parameters"):
        opt = tz.Modular([a, a], tz.m.LR(0.1))
    assert len(opt.param_groups[0]["params"]) == 1
    before = a.detach().clone()
    a.grad = torch.ones_like(a)
    opt.step()
    torch.testing.assert_close(a.detach(), before - 0.1)


def test_bad_group_value_raises_at_construction():
    (a,) = make_params([(3,)])
    with pytest.raises(ValueError, match="lr"):
        tz.Modular([{"params": [a], "lr": -1.0}], tz.m.LR(0.1))


def test_sparse_gradient_names_the_modules():
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = tz.Modular(emb.parameters(), tz.m.Adam(), tz.m.LR(0.1))
    emb(torch.tensor([1, 2])).sum().backward()
    before = emb.weight.detach().clone()
    with pytest.raises(RuntimeError, match="sparse.*Adam"):
        opt.step()
    assert torch.equal(emb.weight, before)


def test_generator_inside_a_group_dict_is_kept():
    model = torch.nn.Linear(3, 2)
    opt = tz.Modular([{"params": model.parameters()}], tz.m.LR(0.1))
    assert len(opt.param_groups[0]["params"]) == 2


def test_top_level_chain_is_seen_through():
    (a,) = make_params([(3,)])
    opt = tz.Modular([a], tz.m.Chain(tz.m.Adam(), tz.m.LR(0.1)))
    assert opt.param_groups[0]["lr"] == 0.1 and opt._fused_plan is not None
    torch.optim.lr_scheduler.StepLR(opt, 1)


def test_single_tensor_params_is_a_type_error_as_in_torch():
    w = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(TypeError):
        torch.optim.SGD(w, lr=0.1)
    with pytest.raises(TypeError, match=r"single tensor.*\[tensor\]"):
        tz.Modular(w, tz.m.LR(0.1))
