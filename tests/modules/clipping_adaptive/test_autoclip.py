"""AutoClip against the reference written from Seetharaman et al. (2020), on the spike stream."""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from aclip_helpers import D, assert_bitwise, assert_lists_close, params_like, roundtrip, run_modular, snapshot
from ref_adaptive_clipping import RefAutoClip, global_norm, spike_stream


@pytest.mark.parametrize(
    "percentile, history, ref_history",
    [(10, 1000, None), (50, 1000, None), (0, 1000, None), (100, 1000, None), (10, 16, 16), (75, 1, 1)],
    ids=["p10-all", "p50-all", "p0", "p100", "p10-window16", "window1"],
)
@pytest.mark.parametrize("target", ["update", "grad"])
def test_matches_reference_on_spike_stream(percentile, history, ref_history, target):
    stream, spikes = spike_stream(120)
    out = run_modular([tz.m.AutoClip(percentile, history, target=target)], stream)
    ref = RefAutoClip(percentile, ref_history)
    for t, (ts, o) in enumerate(zip(stream, out)):
        assert_lists_close(o, ref.step(ts), rtol=1e-10, msg=f"step {t}")


def test_thresholds_and_spikes():
    # the clipped norm is exactly the reference threshold whenever the norm is above it
    stream, spikes = spike_stream(120)
    out = run_modular([tz.m.AutoClip(10)], stream)
    ref = RefAutoClip(10)
    for t, (ts, o) in enumerate(zip(stream, out)):
        ref.step(ts)
        n, thr = global_norm(ts), ref.thresholds[-1]
        assert global_norm(o) == pytest.approx(min(n, thr), rel=1e-10)
    # the norm spikes (even spike steps) are all brought down to the running 10th percentile
    norm_spikes = spikes[::2]
    for t in norm_spikes:
        assert global_norm(out[t]) < 0.1 * global_norm(stream[t])


def test_first_step_is_not_clipped():
    w = torch.zeros(3, dtype=D)
    g = torch.tensor([30.0, 40.0, 0.0], dtype=D)
    out = tz.apply_transform(tz.m.AutoClip(10), [g], params=[w])[0]
    assert torch.equal(out, g)


def test_history_is_a_bounded_ring_buffer():
    stream, _ = spike_stream(50)
    params = params_like(stream[0])
    clip = tz.m.AutoClip(10, history=8)
    run_modular([clip], stream, params)
    st = clip.state[params[0]]
    assert st["norm_history"].shape == (8,)
    assert st["count"] == 50 and st["step"] == 50
    # every parameter holds the same (shared, never written in place) buffer
    assert all(clip.state[p]["norm_history"] is st["norm_history"] for p in params)
    expected = torch.tensor([global_norm(ts) for ts in stream[-8:]], dtype=D)
    torch.testing.assert_close(torch.sort(st["norm_history"]).values, torch.sort(expected).values, rtol=1e-12, atol=0)


def test_changing_history_keeps_the_newest_norms():
    stream, _ = spike_stream(40)
    params = params_like(stream[0])
    clip = tz.m.AutoClip(30, history=10)
    opt = tz.Modular(params, clip, tz.m.LR(0.0))
    ref = RefAutoClip(30, 10)
    for t, ts in enumerate(stream):
        if t == 25:
            opt.param_groups[0]["history"] = 4  # a param-group key overrides the setting
            ref.history = 4
        for p, x in zip(params, ts):
            p.grad = x.clone()
        opt.step()
        ref.step(ts)
    assert clip.state[params[0]]["norm_history"].shape == (4,)
    assert_lists_close(list(clip.state[params[0]]["norm_history"].sort().values), list(torch.tensor(sorted(ref.norms[-4:]), dtype=D)))


def test_param_groups_have_their_own_norm_and_history():
    stream, _ = spike_stream(60)
    params = params_like(stream[0])

    def groups(ps):
        return [{"params": ps[:2]}, {"params": ps[2:], "percentile": 50}]

    out = run_modular([tz.m.AutoClip(10)], stream, params, groups)
    ra, rb = RefAutoClip(10), RefAutoClip(50)
    for ts, o in zip(stream, out):
        assert_lists_close(o, ra.step(ts[:2]) + rb.step(ts[2:]))


def test_missing_gradient_rejoins_with_the_newest_history():
    stream, _ = spike_stream(30)
    params = params_like(stream[0])
    clip = tz.m.AutoClip(20)
    opt = tz.Modular(params, clip, tz.m.LR(0.0))
    ref = RefAutoClip(20)
    for t, ts in enumerate(stream):
        missing = 1 if 5 <= t < 12 else None
        for i, (p, x) in enumerate(zip(params, ts)):
            p.grad = None if i == missing else x.clone()
        frozen = {k: v for k, v in clip.state[params[1]].items()} if missing is not None else None
        opt.step()
        ref.step([x for i, x in enumerate(ts) if i != missing])
        if frozen is not None:
            assert clip.state[params[1]] == frozen  # untouched while it has no gradient
    assert clip.state[params[1]]["step"] == 30
    assert clip.state[params[1]]["norm_history"] is clip.state[params[0]]["norm_history"]
    torch.testing.assert_close(clip.state[params[1]]["norm_history"][:30], torch.tensor(ref.norms, dtype=D))


def test_state_dict_round_trip_is_bitwise():
    stream, _ = spike_stream(60)
    params = params_like(stream[0])
    params2 = [torch.nn.Parameter(p.detach().clone()) for p in params]
    a = tz.Modular(params, tz.m.AutoClip(10, history=20), tz.m.Adam(), tz.m.LR(1e-2))
    b = tz.Modular(params2, tz.m.AutoClip(10, history=20), tz.m.Adam(), tz.m.LR(1e-2))
    for t, ts in enumerate(stream):
        if t == 33:  # after the ring buffer wrapped around
            b.load_state_dict(roundtrip(a.state_dict()))
            with torch.no_grad():
                for p, q in zip(params, params2):
                    q.copy_(p)
        for p, q, x in zip(params, params2, ts):
            p.grad, q.grad = x.clone(), x.clone()
        a.step()
        if t >= 33:
            b.step()
    assert_bitwise(snapshot(a), snapshot(b))


def test_non_finite_norm_does_not_poison_the_history():
    w = torch.zeros(2, dtype=D)
    clip = tz.m.AutoClip(50)
    for g in ([3.0, 4.0], [float("nan"), 1.0], [6.0, 8.0]):
        out = tz.apply_transform(clip, [torch.tensor(g, dtype=D)], params=[w])[0]
    # the NaN norm is ignored: the median of (5, 10) is 7.5
    torch.testing.assert_close(out.norm(), torch.tensor(7.5, dtype=D))
