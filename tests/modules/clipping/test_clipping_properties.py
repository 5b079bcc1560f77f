"""Properties of the clipping modules, checked with hypothesis on random shapes, scales and settings.

- ClipNorm: every norm group's norm is at most ``max_norm * (1 + 1e-6)`` afterwards;
  ClipValue: every element is in ``[-value, value]``; both are idempotent.
- Normalize: every norm group's norm equals ``norm_value`` (where the input norm is > 1e-12).
- Centralize: the mean over the chosen dims is 0.
- The result for a tensor never depends on the other parameters' shapes or on parameter order
  (spec, "Norm groups": **fix**), also for the stateful per-tensor modules over several steps.
- No module ever produces NaN from an all-zero input (spec: **fix**, incl. ``Normalize(dim="global")``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor

import torchzero as tz
from reference.clipping import reduce_dims, ref_global_norm, ref_norm

D = torch.float64
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

pytestmark = pytest.mark.filterwarnings("ignore:.*degrees of freedom is <= 0:UserWarning")


# ============================================================================ strategies
shape_st = st.lists(st.integers(1, 4), min_size=0, max_size=4).map(tuple)
per_tensor_dim_st = st.sampled_from([None, 0, 1, -1, (0, 1), (1, 2), (0, 2, 3)])
dim_st = st.one_of(per_tensor_dim_st, st.just("global"))


@st.composite
def tensor_st(draw: Any, shape: tuple[int, ...] | None = None) -> Tensor:
    """A float64 tensor with a random shape, scale (1e-4 .. 1e4) and, sometimes, exact zeros."""
    shape = draw(shape_st) if shape is None else shape
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    t = torch.randn(shape, generator=g, dtype=D) * 10 ** draw(st.floats(-4, 4))
    zeros = draw(st.sampled_from([0.0, 0.0, 0.3]))
    return torch.where(torch.rand(shape, generator=g, dtype=D) < zeros, torch.zeros_like(t), t)


tensors_st = st.lists(tensor_st(), min_size=1, max_size=5)


def slice_norms(t: Tensor, ord: Any, dim: Any, inverse_dims: bool, min_size: int) -> Tensor | None:
    """The keepdim norms of ``t``'s norm groups (reference), or None if ``t`` is not measured."""
    dims = reduce_dims(t, dim, inverse_dims, min_size)
    return None if dims is None else ref_norm(t, ord, dims)


def group_norms(ts: list[Tensor], ord: Any, dim: Any, inverse_dims: bool, min_size: int) -> list[Tensor | None]:
    if dim == "global":
        return [ref_global_norm(ts, ord)]
    return [slice_norms(t, ord, dim, inverse_dims, min_size) for t in ts]


# ============================================================================ ClipNorm / ClipValue
# ords for which u * min(1, m/n) has norm <= m: positively homogeneous norms, "var" (m^2/var < m
# when var > m) and the signed "sum"; not 0 (scaling does not change the count of nonzeros)
CLIP_ORDS = [2, 1, 3, 0.5, math.inf, "mad", "std", "var", "sum", "l1", "linf"]


@SETTINGS
@given(
    ts=tensors_st,
    max_norm=st.floats(1e-3, 1e3),
    ord=st.sampled_from(CLIP_ORDS),
    dim=dim_st,
    inverse_dims=st.booleans(),
    min_size=st.integers(1, 6),
)
def test_clip_norm_bounds_the_norm(ts, max_norm, ord, dim, inverse_dims, min_size):
    out = tz.apply_transform(tz.m.ClipNorm(max_norm, ord=ord, dim=dim, inverse_dims=inverse_dims, min_size=min_size), ts)
    for n in group_norms(out, ord, dim, inverse_dims, min_size):
        if n is not None:
            n = n[torch.isfinite(n)]  # std/var of one element is NaN: left unchanged
            assert (n <= max_norm * (1 + 1e-6)).all(), f"norms {n.max().item()} > max_norm {max_norm}"
    if dim != "global":  # tensors that are not measured are unchanged
        for t, o in zip(ts, out):
            if reduce_dims(t, dim, inverse_dims, min_size) is None:
                assert torch.equal(t, o)


@SETTINGS
@given(ts=tensors_st, max_norm=st.floats(1e-3, 1e3), ord=st.sampled_from(CLIP_ORDS + [0]), dim=dim_st)
def test_clip_norm_only_scales_down(ts, max_norm, ord, dim):
    """ClipNorm multiplies each group by a factor in (0, 1]: signs kept, magnitudes not increased."""
    out = tz.apply_transform(tz.m.ClipNorm(max_norm, ord=ord, dim=dim), ts)
    for t, o in zip(ts, out):
        assert (o.abs() <= t.abs()).all()
        assert ((o == 0) | (torch.sign(o) == torch.sign(t))).all()


