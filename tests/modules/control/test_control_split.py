"""Split on a real model: no clipping for biases and norm weights, selected by name patterns, by
nn.Module / tensors and by predicate, against torch.optim.Adam with the clipping done by hand."""
from __future__ import annotations

import functools
import io

import pytest
import torch
from torch import nn

import torchzero as tz
from conftest import make_params, set_grads


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The model is tiny: intra-op threads only add contention (50x slower on a busy 2-core machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(5, 16)
        self.norm = nn.LayerNorm(16)
        self.fc2 = nn.Linear(16, 1)

    def forward(self, x):
        return self.fc2(torch.tanh(self.norm(self.fc1(x))))


NO_CLIP = {"fc1.bias", "norm.weight", "norm.bias", "fc2.bias"}
MAX_NORM = 0.05


STEPS = 300


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=g, dtype=torch.float64)
    y = (x[:, :1] * x[:, 1:2]).sin() + 0.1 * torch.randn(64, 1, generator=g, dtype=torch.float64)
    return x, y


def _model():
    torch.manual_seed(0)
    return Net().double()


def _train_step(model, opt, x, y):
    opt.zero_grad()
    loss = (model(x) - y).pow(2).mean()
    loss.backward()
    opt.step()
    return loss.item()


@functools.lru_cache
def _reference(steps, lr):
    """torch.optim.Adam, gradients of the weights clipped per tensor to MAX_NORM by hand."""
    model = _model()
    x, y = _data()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        (model(x) - y).pow(2).mean().backward()
        for name, p in model.named_parameters():
            if name not in NO_CLIP:
                p.grad.mul_(torch.clamp(MAX_NORM / p.grad.norm(), max=1.0))
        opt.step()
    return model


FILTERS = {
    "name-patterns": lambda m: ["*.bias", "norm.*"],
    "modules-and-tensors": lambda m: [m.norm, m.fc1.bias, m.fc2.bias],
    "predicate": lambda m: (lambda p: p.ndim < 2),
    "tensor-generator": lambda m: (p for n, p in m.named_parameters() if n in NO_CLIP),
}
CHAINS = {
    "identity-branch-then-Adam": lambda f: [tz.m.Split(f, None, tz.m.ClipNorm(MAX_NORM)), tz.m.Adam()],
    "Adam-in-both-branches": lambda f: [tz.m.Split(f, tz.m.Adam(), [tz.m.ClipNorm(MAX_NORM), tz.m.Adam()])],
}


@pytest.mark.parametrize("chain", list(CHAINS.values()), ids=list(CHAINS))
@pytest.mark.parametrize("make_filter", list(FILTERS.values()), ids=list(FILTERS))
def test_split_matches_adam_with_clipping_on_weights_only(make_filter, chain):
    model = _model()
    ref = _reference(STEPS, 1e-2)
    opt = tz.Modular(model.named_parameters(), *chain(make_filter(model)), tz.m.LR(1e-2))
    x, y = _data()
    losses = [_train_step(model, opt, x, y) for _ in range(STEPS)]
    assert losses[-1] < 0.5 * losses[0]
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)


def test_the_split_matters():
    """Clipping every parameter gives a different trajectory (so the test above checks the split)."""
    model = _model()
    ref = _reference(50, 1e-2)
    opt = tz.Modular(model.parameters(), tz.m.ClipNorm(MAX_NORM), tz.m.Adam(), tz.m.LR(1e-2))
    x, y = _data()
    for _ in range(50):
        _train_step(model, opt, x, y)
    assert not torch.allclose(model.norm.weight, ref.norm.weight, rtol=1e-3)


def test_names_from_several_param_groups():
    model = _model()
    groups = [
        {"params": list(model.fc1.named_parameters())},  # names relative to what was passed: "weight", "bias"
        {"params": [("norm.weight", model.norm.weight), ("norm.bias", model.norm.bias)]},
        {"params": list(model.fc2.named_parameters())},
    ]
    split = tz.m.Split(["bias", "norm.*"], tz.m.Identity(), tz.m.Identity())
    tz.Modular(groups, tz.m.Chain(split), tz.m.LR(0.1))  # nested: its settings hide the group's "lr"
    chosen = split.select(list(model.parameters()))
    assert chosen == [False, True, True, True, False, True]


def test_names_of_complex_parameters():
    w = nn.Parameter(torch.randn(3, dtype=torch.complex128))
    b = nn.Parameter(torch.randn(2, dtype=torch.float64))
    opt = tz.Modular([("w", w), ("b", b)], tz.m.Split("w", tz.m.Mul(2.0), tz.m.Mul(0.0)), tz.m.LR(0.1))
    w0, b0 = w.detach().clone(), b.detach().clone()
    w.grad, b.grad = torch.randn_like(w), torch.randn_like(b)
    opt.step()
    torch.testing.assert_close(w0 - w.detach(), 0.2 * w.grad)
    assert torch.equal(b.detach(), b0)


