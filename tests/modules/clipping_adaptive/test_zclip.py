"""ZClip against the reference written from Kumar et al. (2025), on the spike stream."""
from __future__ import annotations

import math

import pytest
import torch

import torchzero as tz
from aclip_helpers import D, Record, assert_bitwise, assert_lists_close, params_like, roundtrip, run_modular, snapshot
from ref_adaptive_clipping import RefZClip, global_norm, spike_stream

CONFIGS = {
    "defaults-nocap": dict(max_grad_norm=None),
    "defaults": dict(),  # max_grad_norm=1.0: the stream's norms are larger, so the cap is active
    "cap50": dict(max_grad_norm=50.0),
    "mean": dict(max_grad_norm=None, clip_option="mean"),
    "percentile": dict(max_grad_norm=None, mode="percentile", z_thresh=1.5),
    "clip_factor0.7": dict(max_grad_norm=None, clip_factor=0.7),
    "clip_factor1.5": dict(max_grad_norm=None, clip_factor=1.5),  # threshold may exceed the norm
    "skip-stats": dict(max_grad_norm=None, skip_update_on_spike=True, z_thresh=1.0),
    "fast-alpha-warmup3": dict(max_grad_norm=30.0, alpha=0.5, warmup_steps=3, z_thresh=1.2, eps=0.1),
}


@pytest.mark.parametrize("kw", list(CONFIGS.values()), ids=list(CONFIGS))
@pytest.mark.parametrize("target", ["update", "grad"])
def test_matches_reference_on_spike_stream(kw, target):
    stream, _ = spike_stream(150)
    params = params_like(stream[0])
    clip = tz.m.ZClip(**kw, target=target)
    rec = Record()
    opt = tz.Modular(params, clip, rec, tz.m.LR(0.0))
    ref = RefZClip(**kw)
    for t, ts in enumerate(stream):
        for p, x in zip(params, ts):
            p.grad = x.clone()
        opt.step()
        expected = ref.step(ts)
        assert_lists_close(rec.seen[-1], expected, rtol=1e-10, msg=f"step {t}")
        if target == "grad":
            assert_lists_close([p.grad for p in params], expected, rtol=1e-10, msg=f"p.grad, step {t}")
        st = clip.state[params[0]]
        if ref.mean is not None:  # the same statistics, so the same thresholds
            assert st["mean"].item() == pytest.approx(ref.mean, rel=1e-10), t
            assert st["var"].item() == pytest.approx(ref.var, rel=1e-9), t
    assert sum(ref.spikes) > 0


def test_catches_norm_spikes_and_leaves_normal_steps():
    stream, spikes = spike_stream(150)
    out = run_modular([tz.m.ZClip(max_grad_norm=None)], stream)
    ref = RefZClip(max_grad_norm=None)
    for ts in stream:
        ref.step(ts)
    norm_spikes = spikes[::2]
    assert all(ref.spikes[t] for t in norm_spikes)
    for t in norm_spikes:  # clipped to about the running mean
        assert global_norm(out[t]) < 0.1 * global_norm(stream[t])
    for t, (ts, o) in enumerate(zip(stream, out)):
        if not ref.spikes[t]:
            assert_lists_close(o, ts, rtol=0, atol=0)


def test_warmup_clips_at_max_grad_norm_and_initialises_from_collected_norms():
    stream, _ = spike_stream(6)
    params = params_like(stream[0])
    clip = tz.m.ZClip(max_grad_norm=2.0, warmup_steps=4)
    out = run_modular([clip], stream[:4], params)
    norms = [global_norm(ts) for ts in stream[:4]]
    for o, n in zip(out, norms):
        assert global_norm(o) == pytest.approx(min(n, 2.0), rel=1e-12)
    st = clip.state[params[0]]
    mean = sum(norms) / 4
    assert st["mean"].item() == pytest.approx(mean, rel=1e-12)
    assert st["var"].item() == pytest.approx(sum((x - mean) ** 2 for x in norms) / 4, rel=1e-10)
    assert "warmup_norms" not in st and st["step"] == 4


def test_param_groups_have_their_own_statistics():
    stream, _ = spike_stream(80)
    params = params_like(stream[0])

    def groups(ps):
        return [{"params": ps[:2], "z_thresh": 1.0}, {"params": ps[2:]}]

    out = run_modular([tz.m.ZClip(max_grad_norm=None, warmup_steps=5)], stream, params, groups)
    ra, rb = RefZClip(max_grad_norm=None, warmup_steps=5, z_thresh=1.0), RefZClip(max_grad_norm=None, warmup_steps=5)
    for ts, o in zip(stream, out):
        assert_lists_close(o, ra.step(ts[:2]) + rb.step(ts[2:]))
    assert sum(ra.spikes) > 0 and sum(rb.spikes) > 0


@pytest.mark.parametrize("at", [3, 40], ids=["in-warmup", "after-warmup"])
def test_state_dict_round_trip_is_bitwise(at):
    stream, _ = spike_stream(70)
    params = params_like(stream[0])
    params2 = [torch.nn.Parameter(p.detach().clone()) for p in params]

    def make(ps):
        return tz.Modular(ps, tz.m.Adam(), tz.m.ZClip(warmup_steps=10, max_grad_norm=None), tz.m.LR(1e-2))

    a, b = make(params), make(params2)
    for t, ts in enumerate(stream):
        if t == at:
            b.load_state_dict(roundtrip(a.state_dict()))
            with torch.no_grad():
                for p, q in zip(params, params2):
                    q.copy_(p)
        for p, q, x in zip(params, params2, ts):
            p.grad, q.grad = x.clone(), x.clone()
        a.step()
        if t >= at:
            b.step()
    assert_bitwise(snapshot(a), snapshot(b))


def test_non_finite_norm_leaves_statistics():
    w = [torch.zeros(2, dtype=D)]
    clip = tz.m.ZClip(max_grad_norm=None, warmup_steps=2)
    for g in ([3.0, 4.0], [6.0, 8.0], [1.0, 1.0]):
        tz.apply_transform(clip, [torch.tensor(g, dtype=D)], params=w)
    before = dict(clip.state[w[0]])
    tz.apply_transform(clip, [torch.tensor([math.inf, 1.0], dtype=D)], params=w)
    after = clip.state[w[0]]
    assert torch.equal(after["mean"], before["mean"]) and torch.equal(after["var"], before["var"])
    assert after["step"] == before["step"] + 1
