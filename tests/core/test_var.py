"""``Var.child`` and ``Var.absorb``: the one way modules run inside another hand results back."""
from __future__ import annotations

import torch

from torchzero.core import Var


def _var(grad: bool = True) -> Var:
    params = [torch.nn.Parameter(torch.full((2,), float(i))) for i in range(3)]
    for p in params:
        p.grad = torch.ones(2) * (10 + p[0].item())
    return Var(params=params, grad=[p.grad for p in params] if grad else None)


def test_child_takes_a_subset() -> None:
    var = _var()
    sub = var.child([torch.zeros(2)], [2])
    assert sub.params == [var.params[2]] and sub.grad == [var.grad[2]] and sub.storage is var.storage


def test_absorb_writes_gradients_the_child_evaluated_at_their_positions() -> None:
    var = _var(grad=False)
    sub = var.child(None, [1])
    sub.grad = [torch.full((2,), 7.0)]
    sub.loss = 3.0
    var.absorb(sub, [1])
    assert var.loss == 3.0
    assert torch.equal(var.grad[1], torch.full((2,), 7.0)) and torch.equal(var.grad[0], var.params[0].grad)


def test_absorb_takes_a_skip_only_when_asked() -> None:
    var = _var()
    sub = var.child(None)
    sub.skip_update = True
    var.absorb(sub, skip=False)
    assert not var.skip_update
    var.absorb(sub)
    assert var.skip_update
