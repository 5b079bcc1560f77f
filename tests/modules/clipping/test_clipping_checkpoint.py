"""Checkpoint round trip of the stateful clipping modules.

``opt.state_dict()`` -> ``torch.save`` -> ``torch.load(weights_only=True)`` -> NEW parameters and a
NEW ``Modular`` built from new module instances -> ``load_state_dict`` -> the resumed run is bitwise
identical to an uninterrupted one.
"""

from __future__ import annotations

import math

import pytest
import torch

import torchzero as tz

D = torch.float64
SHAPES = [(), (5,), (3, 4), (4, 3, 2, 2)]
STEPS, SPLIT = 10, 5

m = tz.m
CASES = [
    pytest.param(lambda: [m.ClipNormByEMA(0.9)], id="ClipNormByEMA"),
    pytest.param(lambda: [m.ClipNormByEMA(0.9, ord=1, tensorwise=False, ema_init="update")], id="ClipNormByEMA-global"),
    pytest.param(lambda: [m.ClipNormByEMA(0.9, inner=m.Adam(), target="grad")], id="ClipNormByEMA-inner=Adam-grad"),
    pytest.param(lambda: [m.NormalizeByEMA(0.9, max_ema_growth=1.2)], id="NormalizeByEMA"),
    pytest.param(lambda: [m.NormalizeByEMA(0.8, ord=math.inf, tensorwise=False, inner=m.Adam())], id="NormalizeByEMA-global-inner=Adam"),
    pytest.param(lambda: [m.ClipValueByEMA(0.9, ema_tfm=m.LR(2.0))], id="ClipValueByEMA-ema_tfm"),
    pytest.param(lambda: [m.ClipValueByEMA(0.9, ema_init="update", ema_tfm=[m.ClipNormGrowth()], inner=[m.ClipValueGrowth(), m.Adam()])],
                 id="ClipValueByEMA-stateful-ema_tfm-and-inner"),
    pytest.param(lambda: [m.ClipValueGrowth(add=0.1)], id="ClipValueGrowth"),
    pytest.param(lambda: [m.ClipValueGrowth(min_value=None, max_decay=None)], id="ClipValueGrowth-no-decay"),
    pytest.param(lambda: [m.ClipNormGrowth()], id="ClipNormGrowth"),
    pytest.param(lambda: [m.ClipNormGrowth(add=0.5, mul=None, ord=math.inf, parameterwise=False)], id="ClipNormGrowth-global"),
    pytest.param(lambda: [m.ClipValueGrowth(), m.ClipNormByEMA(0.9), m.Adam(), m.ClipNormGrowth(parameterwise=False), m.ClipValueByEMA(0.5)],
                 id="all-in-a-chain"),
]


def grads_for(step: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    scale = 10 ** (2 * torch.rand((), generator=g).item() - 1)
    return [torch.randn(s, generator=g, dtype=D) * scale for s in SHAPES]


def new_params(values: list[torch.Tensor]) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(v.detach().clone()) for v in values]


def run(opt: tz.Modular, params: list[torch.nn.Parameter], steps: range) -> None:
    for k in steps:
        for p, g in zip(params, grads_for(k)):
            p.grad = g
        opt.step()


@pytest.mark.parametrize("make", CASES)
def test_checkpoint_round_trip_is_bitwise_identical(make, tmp_path):
    init = [torch.randn(s, generator=torch.Generator().manual_seed(7), dtype=D) for s in SHAPES]

    # uninterrupted
    ref_params = new_params(init)
    ref_opt = tz.Modular(ref_params, make(), m.LR(0.1))
    run(ref_opt, ref_params, range(STEPS))

    # interrupted after SPLIT steps
    params = new_params(init)
    opt = tz.Modular(params, make(), m.LR(0.1))
    run(opt, params, range(SPLIT))
    path = tmp_path / "opt.pt"
    torch.save(opt.state_dict(), path)
    values = [p.detach().clone() for p in params]
    del opt, params

    loaded = torch.load(path, weights_only=True)
    assert loaded["state"], "no per-parameter state was saved"
    resumed_params = new_params(values)
    resumed = tz.Modular(resumed_params, make(), m.LR(0.1))
    resumed.load_state_dict(loaded)
    run(resumed, resumed_params, range(SPLIT, STEPS))

    for i, (a, b) in enumerate(zip(ref_params, resumed_params)):
        assert torch.equal(a, b), f"param {i} of shape {SHAPES[i]} differs after resuming"

    # the state matters: resuming WITHOUT it gives a different trajectory (so the test is not vacuous)
    fresh_params = new_params(values)
    run(tz.Modular(fresh_params, make(), m.LR(0.1)), fresh_params, range(SPLIT, STEPS))
    assert any(not torch.equal(a, b) for a, b in zip(ref_params, fresh_params))


@pytest.mark.parametrize("make", CASES)
def test_state_dict_survives_a_second_round_trip(make, tmp_path):
    """Loading and saving again gives the same tensors (nothing lost or re-keyed)."""
    params = new_params([torch.ones(s, dtype=D) for s in SHAPES])
    opt = tz.Modular(params, make(), m.LR(0.1))
    run(opt, params, range(3))
    torch.save(opt.state_dict(), tmp_path / "a.pt")
    first = torch.load(tmp_path / "a.pt", weights_only=True)
    params2 = new_params([p for p in params])
    opt2 = tz.Modular(params2, make(), m.LR(0.1))
    opt2.load_state_dict(first)
    torch.save(opt2.state_dict(), tmp_path / "b.pt")
    second = torch.load(tmp_path / "b.pt", weights_only=True)
    assert_same(first, second)


def assert_same(a, b, path: str = "state_dict") -> None:
    assert type(a) is type(b), path
    if isinstance(a, dict):
        assert a.keys() == b.keys(), f"{path}: keys {sorted(map(str, a))} != {sorted(map(str, b))}"
        for k in a:
            assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), path
    else:
        assert a == b or (a != a and b != b), f"{path}: {a!r} != {b!r}"
