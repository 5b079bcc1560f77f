"""Shampoo against a transcription of Algorithm 2 of the Shampoo paper (tests/reference/shampoo.py)
over 200 steps on a small CNN in float64 (conv, matrix, vector, 0-dim), with the roots
recomputed every step or every k; blocking against the algorithm run on each block; the coupled
Newton root against eigh; the Adagrad fallback; grafting; errors."""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from conftest import train_small_cnn
from reference.shampoo import ShampooReference
from torchzero.functional.shampoo import blocks, inverse_root_eigh, inverse_root_newton

F64 = torch.float64


class Net(torch.nn.Module):
    def __init__(self, scale: bool) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3)
        self.fc = torch.nn.Linear(3 * 4 * 4, 5)
        self.scale = torch.nn.Parameter(torch.tensor(1.0)) if scale else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(torch.tanh(self.conv(x)).flatten(1))
        return y if self.scale is None else y * self.scale


def _net(scale: bool = True) -> Net:
    """A conv (4-D), a matrix, vectors and, with ``scale``, a 0-dim parameter."""
    torch.manual_seed(0)
    return Net(scale).to(F64)


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int) -> None:
    train_small_cnn(model, opt, steps, classes=5)


@pytest.mark.parametrize(("update_freq", "exponent"), [(1, None), (5, None), (3, 2)], ids=["every-step", "every-5", "every-3-exp2"])
def test_200_steps_match_the_paper(update_freq, exponent):
    """(No 0-dim parameter: it has no dims, so the paper leaves its gradient as it is, where
    torchzero divides it by its Adagrad root.)"""
    ref, ours = _net(scale=False), _net(scale=False)
    opt_ref = ShampooReference(ref.parameters(), lr=1e-2, eps=1e-4, update_freq=update_freq, exponent=exponent)
    opt = tz.Modular(
        ours.parameters(),
        tz.m.Shampoo(reg=1e-4, update_freq=update_freq, exp_override=exponent, merge_small=False, max_dim=10_000),
        tz.m.LR(1e-2),
    )
    _train(ref, opt_ref, 1)
    _train(ours, opt, 1)
    pairs = list(zip(ours.parameters(), ref.parameters()))
    for a, b in pairs:
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    _train(ref, opt_ref, 199)
    _train(ours, opt, 199)
    for a, b in pairs:
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_blocks_are_preconditioned_independently():
    """A (7, 10) matrix with block_size 4: each of the 2 x 3 blocks runs the algorithm alone."""
    torch.manual_seed(0)
    W0 = torch.randn(7, 10, dtype=F64)
    W = W0.clone().requires_grad_()
    opt = tz.Modular([W], tz.m.Shampoo(reg=1e-4, update_freq=1, exp_override=None, merge_small=False, block_size=4), tz.m.LR(1e-2))
    parts = [W0[b].clone().requires_grad_() for b in blocks((7, 10), 4)]
    refs = [ShampooReference([p], lr=1e-2, eps=1e-4) for p in parts]
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        grad = torch.randn(7, 10, generator=g, dtype=F64) + W.detach()
        W.grad = grad.clone()
        opt.step()
        for p, r, b in zip(parts, refs, blocks((7, 10), 4)):
            p.grad = grad[b].clone()
            r.step()
    expected = torch.empty_like(W0)
    for p, b in zip(parts, blocks((7, 10), 4)):
        expected[b] = p.detach()
    torch.testing.assert_close(W.detach(), expected, rtol=1e-10, atol=1e-12)
    assert len([k for k in opt.state[W] if ".H_" in k]) == 6 * 2


@pytest.mark.parametrize("p", [2, 4, 6])
def test_coupled_newton_root_equals_eigh(p):
    torch.manual_seed(0)
    A = torch.randn(8, 5, dtype=F64)
    A = A @ A.T  # rank 5 of 8: reg makes it definite
    torch.testing.assert_close(inverse_root_newton(A, p, 1e-3), inverse_root_eigh(A, p, 1e-3), rtol=1e-8, atol=1e-8)


