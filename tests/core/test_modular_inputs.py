"""What ``torch.optim`` accepts, ``Modular`` accepts too: Tensor learning rates, parameters on
the meta device, a closure that returns a Python number."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import torchzero as tz


def make(seed: int = 0, device: str = "cpu"):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g, dtype=torch.float64).to(device)) for s in [(4, 3), (3,)]]


def set_grads(params, step: int) -> None:
    g = torch.Generator().manual_seed(77 + step)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)


LR_SHAPES = {"0-dim": (), "(1,)": (1,), "(1, 1)": (1, 1)}


@pytest.mark.parametrize("shape", list(LR_SHAPES.values()), ids=list(LR_SHAPES))
@pytest.mark.parametrize("fused", [None, False], ids=["default", "general"])
@pytest.mark.parametrize("kind", ["Adam", "SGD"])
def test_tensor_lr_matches_torch(kind, fused, shape):
    params, ref_params = make(), make()
    lr = torch.full(shape, 1e-2, dtype=torch.float64)
    if kind == "Adam":
        opt = tz.Modular(params, tz.m.Adam(), tz.m.LR(1e-3), fused=fused)
        ref = torch.optim.Adam(ref_params, lr=lr.clone())
    else:
        opt = tz.Modular(params, tz.m.LR(1e-3), fused=fused)
        ref = torch.optim.SGD(ref_params, lr=lr.clone())
    opt.param_groups[0]["lr"] = lr.clone()
    for step in range(10):
        set_grads(params, step)
        set_grads(ref_params, step)
        opt.step()
        ref.step()
    for p, q in zip(params, ref_params):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", ["Adam", "SGD", "Adagrad"])
def test_tensor_lr_in_one_group_and_float_in_another(kind):
    params, ref_params = make(), make()
    chains = {"Adam": [tz.m.Adam()], "SGD": [], "Adagrad": [tz.m.Adagrad()]}
    torch_cls = {"Adam": torch.optim.Adam, "SGD": torch.optim.SGD, "Adagrad": torch.optim.Adagrad}[kind]
    opt = tz.Modular([{"params": params[:1], "lr": torch.tensor(0.02)}, {"params": params[1:], "lr": 0.01}],
                     *chains[kind], tz.m.LR(1e-3))
    ref = torch_cls([{"params": ref_params[:1], "lr": torch.tensor(0.02)}, {"params": ref_params[1:], "lr": 0.01}], lr=1e-3)
    for step in range(10):
        set_grads(params, step)
        set_grads(ref_params, step)
        opt.step()
        ref.step()
    for p, q in zip(params, ref_params):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-8)


def test_tensor_lr_with_more_than_one_element_is_a_value_error_as_in_torch():
    params = make()
    with pytest.raises(ValueError):
        torch.optim.Adam(params, lr=torch.tensor([1e-3, 1e-3]))
    with pytest.raises(ValueError, match="1-element"):
        tz.Modular([{"params": params, "lr": torch.tensor([1e-3, 1e-3])}], tz.m.Adam(), tz.m.LR(1e-3))


@pytest.mark.parametrize("chain", ["Adam", "ClipNorm-Adam", "SGD-momentum"])
def test_meta_device_parameters_step_as_in_torch(chain):
    params = [torch.nn.Parameter(torch.empty(4, 3, device="meta")), torch.nn.Parameter(torch.empty(3, device="meta"))]
    modules = {"Adam": [tz.m.Adam()], "ClipNorm-Adam": [tz.m.ClipNorm(1.0), tz.m.Adam()], "SGD-momentum": [tz.m.HeavyBall()]}
    opt = tz.Modular(params, *modules[chain], tz.m.LR(1e-3))
    ref = torch.optim.Adam([torch.nn.Parameter(torch.empty(3, device="meta"))])
    for p in ref.param_groups[0]["params"]:
        p.grad = torch.empty_like(p)
    ref.step()  # torch.optim steps on meta tensors
    for _ in range(2):
        for p in params:
            p.grad = torch.empty_like(p)
        opt.step()
    assert all(p.is_meta for p in params)


BAD_LOSSES = {"float-nan": float("nan"), "float-inf": math.inf, "numpy-nan": np.float32("nan"), "numpy-inf": np.float64("-inf")}


@pytest.mark.parametrize("loss", list(BAD_LOSSES.values()), ids=list(BAD_LOSSES))
def test_non_finite_python_loss_is_caught(loss):
    params = make()
    opt = tz.Modular(params, tz.m.Adam(), tz.m.LR(1e-2))
    before = [p.detach().clone() for p in params]

    def closure(backward=True):
        set_grads(params, 0)
        return loss

    with pytest.warns(RuntimeWarning, match="loss"):
        assert opt.step(closure) is loss
    assert opt.skipped_steps == 1 and not opt.state
    for p, b in zip(params, before):
        assert torch.equal(p, b)
    strict = tz.Modular(params, tz.m.Adam(), tz.m.LR(1e-2), nonfinite="raise")
    with pytest.raises(FloatingPointError, match="loss"):
        strict.step(closure)


def test_finite_python_loss_steps():
    params = make()
    opt = tz.Modular(params, tz.m.Adam(), tz.m.LR(1e-2))

    def closure(backward=True):
        set_grads(params, 0)
        return 1.5

    assert opt.step(closure) == 1.5 and opt.skipped_steps == 0


@pytest.mark.parametrize("shape", list(LR_SHAPES.values()), ids=list(LR_SHAPES))
def test_tensor_lr_of_an_lr_module_that_is_not_last(shape):
    params, ref_params = make(), make()
    opt = tz.Modular(params, tz.m.LR(1e-3), tz.m.HeavyBall(0.9))
    opt.param_groups[0]["lr"] = torch.full(shape, 1e-2, dtype=torch.float64)
    ref = torch.optim.SGD(ref_params, lr=1e-2, momentum=0.9)
    for step in range(5):
        set_grads(params, step)
        set_grads(ref_params, step)
        opt.step()
        ref.step()
    for p, q in zip(params, ref_params):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)
