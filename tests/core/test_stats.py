"""opt.stats(): what each clipping module measured and did, as a flat dict of 0-dim tensors."""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from conftest import make_params, set_grads


def _one_step(*modules, full_stats=False, fused=None):
    params = make_params([(4, 3), (3,)], dtype=torch.float32)
    opt = tz.Modular(params, *modules, full_stats=full_stats, fused=fused)
    set_grads(params, 0)
    grads = [p.grad.clone() for p in params]
    opt.step()
    return opt, grads


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "general"])
def test_global_clipnorm_stats_match_torch(fused):
    opt, grads = _one_step(tz.m.ClipNorm(0.5, dim="global"), tz.m.Adam(), tz.m.LR(1e-2), fused=fused)
    stats = opt.stats()
    total = torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in grads]))
    torch.testing.assert_close(stats["ClipNorm/norm"], total)
    torch.testing.assert_close(stats["ClipNorm/factor"], 0.5 / total)
    assert stats["ClipNorm/clipped"].item() == 1.0
    assert all(v.ndim == 0 for v in stats.values())


def test_per_tensor_stats():
    opt, grads = _one_step(tz.m.ClipNorm(1.0), tz.m.LR(1e-2))
    norms = torch.stack([g.norm() for g in grads])
    s = opt.stats()
    torch.testing.assert_close(s["ClipNorm/norm_max"], norms.max())
    torch.testing.assert_close(s["ClipNorm/norm_mean"], norms.mean())
    torch.testing.assert_close(s["ClipNorm/clip_frac"], (norms > 1).float().mean())
    torch.testing.assert_close(s["ClipNorm/factor_min"], (1 / norms).clamp(max=1).min())


def test_duplicate_module_names_get_paths():
    opt, _ = _one_step(tz.m.ClipNorm(1.0, dim="global"), tz.m.Adam(), tz.m.ClipNorm(0.1, dim="global"), tz.m.LR(1e-2))
    keys = set(opt.stats())
    assert {"ClipNorm.0/norm", "ClipNorm.2/norm"} <= keys


def test_ema_and_growth_stats():
    opt, grads = _one_step(tz.m.ClipNormByEMA(tensorwise=False), tz.m.ClipNormGrowth(parameterwise=False), tz.m.LR(1e-2))
    s = opt.stats()
    total = torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in grads]))
    torch.testing.assert_close(s["ClipNormByEMA/norm"], total)
    assert {"ClipNormByEMA/factor", "ClipNormByEMA/ema_norm", "ClipNormGrowth/norm", "ClipNormGrowth/factor"} <= set(s)


def test_elementwise_stats_only_with_full_stats():
    opt, _ = _one_step(tz.m.ClipValue(0.5), tz.m.LR(1e-2))
    assert opt.stats() == {}
    opt, grads = _one_step(tz.m.ClipValue(0.5), tz.m.LR(1e-2), full_stats=True)
    s = opt.stats()
    expected = torch.tensor([float((g.abs() > 0.5).any()) for g in grads]).mean()
    torch.testing.assert_close(s["ClipValue/clip_frac"], expected)


def test_stats_are_cleared_when_a_module_does_not_run():
    params = make_params([(3,)], dtype=torch.float32)
    opt = tz.Modular(params, tz.m.ClipNorm(1.0, dim="global"), tz.m.LR(1e-2))
    set_grads(params, 0)
    opt.step()
    assert opt.stats()
    params[0].grad = None
    opt.step()
    assert opt.stats()  # no gradients: the step returns early, the last stats stay
    set_grads(params, 1)
    opt.step()
    assert "ClipNorm/norm" in opt.stats()
