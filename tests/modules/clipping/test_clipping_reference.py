"""The nine clipping modules against the reference implementations written from docs/guide/clipping_semantics.md.

Every test feeds a stream of random per-step updates (float64; shapes 0-dim, 1-D, 2-D, 4-D
conv-like and a zero-size one -- for the EMA/growth modules only with the ords whose norm of an
empty tensor the reference defines) through the module,
once through ``tz.apply_transform`` and once through ``tz.Modular`` (the ``runner`` fixture), and
compares each step's output with the reference in ``tests/reference/clipping.py`` to
``rtol=1e-10``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pytest
import torch
from torch import Tensor

import torchzero as tz
from reference.clipping import (
    RefClipNormByEMA,
    RefClipNormGrowth,
    RefClipValueByEMA,
    RefClipValueGrowth,
    RefNormalizeByEMA,
    ref_centralize,
    ref_clip_norm,
    ref_clip_value,
    ref_normalize,
)

# No conftest.py here on purpose: a second ``conftest`` module would shadow ``tests/conftest.py``
# for test files that do ``from conftest import ...``. The helpers below are plain functions.

D = torch.float64
RTOL, ATOL = 1e-10, 1e-12

# std/var of a one-element group is NaN (the slice is left unchanged); torch warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:.*degrees of freedom is <= 0:UserWarning")


def make_stream(shapes: Sequence[tuple[int, ...]], steps: int, seed: int, zeros: float | None = 0.1) -> list[list[Tensor]]:
    """``steps`` lists of random float64 tensors, one per shape. The scale varies over four orders of
    magnitude between steps and between tensors, and a fraction ``zeros`` of the elements are exact
    zeros (``None``: a random fraction in [0, 0.9) for each tensor, so that ``ord=0``, the count of
    nonzeros, varies too), so clipping sometimes triggers and sometimes does not."""
    g = torch.Generator().manual_seed(seed)
    stream: list[list[Tensor]] = []
    for _ in range(steps):
        step_scale = 10 ** (torch.rand((), generator=g, dtype=D).item() * 2 - 1)
        ts = []
        for s in shapes:
            scale = step_scale * 10 ** (torch.rand((), generator=g, dtype=D).item() * 2 - 1)
            frac = torch.rand((), generator=g, dtype=D).item() * 0.9 if zeros is None else zeros
            t = torch.randn(s, generator=g, dtype=D) * scale
            ts.append(torch.where(torch.rand(s, generator=g, dtype=D) < frac, torch.zeros_like(t), t))
        stream.append(ts)
    return stream


def run_apply(module: tz.Module, stream: list[list[Tensor]]) -> list[list[Tensor]]:
    """Outputs of ``tz.apply_transform`` with the same ``params`` every step (state persists)."""
    params = [torch.zeros(t.shape, dtype=t.dtype) for t in stream[0]]
    outs = []
    for ts in stream:
        inputs = [t.clone() for t in ts]
        out = tz.apply_transform(module, inputs, params=params)
        for a, b in zip(inputs, ts):
            assert torch.equal(a, b), "apply_transform modified its input tensors"
        outs.append([o.clone() for o in out])
    return outs


def run_modular(module: tz.Module | list, stream: list[list[Tensor]]) -> list[list[Tensor]]:
    """Outputs through ``tz.Modular`` with no LR: ``p`` is zeroed before each step, so ``-p`` after
    the step is the update exactly."""
    params = [torch.nn.Parameter(torch.zeros(t.shape, dtype=t.dtype)) for t in stream[0]]
    opt = tz.Modular(params, module)
    outs = []
    for ts in stream:
        with torch.no_grad():
            for p, t in zip(params, ts):
                p.zero_()
                p.grad = t.clone()
        opt.step()
        outs.append([-p.detach().clone() for p in params])
    return outs


def assert_lists_close(got: list[list[Tensor]], expected: list[list[Tensor]], rtol: float = RTOL, atol: float = ATOL) -> None:
    """Equal to the reference, step by step and tensor by tensor."""
    assert len(got) == len(expected)
    for k, (g_step, e_step) in enumerate(zip(got, expected)):
        assert len(g_step) == len(e_step)
        for i, (g, e) in enumerate(zip(g_step, e_step)):
            torch.testing.assert_close(
                g, e, rtol=rtol, atol=atol,
                msg=lambda m, k=k, i=i, e=e: f"step {k}, tensor {i} of shape {tuple(e.shape)}: {m}",
            )


def assert_changes_something(got: list[list[Tensor]], stream: list[list[Tensor]]) -> None:
    """Guards against vacuous comparisons: the module changed at least one tensor on some step."""
    assert any(not torch.equal(o, t) for outs, ts in zip(got, stream) for o, t in zip(outs, ts)), "nothing was clipped"


def check(runner: Callable, module: tz.Module | list, ref_step: Callable, stream: list[list[Tensor]], nontrivial: bool = True) -> None:
    """Runs ``module`` over ``stream`` and compares each step with ``ref_step`` (called in order)."""
    got = runner(module, stream)
    assert_lists_close(got, run_reference(ref_step, stream))
    if nontrivial:
        assert_changes_something(got, stream)


@pytest.fixture(params=["apply_transform", "Modular"])
def runner(request: pytest.FixtureRequest) -> Callable[[tz.Module, list[list[Tensor]]], list[list[Tensor]]]:
    """Runs a module over a stream through ``tz.apply_transform`` or through ``tz.Modular``."""
    return run_apply if request.param == "apply_transform" else run_modular


SHAPES = [(), (5,), (3, 4), (4, 3, 2, 2)]
ZERO_SIZE = (0, 3)
ALL_SHAPES = SHAPES + [ZERO_SIZE]
ORDS = [2, 1, math.inf, 0, 3, "mad", "std", "var", "sum", "l1", "linf"]
DIMS = [None, 0, 1, (0, 1), -1, "global"]
STEPS = 8

#: ords whose norm of an empty tensor is a finite number
EMPTY_OK_ORDS = (2, 1, 0, 3, "sum", "l1")



def ord_id(o: object) -> str:
    return f"ord={'inf' if o == math.inf else o}"


def dim_id(d: object) -> str:
    return f"dim={d}".replace(" ", "")


def ema_shapes_for(ord: object) -> list[tuple[int, ...]]:
    """Shapes for the EMA modules. ``std``/``var`` of a 0-dim tensor is NaN, and the EMA modules
    have no "tiny norm leaves it unchanged" rule, so both the reference and torchzero give NaN.
    The zero-size tensor only where its norm is a finite number (the reference raises for the inf
    norm of an empty tensor; the semantics page does not say what the EMA modules do then)."""
    shapes = [s for s in SHAPES if not (ord in ("std", "var") and s == ())]
    return shapes + ([ZERO_SIZE] if ord in EMPTY_OK_ORDS else [])


def scale_fn(factor: float) -> Callable[[list[Tensor]], list[Tensor]]:
    """What ``tz.m.LR(factor)`` does, for the references."""
    return lambda ts: [t * factor for t in ts]


def run_reference(step: Callable[[list[Tensor]], list[Tensor]], stream: list[list[Tensor]]) -> list[list[Tensor]]:
    return [step([t.clone() for t in ts]) for ts in stream]


# ============================================================================ stateless modules
@pytest.mark.parametrize("value", [0.0, 0.5, 3.0], ids=lambda v: f"value={v}")
def test_clip_value(value, runner):
    stream = make_stream(SHAPES + [ZERO_SIZE], 3, seed=1)
    got = runner(tz.m.ClipValue(value), stream)
    assert_lists_close(got, run_reference(lambda ts: ref_clip_value(ts, value), stream))


@pytest.mark.parametrize("dim", DIMS, ids=dim_id)
@pytest.mark.parametrize("ord", ORDS, ids=ord_id)
def test_clip_norm_ord_dim(ord, dim, runner):
    stream = make_stream(ALL_SHAPES, 3, seed=2, zeros=None)
    got = runner(tz.m.ClipNorm(2.0, ord=ord, dim=dim), stream)
    assert_lists_close(got, run_reference(lambda ts: ref_clip_norm(ts, 2.0, ord, dim), stream))


@pytest.mark.parametrize("min_size", [1, 4, 13], ids=lambda v: f"min_size={v}")
@pytest.mark.parametrize("inverse_dims", [False, True], ids=lambda v: f"inverse_dims={v}")
@pytest.mark.parametrize("dim", DIMS, ids=dim_id)
@pytest.mark.parametrize("ord", [2, "mad"], ids=ord_id)
def test_clip_norm_groups(ord, dim, inverse_dims, min_size, runner):
    stream = make_stream(ALL_SHAPES, 3, seed=3)
    module = tz.m.ClipNorm(0.5, ord=ord, dim=dim, inverse_dims=inverse_dims, min_size=min_size)
    got = runner(module, stream)
    exp = run_reference(lambda ts: ref_clip_norm(ts, 0.5, ord, dim, inverse_dims, min_size), stream)
    assert_lists_close(got, exp)


@pytest.mark.parametrize("dim", DIMS, ids=dim_id)
@pytest.mark.parametrize("ord", ORDS, ids=ord_id)
def test_normalize_ord_dim(ord, dim, runner):
    stream = make_stream(ALL_SHAPES, 3, seed=4, zeros=None)
    got = runner(tz.m.Normalize(3.0, ord=ord, dim=dim), stream)
    assert_lists_close(got, run_reference(lambda ts: ref_normalize(ts, 3.0, ord, dim), stream))


@pytest.mark.parametrize("min_size", [1, 4, 13], ids=lambda v: f"min_size={v}")
@pytest.mark.parametrize("inverse_dims", [False, True], ids=lambda v: f"inverse_dims={v}")
@pytest.mark.parametrize("dim", DIMS, ids=dim_id)
def test_normalize_groups(dim, inverse_dims, min_size, runner):
    stream = make_stream(ALL_SHAPES, 3, seed=5)
    module = tz.m.Normalize(ord=1, dim=dim, inverse_dims=inverse_dims, min_size=min_size)  # default norm_value=1
    got = runner(module, stream)
    exp = run_reference(lambda ts: ref_normalize(ts, 1, 1, dim, inverse_dims, min_size), stream)
    assert_lists_close(got, exp)


@pytest.mark.parametrize("min_size", [1, 2, 13], ids=lambda v: f"min_size={v}")
@pytest.mark.parametrize("inverse_dims", [False, True], ids=lambda v: f"inverse_dims={v}")
@pytest.mark.parametrize("dim", DIMS, ids=dim_id)
def test_centralize(dim, inverse_dims, min_size, runner):
    stream = make_stream(SHAPES + [ZERO_SIZE], 3, seed=6)
    got = runner(tz.m.Centralize(dim=dim, inverse_dims=inverse_dims, min_size=min_size), stream)
    exp = run_reference(lambda ts: ref_centralize(ts, dim, inverse_dims, min_size), stream)
    assert_lists_close(got, exp)


def test_centralize_defaults(runner):
    stream = make_stream(SHAPES + [(1,), (1, 1)], 2, seed=7)
    got = runner(tz.m.Centralize(), stream)
    assert_lists_close(got, run_reference(ref_centralize, stream))
    # the defaults (min_size=2) leave 0-dim and one-element tensors unchanged
    for out, ts in zip(got, stream):
        for i in (0, 4, 5):
            assert torch.equal(out[i], ts[i])


@pytest.mark.parametrize("dim", [None, 0, 1, "global"], ids=dim_id)
@pytest.mark.parametrize("ord", ORDS, ids=ord_id)
@pytest.mark.parametrize("module_name", ["ClipNorm", "Normalize"])
def test_zero_size_tensor_is_left_unchanged(module_name, ord, dim):
    """Spec: a tensor whose reduced dims have fewer than ``min_size`` elements is unchanged; an
    empty tensor must not make the step fail, whatever the norm."""
    ts = [torch.zeros(ZERO_SIZE, dtype=torch.float64), torch.tensor([3.0, -4.0], dtype=torch.float64)]
    module = getattr(tz.m, module_name)(1.0, ord=ord, dim=dim)
    out = tz.apply_transform(module, ts)
    ref = (ref_clip_norm if module_name == "ClipNorm" else ref_normalize)(ts, 1.0, ord, dim)
    assert out[0].shape == ZERO_SIZE
    torch.testing.assert_close(out[1], ref[1], rtol=1e-10, atol=1e-12)


# ============================================================================ EMA modules
EMA_CLASSES = [
    pytest.param(tz.m.ClipNormByEMA, RefClipNormByEMA, id="ClipNormByEMA"),
    pytest.param(tz.m.NormalizeByEMA, RefNormalizeByEMA, id="NormalizeByEMA"),
]


@pytest.mark.parametrize("tensorwise", [True, False], ids=lambda v: f"tensorwise={v}")
@pytest.mark.parametrize("ord", ORDS, ids=ord_id)
@pytest.mark.parametrize("cls, ref_cls", EMA_CLASSES)
def test_norm_by_ema_ord(cls, ref_cls, ord, tensorwise, runner):
    stream = make_stream(ema_shapes_for(ord), STEPS, seed=10, zeros=None)
    # with ord=0 (count of nonzeros) the EMA has at least as many nonzeros as the update: ClipNormByEMA never clips
    nontrivial = not (ord == 0 and cls is tz.m.ClipNormByEMA)
    check(runner, cls(0.9, ord=ord, tensorwise=tensorwise), ref_cls(0.9, ord=ord, tensorwise=tensorwise).step, stream, nontrivial)


@pytest.mark.parametrize("inner", [None, 2.0], ids=lambda v: "inner=None" if v is None else f"inner=LR({v})")
@pytest.mark.parametrize("ema_init", ["zeros", "update"], ids=lambda v: f"ema_init={v}")
@pytest.mark.parametrize("max_ema_growth", [None, 1.5], ids=lambda v: f"max_ema_growth={v}")
@pytest.mark.parametrize("tensorwise", [True, False], ids=lambda v: f"tensorwise={v}")
@pytest.mark.parametrize("cls, ref_cls", EMA_CLASSES)
def test_norm_by_ema_options(cls, ref_cls, tensorwise, max_ema_growth, ema_init, inner, runner):
    stream = make_stream(ema_shapes_for(2), STEPS, seed=11)
    kw = dict(beta=0.8, tensorwise=tensorwise, max_ema_growth=max_ema_growth, ema_init=ema_init)
    module = cls(**kw, inner=None if inner is None else tz.m.LR(inner))
    ref = ref_cls(**kw, inner=None if inner is None else scale_fn(inner))
    check(runner, module, ref.step, stream)


@pytest.mark.parametrize("cls, ref_cls", EMA_CLASSES)
def test_norm_by_ema_defaults_and_eps(cls, ref_cls, runner):
    stream = make_stream(SHAPES + [ZERO_SIZE], STEPS, seed=12)
    check(runner, cls(), ref_cls().step, stream)
    # a large eps, "update" init and a growth limit of 1.1
    kw = dict(beta=0.5, eps=0.3, max_ema_growth=1.1, ema_init="update", ord="l1")
    check(runner, cls(**kw), ref_cls(**kw).step, stream)


@pytest.mark.parametrize("inner", [None, 2.0], ids=lambda v: "inner=None" if v is None else f"inner=LR({v})")
@pytest.mark.parametrize("ema_tfm", [None, 0.5], ids=lambda v: "ema_tfm=None" if v is None else f"ema_tfm=LR({v})")
@pytest.mark.parametrize("ema_init", ["zeros", "update"], ids=lambda v: f"ema_init={v}")
@pytest.mark.parametrize("beta", [0.5, 0.99], ids=lambda v: f"beta={v}")
def test_clip_value_by_ema(beta, ema_init, ema_tfm, inner, runner):
    stream = make_stream(SHAPES + [ZERO_SIZE], STEPS, seed=13)
    module = tz.m.ClipValueByEMA(
        beta, ema_init=ema_init,
        ema_tfm=None if ema_tfm is None else tz.m.LR(ema_tfm),
        inner=None if inner is None else tz.m.LR(inner),
    )
    ref = RefClipValueByEMA(
        beta, ema_init=ema_init,
        ema_tfm=None if ema_tfm is None else scale_fn(ema_tfm),
        inner=None if inner is None else scale_fn(inner),
    )
    check(runner, module, ref.step, stream)


def test_clip_value_by_ema_with_a_chain_as_ema_tfm(runner):
    """``ema_tfm`` may be a list of modules (a chain); here: bound = clamp(ema, max=0.3) (elementwise)."""
    stream = make_stream(SHAPES, STEPS, seed=14)
    module = tz.m.ClipValueByEMA(0.7, ema_init="update", ema_tfm=[tz.m.ClipValue(0.3)])
    ref = RefClipValueByEMA(0.7, ema_init="update", ema_tfm=lambda ts: ref_clip_value(ts, 0.3))
    check(runner, module, ref.step, stream)


def test_nested_lr_does_not_change_the_chain_lr():
    """``ClipValueByEMA(ema_tfm=LR(2.0))`` must scale only the bound (spec: ``c = ema_tfm(ema)``);
    a following ``LR(1e-3)`` must still multiply the update by 1e-3 (this is the docstring example
    of ClipValueByEMA)."""
    g = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    w = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = tz.Modular([w], tz.m.ClipValueByEMA(ema_init="update", ema_tfm=tz.m.LR(2.0)), tz.m.LR(1e-3))
    w.grad = g.clone()
    opt.step()
    # |u| <= 2 * |u| so nothing is clipped; the step is lr * u
    torch.testing.assert_close(-w.detach(), 1e-3 * g, rtol=1e-12, atol=0)


# ============================================================================ growth modules
GROWTH = [
    pytest.param(add, mul, min_value, max_decay, id=f"add={add}-mul={mul}-min_value={min_value}-max_decay={max_decay}")
    for add in (None, 0.1)
    for mul in (None, 1.5)
    for min_value in (None, 1e-4)
    for max_decay in (None, 2)
]


@pytest.mark.parametrize("add, mul, min_value, max_decay", GROWTH)
def test_clip_value_growth(add, mul, min_value, max_decay, runner):
    stream = make_stream(SHAPES + [ZERO_SIZE], STEPS, seed=20)
    kw = dict(add=add, mul=mul, min_value=min_value, max_decay=max_decay)
    check(runner, tz.m.ClipValueGrowth(**kw), RefClipValueGrowth(**kw).step, stream, nontrivial=(add, mul) != (None, None))


def test_clip_value_growth_defaults(runner):
    stream = make_stream(SHAPES, STEPS, seed=21)
    check(runner, tz.m.ClipValueGrowth(), RefClipValueGrowth().step, stream)


@pytest.mark.parametrize("parameterwise", [True, False], ids=lambda v: f"parameterwise={v}")
@pytest.mark.parametrize("add, mul, min_value, max_decay", GROWTH)
def test_clip_norm_growth(add, mul, min_value, max_decay, parameterwise, runner):
    stream = make_stream(SHAPES + [ZERO_SIZE], STEPS, seed=22)
    kw = dict(add=add, mul=mul, min_value=min_value, max_decay=max_decay, parameterwise=parameterwise)
    check(runner, tz.m.ClipNormGrowth(**kw), RefClipNormGrowth(**kw).step, stream, nontrivial=(add, mul) != (None, None))


@pytest.mark.parametrize("parameterwise", [True, False], ids=lambda v: f"parameterwise={v}")
@pytest.mark.parametrize("ord", ORDS, ids=ord_id)
def test_clip_norm_growth_ord(ord, parameterwise, runner):
    stream = make_stream(ema_shapes_for(ord), STEPS, seed=23, zeros=None)
    ref = RefClipNormGrowth(ord=ord, parameterwise=parameterwise)
    check(runner, tz.m.ClipNormGrowth(ord=ord, parameterwise=parameterwise), ref.step, stream)


def test_clip_norm_growth_tensorwise_alias():
    """``tensorwise`` is accepted as the family-wide name of ``parameterwise``."""
    stream = make_stream(SHAPES, STEPS, seed=24)
    check(run_apply, tz.m.ClipNormGrowth(tensorwise=False), RefClipNormGrowth(parameterwise=False).step, stream)


# ============================================================================ in a chain
def test_modules_chained_match_references_chained(runner):
    """A chain of every module, so that each one works on the previous one's output."""
    stream = make_stream(SHAPES, STEPS, seed=30)
    chain = [
        tz.m.ClipValueGrowth(),
        tz.m.ClipNormByEMA(0.9),
        tz.m.Centralize(dim=0, inverse_dims=True),
        tz.m.ClipNorm(2.0, dim="global"),
        tz.m.ClipValueByEMA(0.9, ema_init="update"),
        tz.m.NormalizeByEMA(0.9, tensorwise=False),
        tz.m.ClipNormGrowth(mul=1.2, parameterwise=False),
        tz.m.Normalize(2.0, ord=1, dim=-1),
        tz.m.ClipValue(0.7),
    ]
    refs = [
        RefClipValueGrowth().step,
        RefClipNormByEMA(0.9).step,
        lambda ts: ref_centralize(ts, 0, True),
        lambda ts: ref_clip_norm(ts, 2.0, dim="global"),
        RefClipValueByEMA(0.9, ema_init="update").step,
        RefNormalizeByEMA(0.9, tensorwise=False).step,
        RefClipNormGrowth(mul=1.2, parameterwise=False).step,
        lambda ts: ref_normalize(ts, 2.0, 1, -1),
        lambda ts: ref_clip_value(ts, 0.7),
    ]

    def ref_chain(ts: list[Tensor]) -> list[Tensor]:
        for r in refs:
            ts = r(ts)
        return ts

    check(runner, chain, ref_chain, stream)