def test_patterns_need_named_parameters():
    model = _model()
    opt = tz.Modular(model.parameters(), tz.m.Split("*.bias", tz.m.Adam(), None))
    x, y = _data()
    with pytest.raises(ValueError, match="Split.*named_parameters"):
        _train_step(model, opt, x, y)


def test_branch_state_round_trips_into_a_new_model_bitwise():
    def build(model):
        return tz.Modular(
            model.named_parameters(),
            tz.m.Split(["*.bias", "norm.*"], tz.m.Adam(beta1=0.8), [tz.m.ClipNorm(MAX_NORM), tz.m.Adam()]),
            tz.m.LR(1e-2),
        )

    model = _model()
    opt = build(model)
    x, y = _data()
    for _ in range(5):
        _train_step(model, opt, x, y)
    sd = opt.state_dict()
    names = [n for n, _ in model.named_parameters()]
    assert set(sd["state"][names.index("fc1.bias")]) == {"0.true.exp_avg", "0.true.exp_avg_sq", "0.true.step"}
    assert set(sd["state"][names.index("fc1.weight")]) == {"0.false.1.exp_avg", "0.false.1.exp_avg_sq", "0.false.1.step"}
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": sd}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    model2 = Net().double()
    model2.load_state_dict(ckpt["model"])
    opt2 = build(model2)
    opt2.load_state_dict(ckpt["opt"])
    for _ in range(10):
        _train_step(model, opt, x, y)
        _train_step(model2, opt2, x, y)
    for p, q in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p, q)


def test_update_order_is_preserved_when_selection_interleaves():
    params = make_params([(3,), (2, 2), (4,), (), (2,)])
    chosen = {id(params[1]), id(params[3])}
    opt = tz.Modular(params, tz.m.Split(lambda p: id(p) in chosen, tz.m.Mul(2.0), tz.m.Mul(-1.0)))
    set_grads(params, 0)
    before = [p.detach().clone() for p in params]
    grads = [p.grad.clone() for p in params]
    opt.step()
    for i, (b, g, p) in enumerate(zip(before, grads, params)):
        factor = 2.0 if i in (1, 3) else -1.0
        torch.testing.assert_close(b - p.detach(), factor * g, rtol=1e-14, atol=1e-15)


def test_target_grad_in_a_branch_changes_only_its_gradients():
    params = make_params([(3,), (2, 2)])
    opt = tz.Modular(params, tz.m.Split(lambda p: p.ndim == 2, tz.m.Mul(2.0, target="grad"), None))
    set_grads(params, 0)
    grads = [p.grad.clone() for p in params]
    opt.step()
    assert torch.equal(params[0].grad, grads[0])
    torch.testing.assert_close(params[1].grad, 2 * grads[1])


def test_skipping_branch_leaves_its_params_and_the_rest_moves():
    params = make_params([(3,), (2, 2), (4,)])
    opt = tz.Modular(params, tz.m.Split(lambda p: p.ndim == 2, tz.m.GradientAccumulation(2), None), tz.m.LR(0.5))
    set_grads(params, 0)
    g0 = [p.grad.clone() for p in params]
    before = [p.detach().clone() for p in params]
    opt.step()
    assert torch.equal(params[1], before[1])  # accumulating: not moved
    for i in (0, 2):
        torch.testing.assert_close(before[i] - params[i].detach(), 0.5 * g0[i])
    set_grads(params, 1)
    g1 = [p.grad.clone() for p in params]
    opt.step()
    torch.testing.assert_close(before[1] - params[1].detach(), 0.5 * (g0[1] + g1[1]) / 2)


def test_all_parameters_in_a_skipping_branch_skip_the_step():
    params = make_params([(3,), (2, 2)])
    opt = tz.Modular(params, tz.m.Split(lambda p: True, tz.m.GradientAccumulation(2), tz.m.Adam()), tz.m.Adam(), tz.m.LR(0.5))
    set_grads(params, 0)
    before = [p.detach().clone() for p in params]
    opt.step()
    assert all(torch.equal(b, p) for b, p in zip(before, params))
    assert not opt.chain.modules[1].state  # the Adam after Split did not run


def test_grad_none_params_untouched_in_both_branches():
    params = make_params([(3,), (2, 2), (4,), (2, 3)])
    opt = tz.Modular(params, tz.m.Split(lambda p: p.ndim == 2, tz.m.Adam(), tz.m.Adam()), tz.m.LR(0.1))
    for s in range(3):
        set_grads(params, s)
        params[2].grad = None
        params[3].grad = None
        opt.step()
    split = opt.chain.modules[0]
    assert params[2] not in split.children["false"].state and params[3] not in split.children["true"].state