@SETTINGS
@given(ts=tensors_st, max_norm=st.floats(1e-3, 1e3), ord=st.sampled_from(CLIP_ORDS), dim=dim_st, inverse_dims=st.booleans())
def test_clip_norm_is_idempotent(ts, max_norm, ord, dim, inverse_dims):
    """(Not for ord=0: scaling does not change the count of nonzeros, so every step scales again.)"""
    module = lambda: tz.m.ClipNorm(max_norm, ord=ord, dim=dim, inverse_dims=inverse_dims)  # noqa: E731
    once = tz.apply_transform(module(), ts)
    twice = tz.apply_transform(module(), once)
    for a, b in zip(once, twice):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=0)


@SETTINGS
@given(ts=tensors_st, value=st.floats(0, 1e3))
def test_clip_value_bounds_and_idempotence(ts, value):
    out = tz.apply_transform(tz.m.ClipValue(value), ts)
    for t, o in zip(ts, out):
        assert (o.abs() <= value).all()
        inside = t.abs() <= value
        assert torch.equal(o[inside], t[inside])
        assert torch.equal(o[~inside], torch.sign(t[~inside]) * value)
    twice = tz.apply_transform(tz.m.ClipValue(value), out)
    for a, b in zip(out, twice):
        assert torch.equal(a, b)


# ============================================================================ Normalize / Centralize
# positively homogeneous ords: u * v/n has norm v (the signed "sum" too, where sum > 1e-12)
NORMALIZE_ORDS = [2, 1, 3, 0.5, math.inf, "mad", "std", "sum", "l1", "linf"]


@SETTINGS
@given(
    ts=tensors_st,
    norm_value=st.floats(1e-3, 1e3),
    ord=st.sampled_from(NORMALIZE_ORDS),
    dim=dim_st,
    inverse_dims=st.booleans(),
    min_size=st.integers(1, 6),
)
def test_normalize_sets_the_norm(ts, norm_value, ord, dim, inverse_dims, min_size):
    out = tz.apply_transform(tz.m.Normalize(norm_value, ord=ord, dim=dim, inverse_dims=inverse_dims, min_size=min_size), ts)
    for n_in, n_out in zip(group_norms(ts, ord, dim, inverse_dims, min_size), group_norms(out, ord, dim, inverse_dims, min_size)):
        if n_in is None:
            continue
        big = n_in > 1e-12  # False for NaN too
        torch.testing.assert_close(n_out[big], torch.full_like(n_out[big], norm_value), rtol=1e-6, atol=0)
        torch.testing.assert_close(n_out[~big], n_in[~big], equal_nan=True)  # tiny/NaN norms: unchanged


@SETTINGS
@given(ts=tensors_st, norm_value=st.floats(1e-3, 1e3), ord=st.sampled_from(NORMALIZE_ORDS), dim=dim_st)
def test_normalize_is_idempotent(ts, norm_value, ord, dim):
    once = tz.apply_transform(tz.m.Normalize(norm_value, ord=ord, dim=dim), ts)
    twice = tz.apply_transform(tz.m.Normalize(norm_value, ord=ord, dim=dim), once)
    for a, b in zip(once, twice):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-300)


@SETTINGS
@given(ts=tensors_st, dim=dim_st, inverse_dims=st.booleans(), min_size=st.integers(1, 6))
def test_centralize_zero_mean(ts, dim, inverse_dims, min_size):
    out = tz.apply_transform(tz.m.Centralize(dim=dim, inverse_dims=inverse_dims, min_size=min_size), ts)
    scale = max(t.abs().max().item() for t in ts) + 1e-300
    if dim == "global":
        mean = torch.cat([o.reshape(-1) for o in out]).mean()
        assert abs(mean.item()) <= 1e-12 * scale
        return
    for t, o in zip(ts, out):
        dims = None if t.ndim == 0 else reduce_dims(t, dim, inverse_dims, min_size)
        if dims is None:
            assert torch.equal(o, t)
        else:
            assert (o.mean(dim=dims).abs() <= 1e-12 * scale).all()
            # only the mean is removed: differences within a group are kept
            torch.testing.assert_close(o - o.mean(dim=dims, keepdim=True), t - t.mean(dim=dims, keepdim=True), rtol=1e-12, atol=1e-12 * scale)


# ============================================================================ independence of other params
def _ema(cls: type) -> Callable[[Any], tz.Module]:
    return lambda d: cls(d.draw(st.sampled_from([0.5, 0.9])), ord=d.draw(st.sampled_from([2, 1, math.inf, "mad"])),
                         max_ema_growth=d.draw(st.sampled_from([None, 1.5])), ema_init=d.draw(st.sampled_from(["zeros", "update"])))


