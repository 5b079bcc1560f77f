"""Sanity tests of the clipping references against hand-computed numbers."""

import math

import pytest
import torch
from torch import Tensor

from .clipping import (
    RefClipNormByEMA,
    RefClipNormGrowth,
    RefClipValueByEMA,
    RefClipValueGrowth,
    RefNormalizeByEMA,
    reduce_dims,
    ref_centralize,
    ref_clip_grad_norm,
    ref_clip_grad_value,
    ref_clip_norm,
    ref_clip_value,
    ref_global_norm,
    ref_norm,
    ref_normalize,
    ref_normalize_grads,
    validate_ord,
)

D = torch.float64


def T(*values: float) -> Tensor:
    return torch.tensor(values, dtype=D)


def close(a: Tensor, b: Tensor | list[float] | float) -> None:
    torch.testing.assert_close(a, torch.as_tensor(b, dtype=a.dtype).expand_as(a), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------- norms
@pytest.mark.parametrize("p", [0, 1, 2, 3, 4, 0.5, -1, math.inf, -math.inf])
@pytest.mark.parametrize("dims", [None, (0,), (1,), (0, 2), (1, 2)])
def test_ref_norm_matches_vector_norm(p: float, dims: tuple[int, ...] | None) -> None:
    x = torch.randn(3, 4, 5, dtype=D, generator=torch.Generator().manual_seed(0))
    x[0, 0, 0] = 0.0
    expected = torch.linalg.vector_norm(x, ord=p, dim=dims, keepdim=True)
    torch.testing.assert_close(ref_norm(x, p, dims), expected.expand(ref_norm(x, p, dims).shape))


def test_ref_norm_strings() -> None:
    x = T(1, -2, 3, -6)
    close(ref_norm(x, "mad", None), 3.0)
    close(ref_norm(x, "sum", None), -4.0)
    # mean -1, squared deviations 4+1+16+25 = 46, unbiased var 46/3
    close(ref_norm(x, "var", None), 46 / 3)
    close(ref_norm(x, "std", None), math.sqrt(46 / 3))
    close(ref_norm(x, "l1", None), 12.0)
    close(ref_norm(x, "linf", None), 6.0)
    close(ref_norm(x, "l0", None), 4.0)
    close(ref_norm(x, "l2", None), math.sqrt(50))
    assert ref_norm(x, 2, None).shape == (1,)
    m = torch.tensor([[3.0, 4.0], [6.0, 8.0]], dtype=D)
    close(ref_norm(m, 2, (1,)), [[5.0], [10.0]])
    assert ref_norm(torch.tensor(-2.0, dtype=D), 2, (0,)).shape == ()
    close(ref_norm(torch.tensor(-2.0, dtype=D), 2, None), 2.0)


@pytest.mark.parametrize("bad", ["l5", "fro", "nuc", "L2", None, True, [2]])
def test_invalid_ord(bad: object) -> None:
    with pytest.raises(ValueError, match="mad"):
        validate_ord(bad)


def test_global_norm() -> None:
    close(ref_global_norm([T(3, 0), torch.tensor(4.0, dtype=D)], 2), 5.0)
    close(ref_global_norm([T(1, -2), T(3, -6)], "mad"), 3.0)
    close(ref_global_norm([T(1, -2), T(3, -6)], "sum"), -4.0)
    close(ref_global_norm([T(1, -2), T(3, -6)], math.inf), 6.0)


# ---------------------------------------------------------------------------- reduce_dims
def test_reduce_dims() -> None:
    t = torch.zeros(2, 3, 4)
    assert reduce_dims(t, None, False, 1) == (0, 1, 2)
    assert reduce_dims(t, None, True, 1) is None
    assert reduce_dims(t, 0, False, 1) == (0,)
    assert reduce_dims(t, 0, True, 1) == (1, 2)
    assert reduce_dims(t, -1, False, 1) == (2,)
    assert reduce_dims(t, (0, -3), False, 1) == (0,)
    assert reduce_dims(t, (5, -4), False, 1) is None
    assert reduce_dims(t, (1, 5), True, 1) == (0, 2)
    assert reduce_dims(t, 0, False, 3) is None  # size 2 < 3
    assert reduce_dims(t, 0, True, 12) == (1, 2)
    assert reduce_dims(t, 0, True, 13) is None
    # 0-dim tensors are shape (1,)
    s = torch.tensor(1.0)
    assert reduce_dims(s, None, False, 1) == (0,)
    assert reduce_dims(s, -1, False, 1) == (0,)
    assert reduce_dims(s, None, False, 2) is None
    assert reduce_dims(s, 1, False, 1) is None
    # dims missing from a 1-D tensor are ignored: the choice is per tensor
    assert reduce_dims(torch.zeros(5), 1, False, 1) is None
    assert reduce_dims(torch.zeros(5), 1, True, 1) == (0,)


# ---------------------------------------------------------------------------- stateless
def test_clip_norm() -> None:
    x = T(3, 4)
    (y,) = ref_clip_norm([x], 1)
    close(y, [0.6, 0.8])
    close(x, [3, 4])  # input untouched
    close(ref_clip_norm([x], 10)[0], [3, 4])
    a, b = ref_clip_norm([T(3, 0), T(4)], 1, dim="global")
    close(a, [0.6, 0])
    close(b, [0.8])
    # per-tensor max_norm
    a, b = ref_clip_norm([T(3, 4), T(6, 8)], [1, 5])
    close(a, [0.6, 0.8])
    close(b, [3, 4])
    # per row
    (m,) = ref_clip_norm([torch.tensor([[3.0, 4.0], [0.3, 0.4]], dtype=D)], 1, dim=0, inverse_dims=True)
    close(m, [[0.6, 0.8], [0.3, 0.4]])
    # mad
    (y,) = ref_clip_norm([T(1, -2, 3, -6)], 1.5, ord="mad")
    close(y, [0.5, -1, 1.5, -3])
    # min_size leaves small tensors alone
    a, b = ref_clip_norm([T(30), T(3, 4)], 1, min_size=2)
    close(a, [30])
    close(b, [0.6, 0.8])


@pytest.mark.filterwarnings(r"ignore:std\(\):UserWarning")
def test_normalize() -> None:
    a, b = ref_normalize([T(3, 4), T(0.3, 0.4)], 2)
    close(a, [1.2, 1.6])
    close(b, [1.2, 1.6])
    (y,) = ref_normalize([T(1, -2, 3, -6)], 1, ord="mad")
    close(y, [1 / 3, -2 / 3, 1, -2])
    a, b = ref_normalize([T(3, 0), T(4)], [10, 99], dim="global")  # first value used for global
    close(a, [6, 0])
    close(b, [8])
    # zero norms: unchanged, never NaN
    a, b = ref_normalize([torch.zeros(3, dtype=D), torch.zeros((), dtype=D)], dim="global")
    close(a, 0.0)
    close(b, 0.0)
    (y,) = ref_normalize([T(1e-13, 0)])
    close(y, [1e-13, 0])
    # std of a single element is NaN: unchanged
    (y,) = ref_normalize([T(5)], ord="std")
    close(y, [5])


def test_centralize() -> None:
    x = torch.tensor([[1.0, 2.0, 6.0], [0.0, 4.0, 5.0]], dtype=D)
    (rows,) = ref_centralize([x], dim=0, inverse_dims=True)
    close(rows.mean(dim=1), [0, 0])
    close(rows, [[-2, -1, 3], [-3, 1, 2]])
    (cols,) = ref_centralize([x], dim=0)
    close(cols.mean(dim=0), [0, 0, 0])
    close(cols, [[0.5, -1, 0.5], [-0.5, 1, -0.5]])
    (full,) = ref_centralize([x])
    close(full, x - 3)
    s, v = ref_centralize([torch.tensor(5.0, dtype=D), T(1, 3)], min_size=1)
    close(s, 5.0)
    close(v, [-1, 1])
    (v,) = ref_centralize([T(7)])  # min_size=2 by default
    close(v, [7])
    s, v = ref_centralize([torch.tensor(5.0, dtype=D), T(1, 3)], dim="global")
    close(s, 2.0)
    close(v, [-2, 0])


def test_per_tensor_choice_ignores_other_tensors() -> None:
    vec, mat = T(3, 4), torch.tensor([[3.0, 4.0], [6.0, 8.0]], dtype=D)
    a = ref_clip_norm([vec, mat], 1, dim=1)
    b = ref_clip_norm([mat, vec], 1, dim=1)
    close(a[0], [3, 4])  # a 1-D tensor has no dim 1: unchanged
    close(a[1], [[0.6, 0.8], [0.6, 0.8]])
    close(b[0], a[1])
    close(b[1], a[0])


def test_clip_value() -> None:
    a, b = ref_clip_value([T(-3, 0.5, 2), T(-3, 0.5, 2)], [1, 0.25])
    close(a, [-1, 0.5, 1])
    close(b, [-0.25, 0.25, 0.25])
    a, b = ref_clip_grad_value([T(-3, 0.5), None], 1)
    close(a, [-1, 0.5])
    assert b is None


def test_clip_grad_norm() -> None:
    grads = [T(3, 4), None, T(0.3, 0.4), T(9)]
    new, norms = ref_clip_grad_norm(grads, 1, min_norm=1)
    assert isinstance(norms, list)
    close(new[0], [0.6, 0.8])
    assert new[1] is None and norms[1] is None
    close(new[2], [0.6, 0.8])  # scaled up to min_norm
    close(new[3], [9])  # one element < min_size=2
    assert norms[3] is None
    close(norms[0], [5.0])
    close(norms[2], [0.5])
    new, gnorm = ref_clip_grad_norm([T(3, 0), None, T(4)], 1, dim="global")
    assert isinstance(gnorm, Tensor) and gnorm.shape == ()
    close(gnorm, 5.0)
    close(new[0], [0.6, 0])
    close(new[2], [0.8])
    new, _ = ref_clip_grad_norm([T(0.3, 0.4)], None, min_norm=2)
    close(new[0], [1.2, 1.6])


def test_normalize_grads() -> None:
    new, norms = ref_normalize_grads([T(3, 4), T(0, 2)], 10)
    close(new[0], [6, 8])
    close(new[1], [0, 10])
    assert isinstance(norms, list)
    close(norms[1], [2.0])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- stateful
def test_clip_norm_growth() -> None:
    m = RefClipNormGrowth(mul=1.5, min_value=None, max_decay=2)
    x = T(3, 4)
    close(m.step([x])[0], [3, 4])  # first step unchanged, prev_norm = 5
    # n = 50 > 5 * 1.5: d = 50 / 7.5, norm becomes 7.5
    close(m.step([T(30, 40)])[0], [4.5, 6])
    assert m.prev_norm == pytest.approx([7.5])
    # n = 0.5: no clipping; 0.5 / 7.5 < 1/2 so prev_norm decays to 3.75
    close(m.step([T(0.3, 0.4)])[0], [0.3, 0.4])
    assert m.prev_norm == pytest.approx([3.75])
    # allowed norm is 3.75 * 1.5 = 5.625
    close(m.step([T(30, 40)])[0], [3 * 5.625 / 5, 4 * 5.625 / 5])

    m = RefClipNormGrowth(add=1, mul=None)
    m.step([T(3, 4)])
    close(m.step([T(30, 40)])[0], [3.6, 4.8])  # norm 6 = 5 + 1

    m = RefClipNormGrowth(mul=2, parameterwise=False)
    a, b = m.step([T(3, 0), T(4)])
    close(a, [3, 0])
    a, b = m.step([T(30, 0), T(40)])  # global norm 50 clipped to 10
    close(a, [6, 0])
    close(b, [8])

    m = RefClipNormGrowth(add=None, mul=None)
    m.step([T(1)])
    close(m.step([T(100)])[0], [100])


def test_clip_value_growth() -> None:
    m = RefClipValueGrowth(mul=2, min_value=None, max_decay=None)
    close(m.step([T(1, 2)])[0], [1, 2])
    close(m.step([T(3, -1)])[0], [2, -1])  # r = [3, 0.5]: first element divided by 1.5
    close(m.prev[0], [2, -1])  # type: ignore[index]

    m = RefClipValueGrowth(add=1, mul=None, max_decay=None)
    m.step([T(1, 2)])
    close(m.step([T(3, -1)])[0], [2, -1])  # g = [2, 0]: first element reduced by 1

    m = RefClipValueGrowth(mul=1.5, min_value=None, max_decay=2)
    m.step([T(1, 2)])
    close(m.step([T(0.1, 2)])[0], [0.1, 2])  # r = [0.1, 1]: prev becomes [1/2, 2]
    close(m.prev[0], [0.5, 2])  # type: ignore[index]
    close(m.step([T(1, 2)])[0], [0.75, 2])  # r = [2, 1]: 1 / (2 / 1.5)

    m = RefClipValueGrowth(mul=1.5, min_value=0.5, max_decay=None)
    m.step([T(0)])
    close(m.step([T(1)])[0], [0.75])  # pm = 0.5, r = 2


def test_clip_norm_by_ema() -> None:
    m = RefClipNormByEMA(beta=0.5, max_ema_growth=None)
    # ema = [1.5, 2], e = 2.5, d = 5 / 2.5 = 2
    close(m.step([T(3, 4)])[0], [1.5, 2])
    # ema = [0.75, 1.5], e = sqrt(2.8125) > norm(u) = 1: d = 1, unchanged
    close(m.step([T(0, 1)])[0], [0, 1])
    close(m.ema[0], [0.75, 1.5])  # type: ignore[index]

    n = RefNormalizeByEMA(beta=0.5, max_ema_growth=None)
    n.step([T(3, 4)])
    close(n.step([T(0, 1)])[0], [0, math.sqrt(2.8125)])  # norm set to e

    m = RefClipNormByEMA(beta=0.5, max_ema_growth=1.5)
    close(m.step([T(3, 4)])[0], [1.5, 2])  # e = 2.5 = prev
    # ema = [15.75, 21], e = 26.25 > 3.75 = allowed: ema scaled to norm 3.75, d = 50 / 3.75
    close(m.step([T(30, 40)])[0], [2.25, 3])
    close(m.ema[0], [2.25, 3])  # type: ignore[index]
    assert m.prev_e == pytest.approx([3.75])
    close(m.step([T(0, 0)])[0], [0, 0])

    # tensorwise: allowed is at least 1e-6 even when the previous EMA norm was 0
    m = RefClipNormByEMA(beta=0.5)
    close(m.step([T(0)])[0], [0])
    close(m.step([T(1)])[0], [1e-6])  # e = 0.5 limited to 1e-6, d = 1 / 1e-6
    close(m.ema[0], [1e-6])  # type: ignore[index]
    # global: no floor, the EMA stays at 0 and eps bounds the division
    m = RefClipNormByEMA(beta=0.5, tensorwise=False)
    m.step([T(0)])
    close(m.step([T(1)])[0], [1e-6])
    close(m.ema[0], [0])  # type: ignore[index]

    # ema_init="update": first-step ema = u, d = 1
    m = RefClipNormByEMA(beta=0.9, ema_init="update")
    close(m.step([T(3, 4)])[0], [3, 4])

    # global group and inner: steps 1-3 use u, step 4 divides inner(u)
    m = RefClipNormByEMA(beta=0.5, max_ema_growth=None, tensorwise=False, inner=lambda ts: [2 * t for t in ts])
    a, b = m.step([T(3, 0), T(4)])
    close(a, [3, 0])  # 2 * u / 2
    close(b, [4])


def test_clip_value_by_ema() -> None:
    m = RefClipValueByEMA(beta=0.5, ema_init="update")
    x = T(1, -4)
    close(m.step([x])[0], [1, -4])
    close(m.step([T(3, -1)])[0], [2, -1])  # ema = [2, 2.5]
    close(x, [1, -4])

    m = RefClipValueByEMA(beta=0.5, ema_tfm=lambda ts: [t.mul_(2) for t in ts])
    close(m.step([T(4, -4)])[0], [4, -4])  # ema = [2, 2], c = [4, 4]
    close(m.ema[0], [2, 2])  # type: ignore[index]  # the tfm works on a copy

    m = RefClipValueByEMA(beta=0.5, inner=lambda ts: [10 * t for t in ts])
    close(m.step([T(4, -1)])[0], [2, -0.5])  # c = [2, 0.5] from u, applied to 10 * u
