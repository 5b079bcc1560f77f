"""Properties every adaptive module shares: independence of parameter order and of how the
parameters are split into param groups, and per-parameter settings that reach only their parameters."""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from conftest import make_params, set_grads

# a module and one setting to override for one parameter
MODULES = {
    "RMSprop": (lambda: tz.m.RMSprop(centered=True, amsgrad=True), {"smoothing": 0.5}),
    "Adagrad": (lambda: tz.m.Adagrad(lr_decay=0.01), {"initial_accumulator_value": 2.0}),
    "Lion": (lambda: tz.m.Lion(), {"beta1": 0.5}),
    "Adan": (lambda: tz.m.Adan(), {"beta2": 0.5}),
    "Rprop": (lambda: tz.m.Rprop(), {"backtrack": False}),
    "Orthogonalize": (lambda: tz.m.Orthogonalize(), {"ns_steps": 2}),
}
SHAPES = [(4, 3), (5,), (3, 3), (2, 2, 2), ()]


def _run(params, groups, make, steps=15):
    opt = tz.Modular(groups, make(), tz.m.LR(0.1))
    for s in range(steps):
        set_grads(params, s)
        opt.step()


@pytest.mark.parametrize("name", list(MODULES))
def test_independent_of_parameter_order_and_grouping(name):
    make, override = MODULES[name]
    a = make_params(SHAPES, dtype=torch.float64)
    b = [p.detach().clone().requires_grad_() for p in a]
    c = [p.detach().clone().requires_grad_() for p in a]
    # a: two groups, the override on the first parameter
    _run(a, [{"params": a[:1], **override}, {"params": a[1:]}], make)
    # b: the same parameters in reverse order, the overridden one last and alone
    rev = list(reversed(b))
    opt = tz.Modular([{"params": rev[:-1]}, {"params": rev[-1:], **override}], make(), tz.m.LR(0.1))
    for s in range(15):
        set_grads(b, s)  # the same gradients per parameter as in a
        opt.step()
    # c: one group per parameter
    _run(c, [{"params": [c[0]], **override}] + [{"params": [p]} for p in c[1:]], make)
    for x, y, z in zip(a, b, c):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(x, z, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", list(MODULES))
def test_override_changes_only_its_parameter(name):
    make, override = MODULES[name]
    a = make_params(SHAPES, dtype=torch.float64)
    b = [p.detach().clone().requires_grad_() for p in a]
    _run(a, [{"params": a[:1], **override}, {"params": a[1:]}], make)
    _run(b, [{"params": b}], make)
    assert not torch.equal(a[0], b[0]), "the override had no effect"
    for x, y in zip(a[1:], b[1:]):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-14)