def _norm_groups(d: Any) -> dict[str, Any]:
    return dict(dim=d.draw(per_tensor_dim_st), inverse_dims=d.draw(st.booleans()), min_size=d.draw(st.integers(1, 6)))


# a per-tensor module, with settings drawn by hypothesis (``d`` is ``st.data()``)
PER_TENSOR_MODULES: dict[str, Callable[[Any], tz.Module]] = {
    "ClipValue": lambda d: tz.m.ClipValue(d.draw(st.floats(0, 10))),
    "ClipNorm": lambda d: tz.m.ClipNorm(d.draw(st.floats(1e-2, 10)), ord=d.draw(st.sampled_from(CLIP_ORDS)), **_norm_groups(d)),
    "Normalize": lambda d: tz.m.Normalize(d.draw(st.floats(1e-2, 10)), ord=d.draw(st.sampled_from(CLIP_ORDS)), **_norm_groups(d)),
    "Centralize": lambda d: tz.m.Centralize(**_norm_groups(d)),
    "ClipNormByEMA": _ema(tz.m.ClipNormByEMA),
    "NormalizeByEMA": _ema(tz.m.NormalizeByEMA),
    "ClipValueByEMA": lambda d: tz.m.ClipValueByEMA(d.draw(st.sampled_from([0.5, 0.9])), ema_init=d.draw(st.sampled_from(["zeros", "update"]))),
    "ClipValueGrowth": lambda d: tz.m.ClipValueGrowth(add=d.draw(st.sampled_from([None, 0.1])), mul=d.draw(st.sampled_from([None, 1.5])),
                                                     min_value=d.draw(st.sampled_from([None, 1e-4])), max_decay=d.draw(st.sampled_from([None, 2]))),
    "ClipNormGrowth": lambda d: tz.m.ClipNormGrowth(add=d.draw(st.sampled_from([None, 0.1])), mul=d.draw(st.sampled_from([None, 1.5])),
                                                   ord=d.draw(st.sampled_from([2, 1, math.inf])), parameterwise=True),
}


@pytest.mark.parametrize("name", list(PER_TENSOR_MODULES))
@SETTINGS
@given(data=st.data())
def test_result_does_not_depend_on_other_params(name, data):
    """The output for one tensor, over 3 steps, is bitwise the same alone and among other tensors
    of other shapes at any position (the old implementation chose the dims of every tensor from the
    first one's shape)."""
    make = PER_TENSOR_MODULES[name]
    module_a = make(data)
    shape = data.draw(shape_st, label="shape")
    mine = [data.draw(tensor_st(shape), label=f"mine{k}") for k in range(3)]
    other_shapes = data.draw(st.lists(shape_st, min_size=1, max_size=4), label="other_shapes")
    others = [[data.draw(tensor_st(s)) for s in other_shapes] for _ in range(3)]
    pos = data.draw(st.integers(0, len(other_shapes)), label="position")

    module_b = copy.deepcopy(module_a)  # same settings, no state yet

    p_alone = [torch.zeros(shape, dtype=D)]
    p_mixed = [torch.zeros(s, dtype=D) for s in other_shapes]
    p_mixed.insert(pos, torch.zeros(shape, dtype=D))
    for k in range(3):
        alone = tz.apply_transform(module_a, [mine[k]], params=p_alone)[0]
        mixed_in = list(others[k])
        mixed_in.insert(pos, mine[k])
        mixed = tz.apply_transform(module_b, mixed_in, params=p_mixed)[pos]
        assert torch.equal(alone, mixed) or (alone.isnan().all() and mixed.isnan().all()), f"step {k}"


PERMUTATION_CASES = [
    pytest.param(lambda: tz.m.ClipNorm(0.5, dim=0, inverse_dims=True), id="ClipNorm-dim0-inverse"),
    pytest.param(lambda: tz.m.ClipNorm(0.5, ord="mad", dim=(1, 2), min_size=3), id="ClipNorm-mad-dims12"),
    pytest.param(lambda: tz.m.Normalize(2.0, ord=math.inf, dim=-1), id="Normalize-inf-dim-1"),
    pytest.param(lambda: tz.m.Centralize(dim=0, inverse_dims=True), id="Centralize-gc"),
    pytest.param(lambda: tz.m.ClipValue(0.3), id="ClipValue"),
    pytest.param(lambda: tz.m.ClipNormByEMA(0.8, ord=1), id="ClipNormByEMA"),
    pytest.param(lambda: tz.m.NormalizeByEMA(0.8, ema_init="update"), id="NormalizeByEMA"),
    pytest.param(lambda: tz.m.ClipValueByEMA(0.8), id="ClipValueByEMA"),
    pytest.param(lambda: tz.m.ClipValueGrowth(add=0.1), id="ClipValueGrowth"),
    pytest.param(lambda: tz.m.ClipNormGrowth(mul=1.2), id="ClipNormGrowth"),
]


