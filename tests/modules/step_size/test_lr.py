"""LR: the learning rate, per group and under schedulers."""
from __future__ import annotations

import math

import pytest
import torch

import torchzero as tz
from conftest import make_params, set_grads


def test_lr_is_sgd():
    params = make_params([(3, 2), (2,)])
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular([{"params": params[:1]}, {"params": params[1:], "lr": 0.3}], tz.m.LR(0.1))
    sgd = torch.optim.SGD([{"params": ref[:1]}, {"params": ref[1:], "lr": 0.3}], lr=0.1)
    for s in range(5):
        set_grads(params, s)
        set_grads(ref, s)
        opt.step()
        sgd.step()
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-14, atol=1e-15)


def test_set_param_groups_override_beats_group_key():
    a, b = make_params([(3,), (3,)])
    lr = tz.m.LR(0.1).set_param_groups([{"params": [b], "lr": 0.01}])
    opt = tz.Modular([{"params": [a, b], "lr": 0.5}], lr)
    set_grads([a, b], 0)
    a0, b0 = a.detach().clone(), b.detach().clone()
    opt.step()
    torch.testing.assert_close(a0 - a.detach(), 0.5 * a.grad)
    torch.testing.assert_close(b0 - b.detach(), 0.01 * b.grad)


def test_tensor_lr():
    (a,) = make_params([(3,)])
    opt = tz.Modular([a], tz.m.LR(torch.tensor(0.1)))
    set_grads([a], 0)
    a0 = a.detach().clone()
    opt.step()
    torch.testing.assert_close(a0 - a.detach(), 0.1 * a.grad)


@pytest.mark.parametrize("lr, exc", [(-0.1, ValueError), (math.nan, ValueError), (math.inf, ValueError), ("1e-3", TypeError), (None, TypeError)])
def test_bad_lr(lr, exc):
    with pytest.raises(exc, match="LR: lr"):
        tz.m.LR(lr)


def test_unknown_override_key():
    (a,) = make_params([(3,)])
    with pytest.raises(ValueError, match="unknown setting"):
        tz.m.LR(0.1).set_param_groups([{"params": [a], "max_norm": 1.0}])