def test_newton_roots_train_like_eigh_roots():
    a, b = _net(), _net()
    kw = dict(reg=1e-4, update_freq=2, merge_small=False)
    _train(a, tz.Modular(a.parameters(), tz.m.Shampoo(**kw), tz.m.LR(1e-2)), 30)
    _train(b, tz.Modular(b.parameters(), tz.m.Shampoo(**kw, root_method="newton"), tz.m.LR(1e-2)), 30)
    for x, y in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-8)


def test_a_tensor_without_factors_gets_adagrad():
    torch.manual_seed(0)
    w = torch.randn(30, dtype=F64, requires_grad=True)
    opt = tz.Modular([w], tz.m.Shampoo(max_dim=10, adagrad_eps=1e-8), tz.m.LR(0.1))
    ref = w.detach().clone()
    acc = torch.zeros_like(ref)
    for _ in range(5):
        g = torch.randn(30, dtype=F64)
        w.grad = g.clone()
        opt.step()
        acc += g * g
        ref -= 0.1 * g / (acc.sqrt() + 1e-8)
    torch.testing.assert_close(w.detach(), ref)


def test_grafted_to_adam_keeps_shampoos_direction_and_adams_norm():
    model = _net()
    opt = tz.Modular(model.parameters(), tz.m.Shampoo(update_freq=1), tz.m.Graft([tz.m.Grad(), tz.m.Adam()]), tz.m.LR(1.0))
    shampoo_only = tz.Modular(_net().parameters(), tz.m.Shampoo(update_freq=1), tz.m.LR(1.0))
    start = [p.detach().clone() for p in model.parameters()]
    _train(model, opt, 1)
    twin = _net()
    twin_opt = tz.Modular(twin.parameters(), tz.m.Shampoo(update_freq=1), tz.m.LR(1.0))
    _train(twin, twin_opt, 1)
    del shampoo_only
    for p, q, s in zip(model.parameters(), twin.parameters(), start):
        step, direction = (s - p).reshape(-1), (s - q).reshape(-1)
        if direction.norm() > 0:
            cos = torch.dot(step, direction) / (step.norm() * direction.norm())
            assert cos > 1 - 1e-9
            # Adam's first step has magnitude 1 per element (m/sqrt(v) = sign(g))
            torch.testing.assert_close(step.norm(), torch.tensor(float(step.numel()) ** 0.5, dtype=F64), rtol=1e-5, atol=0)


def test_an_accumulator_of_the_wrong_shape_is_refused_before_anything_changes():
    model = _net()
    opt = tz.Modular(model.parameters(), tz.m.Shampoo(merge_small=False), tz.m.LR(1e-3))
    _train(model, opt, 2)
    sd = opt.state_dict()
    idx, key = next((i, k) for i, st in sd["state"].items() for k in st if k.endswith("H_0_0") and st[k].shape == (3, 3))
    sd["state"][idx][key] = torch.zeros(2, 2, dtype=F64)
    twin = tz.Modular(model.parameters(), tz.m.Shampoo(merge_small=False), tz.m.LR(1e-3))
    twin.load_state_dict(sd)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(RuntimeError, match=r"Shampoo: the state 'H_0_0'.*should be a \(3, 3\) tensor, got \(2, 2\)"):
        _train(model, twin, 1)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"decay": 0.0}, "Shampoo.*decay"),
        ({"beta": 1.0}, "Shampoo.*beta"),
        ({"reg": -1.0}, "Shampoo.*reg"),
        ({"update_freq": 0}, "Shampoo.*update_freq"),
        ({"exp_override": 0}, "Shampoo.*exp_override"),
        ({"block_size": 0}, "Shampoo.*block_size"),
        ({"root_method": "svd"}, "Shampoo.*root_method"),
    ],
    ids=["decay=0", "beta=1", "reg<0", "update_freq=0", "exp_override=0", "block_size=0", "root_method"],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tz.m.Shampoo(**kwargs)