# ============================================================================ the streams exercise the options
OPTION_PAIRS = [
    pytest.param(lambda: tz.m.ClipNormByEMA(0.8), lambda: tz.m.ClipNormByEMA(0.8, max_ema_growth=None), id="ClipNormByEMA-max_ema_growth"),
    pytest.param(lambda: tz.m.NormalizeByEMA(0.8), lambda: tz.m.NormalizeByEMA(0.8, max_ema_growth=None), id="NormalizeByEMA-max_ema_growth"),
    pytest.param(lambda: tz.m.NormalizeByEMA(0.8, tensorwise=False), lambda: tz.m.NormalizeByEMA(0.8, tensorwise=False, max_ema_growth=None), id="NormalizeByEMA-global-max_ema_growth"),
    pytest.param(lambda: tz.m.ClipNormByEMA(0.8), lambda: tz.m.ClipNormByEMA(0.8, ema_init="update"), id="ClipNormByEMA-ema_init"),
    pytest.param(lambda: tz.m.ClipValueByEMA(0.5), lambda: tz.m.ClipValueByEMA(0.5, ema_init="update"), id="ClipValueByEMA-ema_init"),
    pytest.param(lambda: tz.m.ClipValueGrowth(), lambda: tz.m.ClipValueGrowth(max_decay=None), id="ClipValueGrowth-max_decay"),
    pytest.param(lambda: tz.m.ClipValueGrowth(), lambda: tz.m.ClipValueGrowth(min_value=None), id="ClipValueGrowth-min_value"),
    pytest.param(lambda: tz.m.ClipValueGrowth(add=0.1, mul=None), lambda: tz.m.ClipValueGrowth(add=0.2, mul=None), id="ClipValueGrowth-add"),
    pytest.param(lambda: tz.m.ClipNormGrowth(), lambda: tz.m.ClipNormGrowth(max_decay=None), id="ClipNormGrowth-max_decay"),
    pytest.param(lambda: tz.m.ClipNormGrowth(add=0.1, mul=None), lambda: tz.m.ClipNormGrowth(add=0.2, mul=None), id="ClipNormGrowth-add"),
    pytest.param(lambda: tz.m.ClipNormGrowth(min_value=1.0), lambda: tz.m.ClipNormGrowth(min_value=None), id="ClipNormGrowth-min_value"),
]


@pytest.mark.parametrize("make_a, make_b", OPTION_PAIRS)
def test_streams_exercise_the_option(make_a, make_b):
    """The reference comparisons above are only as good as the streams: on the same stream, each of
    these options must change the output (so its branch is taken and was compared)."""
    stream = make_stream(SHAPES, STEPS, seed=11)
    a, b = run_apply(make_a(), stream), run_apply(make_b(), stream)
    assert any(not torch.equal(x, y) for sa, sb in zip(a, b) for x, y in zip(sa, sb))
