"""The in-place functions ``clip_grad_norm_``, ``clip_grad_value_``, ``normalize_grads_``: against
``torch.nn.utils`` and against the references.

``torch.nn.utils.clip_grad_norm_`` scales by ``max_norm / (total_norm + 1e-6)``; torchzero (spec)
by ``max_norm / total_norm``. Where clipping happens the two differ by a relative ``1e-6 / total_norm``,
so those comparisons use ``rtol=1e-6``; everything else is compared to ``1e-12`` or exactly.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

import torchzero as tz
import torchzero.modules.clipping as tzc
from reference.clipping import ref_clip_grad_norm, ref_clip_grad_value, ref_normalize_grads

D = torch.float64
SHAPES = [(), (1,), (5,), (3, 4), (4, 3, 2, 2)]
TORCH_RTOL = 1e-6  # torch adds 1e-6 to the norm

# std/var of a one-element group is NaN (the slice is left unchanged); torch warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:.*degrees of freedom is <= 0:UserWarning")


def params_with_grads(shapes=SHAPES, scale: float = 1.0, seed: int = 0, none: tuple[int, ...] = ()) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    params = []
    for i, s in enumerate(shapes):
        p = torch.nn.Parameter(torch.randn(s, generator=g, dtype=D))
        p.grad = None if i in none else torch.randn(s, generator=g, dtype=D) * scale
        params.append(p)
    return params


def clone_params(params: list[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    out = []
    for p in params:
        q = torch.nn.Parameter(p.detach().clone())
        q.grad = None if p.grad is None else p.grad.clone()
        out.append(q)
    return out


def grads_of(params) -> list[Tensor | None]:
    return [None if p.grad is None else p.grad.clone() for p in params]


def close(a: Tensor, b: Tensor, rtol: float = 1e-12, atol: float = 1e-14) -> None:
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


def test_exported_from_both_places():
    for name in ("clip_grad_norm_", "clip_grad_value_", "normalize_grads_", "ClipValue", "ClipNorm", "Normalize",
                 "Centralize", "ClipNormByEMA", "NormalizeByEMA", "ClipValueByEMA", "ClipValueGrowth", "ClipNormGrowth"):
        assert getattr(tz.m, name) is getattr(tzc, name)
        assert name in tzc.__all__


# ============================================================================ vs torch.nn.utils
@pytest.mark.parametrize("scale", [0.01, 1.0, 100.0], ids=lambda s: f"grad_scale={s}")
@pytest.mark.parametrize("ord", [2, 1, math.inf, 2.0, "l2", "l1", "linf"], ids=lambda o: f"ord={o}")
def test_clip_grad_norm_global_matches_torch(ord, scale):
    ours = params_with_grads(scale=scale)
    theirs = clone_params(ours)
    norm_type = {"l2": 2, "l1": 1, "linf": math.inf}.get(ord, ord)
    total = tz.m.clip_grad_norm_(ours, 1.0, ord=ord, dim="global")
    total_torch = torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type=norm_type)
    assert isinstance(total, Tensor) and total.ndim == 0
    close(total, total_torch)
    clipped = total_torch.item() > 1.0
    for p, q in zip(ours, theirs):
        if clipped:
            close(p.grad, q.grad, rtol=TORCH_RTOL, atol=0)
        else:
            assert torch.equal(p.grad, q.grad)


@pytest.mark.parametrize("value", [0.0, 0.3, 1.0, 100.0], ids=lambda v: f"value={v}")
def test_clip_grad_value_matches_torch(value):
    ours = params_with_grads()
    theirs = clone_params(ours)
    assert tz.m.clip_grad_value_(ours, value) is None
    torch.nn.utils.clip_grad_value_(theirs, value)
    for p, q in zip(ours, theirs):
        assert torch.equal(p.grad, q.grad)


def test_clip_norm_module_with_grad_target_matches_torch():
    """``ClipNorm(1.0, dim="global", target="grad")`` leaves ``p.grad`` as
    ``torch.nn.utils.clip_grad_norm_(params, 1.0)`` does, step after step, and the params move by it."""
    init = params_with_grads(seed=1)
    ours, theirs = clone_params(init), clone_params(init)
    opt = tz.Modular(ours, tz.m.ClipNorm(1.0, dim="global", target="grad"), tz.m.LR(0.1))
    g = torch.Generator().manual_seed(2)
    for step in range(5):
        grads = [torch.randn(p.shape, generator=g, dtype=D) * 10 ** (step - 2) for p in init]
        for p, q, gr in zip(ours, theirs, grads):
            p.grad, q.grad = gr.clone(), gr.clone()
        before = [p.detach().clone() for p in ours]
        opt.step()
        torch.nn.utils.clip_grad_norm_(theirs, 1.0)
        for p, q, b in zip(ours, theirs, before):
            close(p.grad, q.grad, rtol=TORCH_RTOL, atol=0)
            close(b - p.detach(), 0.1 * p.grad)


def test_grad_none_is_skipped_like_torch():
    ours = params_with_grads(scale=10.0, none=(1, 3))
    theirs = clone_params(ours)
    total = tz.m.clip_grad_norm_(ours, 1.0, dim="global")
    total_torch = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    close(total, total_torch)
    for i, (p, q) in enumerate(zip(ours, theirs)):
        if i in (1, 3):
            assert p.grad is None
        else:
            close(p.grad, q.grad, rtol=TORCH_RTOL, atol=0)
    tz.m.clip_grad_value_(ours, 0.1)
    assert ours[1].grad is None and ours[3].grad is None
    tz.m.normalize_grads_(ours, 1.0)
    assert ours[1].grad is None and ours[3].grad is None


def test_all_grads_none():
    params = params_with_grads(none=tuple(range(len(SHAPES))))
    tz.m.clip_grad_value_(params, 1.0)
    assert tz.m.clip_grad_norm_(params, 1.0) == []
    total = tz.m.clip_grad_norm_(params, 1.0, dim="global")
    assert total.ndim == 0 and total.item() == 0
    assert all(p.grad is None for p in params)


def test_single_tensor_argument():
    p = torch.nn.Parameter(torch.zeros(2, dtype=D))
    p.grad = torch.tensor([3.0, 4.0], dtype=D)
    total = tz.m.clip_grad_norm_(p, 1.0, dim="global")
    close(total, torch.tensor(5.0, dtype=D))
    close(p.grad, torch.tensor([0.6, 0.8], dtype=D))


# ============================================================================ per-tensor defaults, min_norm
def test_clip_grad_norm_default_is_per_tensor_with_min_size_2():
    params = params_with_grads(scale=10.0)
    grads = grads_of(params)
    norms = tz.m.clip_grad_norm_(params, 1.0)
    assert isinstance(norms, list) and len(norms) == len(params)
    # the 0-dim and the one-element gradients are untouched (min_size=2)
    assert torch.equal(params[0].grad, grads[0])
    assert torch.equal(params[1].grad, grads[1])
    for p, g in zip(params[2:], grads[2:]):
        close(torch.linalg.vector_norm(p.grad), torch.tensor(1.0, dtype=D))  # each tensor on its own
        close(p.grad, g / torch.linalg.vector_norm(g))
    exp_grads, exp_norms = ref_clip_grad_norm(grads, 1.0)
    for p, e in zip(params, exp_grads):
        close(p.grad, e)
    for n, e in zip(norms, exp_norms):
        if e is not None:  # torchzero reports a whole-tensor norm where the reference reports None
            close(n.reshape(e.shape), e)


@pytest.mark.parametrize("max_norm", [None, 1.0, 5.0], ids=lambda v: f"max_norm={v}")
@pytest.mark.parametrize("dim", [None, "global", 0], ids=lambda v: f"dim={v}")
def test_min_norm_scales_small_grads_up(max_norm, dim):
    params = params_with_grads(scale=0.01)
    params[3].grad.mul_(1e4)  # one large gradient among small ones
    grads = grads_of(params)
    norms = tz.m.clip_grad_norm_(params, max_norm, dim=dim, min_norm=0.5)
    exp_grads, exp_norms = ref_clip_grad_norm(grads, max_norm, dim=dim, min_norm=0.5)
    for p, e in zip(params, exp_grads):
        close(p.grad, e)
    if dim is None:  # the small ones end with norm 0.5, the 0-dim/one-element ones are untouched
        for p in params[2:]:
            n = torch.linalg.vector_norm(p.grad).item()
            assert n >= 0.5 * (1 - 1e-12) and (max_norm is None or n <= max_norm * (1 + 1e-12))
        close(torch.linalg.vector_norm(params[2].grad), torch.tensor(0.5, dtype=D))
    if dim == "global":
        close(norms, exp_norms)


# ============================================================================ against the references
ORDS = [2, 1, math.inf, 0, 3, "mad", "std", "var", "sum", "l1", "linf"]
DIMS = [None, 0, 1, (0, 1), -1, "global"]


@pytest.mark.parametrize("min_size", [0, 2, 13], ids=lambda v: f"min_size={v}")
@pytest.mark.parametrize("inverse_dims", [False, True], ids=lambda v: f"inverse_dims={v}")
@pytest.mark.parametrize("dim", DIMS, ids=lambda v: f"dim={v}".replace(" ", ""))
@pytest.mark.parametrize("ord", [2, "mad"], ids=lambda o: f"ord={o}")
def test_clip_grad_norm_groups(ord, dim, inverse_dims, min_size):
    params = params_with_grads(scale=3.0, none=(2,))
    grads = grads_of(params)
    norms = tz.m.clip_grad_norm_(params, 1.0, ord=ord, dim=dim, inverse_dims=inverse_dims, min_size=min_size)
    exp_grads, exp_norms = ref_clip_grad_norm(grads, 1.0, ord, dim, inverse_dims, min_size)
    check(params, norms, exp_grads, exp_norms, dim)


@pytest.mark.parametrize("dim", DIMS, ids=lambda v: f"dim={v}".replace(" ", ""))
@pytest.mark.parametrize("ord", ORDS, ids=lambda o: f"ord={o}")
@pytest.mark.parametrize("fn", ["clip_grad_norm_", "normalize_grads_"])
def test_norm_functions_ord_dim(fn, ord, dim):
    params = params_with_grads(scale=3.0)
    grads = grads_of(params)
    if fn == "clip_grad_norm_":
        norms = tz.m.clip_grad_norm_(params, 2.0, ord=ord, dim=dim)
        exp_grads, exp_norms = ref_clip_grad_norm(grads, 2.0, ord, dim)
    else:
        norms = tz.m.normalize_grads_(params, 2.0, ord=ord, dim=dim)
        exp_grads, exp_norms = ref_normalize_grads(grads, 2.0, ord, dim)
    check(params, norms, exp_grads, exp_norms, dim)


@pytest.mark.parametrize("min_size", [1, 2, 13], ids=lambda v: f"min_size={v}")
@pytest.mark.parametrize("inverse_dims", [False, True], ids=lambda v: f"inverse_dims={v}")
@pytest.mark.parametrize("dim", DIMS, ids=lambda v: f"dim={v}".replace(" ", ""))
def test_normalize_grads_groups(dim, inverse_dims, min_size):
    params = params_with_grads(scale=3.0, none=(0,))
    grads = grads_of(params)
    norms = tz.m.normalize_grads_(params, 0.5, ord=1, dim=dim, inverse_dims=inverse_dims, min_size=min_size)
    exp_grads, exp_norms = ref_normalize_grads(grads, 0.5, 1, dim, inverse_dims, min_size)
    check(params, norms, exp_grads, exp_norms, dim)


def check(params, norms, exp_grads, exp_norms, dim) -> None:
    for i, (p, e) in enumerate(zip(params, exp_grads)):
        if e is None:
            assert p.grad is None
        else:
            torch.testing.assert_close(p.grad, e, rtol=1e-10, atol=1e-12, msg=lambda m, i=i: f"grad {i}: {m}")
    if dim == "global":
        assert isinstance(norms, Tensor) and norms.ndim == 0
        torch.testing.assert_close(norms, exp_norms, rtol=1e-10, atol=1e-12)
        return
    present = [n for n, p in zip(exp_norms, params) if p.grad is not None]
    assert isinstance(norms, list) and len(norms) == len(present), "one norm per gradient that is not None"
    for i, (n, e) in enumerate(zip(norms, present)):
        if e is not None:  # torchzero reports a whole-tensor norm where the reference reports None
            assert n.numel() == e.numel(), f"norm {i}: shape {tuple(n.shape)}, expected {tuple(e.shape)}"
            torch.testing.assert_close(n.reshape(e.shape), e, rtol=1e-10, atol=1e-12, equal_nan=True, msg=lambda m, i=i: f"norm {i}: {m}")


def test_clip_grad_value_reference():
    params = params_with_grads(scale=3.0, none=(1,))
    grads = grads_of(params)
    tz.m.clip_grad_value_(params, 0.7)
    for p, e in zip(params, ref_clip_grad_value(grads, 0.7)):
        assert (p.grad is None and e is None) or torch.equal(p.grad, e)


@pytest.mark.parametrize("ord", ORDS, ids=lambda o: f"ord={o}")
def test_functions_with_a_zero_size_grad(ord):
    """An empty gradient is left unchanged (its reduced size 0 is below min_size) and does not fail."""
    params = params_with_grads(shapes=[(0, 3), (3, 4)], scale=5.0)
    grads = grads_of(params)
    tz.m.clip_grad_norm_(params, 1.0, ord=ord)
    tz.m.normalize_grads_(params, 1.0, ord=ord)
    assert params[0].grad.shape == (0, 3)
    exp = ref_normalize_grads(ref_clip_grad_norm(grads, 1.0, ord)[0], 1.0, ord)[0]
    torch.testing.assert_close(params[1].grad, exp[1], rtol=1e-10, atol=1e-12)