@pytest.mark.parametrize("make", PERMUTATION_CASES)
def test_modular_param_order_does_not_matter(make):
    """Through ``Modular`` (per-tensor modules): reversed and shuffled parameter lists with extra
    unrelated parameters give bitwise the same parameters."""
    shapes = [(), (5,), (3, 4), (4, 3, 2, 2), (2, 1, 3), (7,)]
    g = torch.Generator().manual_seed(0)
    stream = [[torch.randn(s, generator=g, dtype=D) * 10 ** (2 * torch.rand((), generator=g).item() - 1) for s in shapes] for _ in range(5)]
    orders = [list(range(6)), list(reversed(range(6))), [3, 0, 5, 1, 4, 2], [2, 3]]
    results = []
    for order in orders:
        params = {i: torch.nn.Parameter(torch.zeros(shapes[i], dtype=D)) for i in order}
        opt = tz.Modular([params[i] for i in order], make(), tz.m.LR(0.1))
        for grads in stream:
            for i in order:
                params[i].grad = grads[i].clone()
            opt.step()
        results.append(params)
    for params in results[1:]:
        for i, p in params.items():
            assert torch.equal(p, results[0][i]), f"param {i} of shape {shapes[i]}"


# ============================================================================ all-zero input: never NaN
ZERO_CASES = [
    pytest.param(lambda: tz.m.ClipValue(1.0), id="ClipValue"),
    *[pytest.param(lambda o=o, d=d: tz.m.ClipNorm(1.0, ord=o, dim=d), id=f"ClipNorm-ord={o}-dim={d}")
      for o in (2, 1, math.inf, 0, "mad", "std", "var", "sum") for d in (None, 0, "global")],
    *[pytest.param(lambda o=o, d=d: tz.m.Normalize(1.0, ord=o, dim=d), id=f"Normalize-ord={o}-dim={d}")
      for o in (2, 1, math.inf, 0, "mad", "std", "var", "sum") for d in (None, 0, "global")],
    pytest.param(lambda: tz.m.Centralize(), id="Centralize"),
    pytest.param(lambda: tz.m.Centralize(dim="global"), id="Centralize-global"),
    *[pytest.param(lambda c=c, tw=tw, g=g, i=i: c(ord=2, tensorwise=tw, max_ema_growth=g, ema_init=i),
                   id=f"{c.__name__}-tensorwise={tw}-max_ema_growth={g}-ema_init={i}")
      for c in (tz.m.ClipNormByEMA, tz.m.NormalizeByEMA) for tw in (True, False) for g in (None, 1.5) for i in ("zeros", "update")],
    pytest.param(lambda: tz.m.ClipNormByEMA(ord="mad", tensorwise=False), id="ClipNormByEMA-mad-global"),
    pytest.param(lambda: tz.m.NormalizeByEMA(ord=math.inf), id="NormalizeByEMA-inf"),
    pytest.param(lambda: tz.m.ClipValueByEMA(), id="ClipValueByEMA"),
    pytest.param(lambda: tz.m.ClipValueByEMA(ema_init="update", ema_tfm=tz.m.LR(2.0)), id="ClipValueByEMA-ema_tfm"),
    *[pytest.param(lambda a=a, m=m, mv=mv, md=md: tz.m.ClipValueGrowth(add=a, mul=m, min_value=mv, max_decay=md),
                   id=f"ClipValueGrowth-add={a}-mul={m}-min_value={mv}-max_decay={md}")
      for a in (None, 0.1) for m in (None, 1.5) for mv in (None, 1e-4) for md in (None, 2)],
    *[pytest.param(lambda a=a, m=m, mv=mv, pw=pw: tz.m.ClipNormGrowth(add=a, mul=m, min_value=mv, parameterwise=pw),
                   id=f"ClipNormGrowth-add={a}-mul={m}-min_value={mv}-parameterwise={pw}")
      for a in (None, 0.1) for m in (None, 1.5) for mv in (None, 1e-4) for pw in (True, False)],
]


@pytest.mark.parametrize("make", ZERO_CASES)
def test_all_zero_input_never_gives_nan(make):
    shapes = [(), (5,), (3, 4), (4, 3, 2, 2)]
    params = [torch.nn.Parameter(torch.zeros(s, dtype=D)) for s in shapes]
    opt = tz.Modular(params, make())
    for _ in range(4):
        for p in params:
            p.grad = torch.zeros_like(p)
        opt.step()
        for p in params:
            assert torch.isfinite(p).all()
            assert (p == 0).all()  # nothing to clip: the update stays zero
