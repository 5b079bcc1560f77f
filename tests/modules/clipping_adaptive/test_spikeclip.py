"""SpikeClip against the reference written from SPAM (Huang et al., 2025), on the spike stream."""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from aclip_helpers import assert_bitwise, assert_lists_close, params_like, roundtrip, run_modular, snapshot
from ref_adaptive_clipping import RefSpamAdam, RefSpikeClip, spike_stream


@pytest.mark.parametrize(
    "kw",
    [dict(), dict(theta=50.0, beta=0.9, warmup=5), dict(theta=1.0, beta=0.5, warmup=0)],
    ids=["defaults", "theta50-beta0.9", "theta1-beta0.5-nowarmup"],
)
@pytest.mark.parametrize("target", ["update", "grad"])
def test_matches_reference_on_spike_stream(kw, target):
    stream, spikes = spike_stream(120)
    out = run_modular([tz.m.SpikeClip(**kw, target=target)], stream)
    ref = RefSpikeClip(**kw)
    for t, (ts, o) in enumerate(zip(stream, out)):
        assert_lists_close(o, ref.step(ts), rtol=1e-10, msg=f"step {t}")
    assert sum(ref.clipped) > 0


def test_element_spikes_are_clipped_to_the_bound():
    stream, spikes = spike_stream(120)
    out = run_modular([tz.m.SpikeClip(theta=100.0, beta=0.99, warmup=10)], stream)
    ref = RefSpikeClip(theta=100.0, beta=0.99, warmup=10)
    for ts in stream:
        ref.step(ts)
    element_spikes = spikes[1::2]
    assert all(ref.clipped[t] > 0 for t in element_spikes)
    for t in element_spikes:  # every spiked element came down by a lot
        biggest_in = max(x.abs().max().item() for x in stream[t])
        biggest_out = max(x.abs().max().item() for x in out[t])
        assert biggest_out < 0.2 * biggest_in


def test_nothing_is_clipped_during_warmup():
    stream, _ = spike_stream(8)
    stream = [[x * (1000.0 if t == 5 else 1.0) for x in ts] for t, ts in enumerate(stream)]
    out = run_modular([tz.m.SpikeClip(theta=1.0, warmup=6)], stream)
    for ts, o in zip(stream[:6], out[:6]):
        assert_lists_close(o, ts, rtol=0, atol=0)


def test_source_adam_is_spam_without_momentum_reset():
    stream, _ = spike_stream(120)
    params = params_like(stream[0])
    ref_params = [p.detach().clone() for p in params]
    adam = tz.m.Adam()
    opt = tz.Modular(params, tz.m.SpikeClip(theta=20.0, warmup=3, source=adam), adam, tz.m.LR(1e-2))
    ref = RefSpamAdam(1e-2, theta=20.0, warmup=3)
    for ts in stream:
        for p, x in zip(params, ts):
            p.grad = x.clone()
        opt.step()
        ref_params = ref.step(ref_params, ts)
    assert_lists_close([p.detach() for p in params], ref_params, rtol=1e-9, atol=1e-12)
    spike = opt.chain.modules[0]
    assert set(spike.state[params[0]]) == {"step"}  # no second moment of its own


def test_source_is_read_by_reference_and_survives_deepcopy():
    import copy

    stream, _ = spike_stream(10)
    params = params_like(stream[0])
    adam = tz.m.Adam()
    opt = tz.Modular(params, tz.m.SpikeClip(theta=20.0, warmup=3, source=adam, target="grad"), adam, tz.m.LR(1e-2))
    clone = copy.deepcopy(opt)
    assert clone.chain.modules[0].source is clone.chain.modules[1]
    cparams = [p for g in clone.param_groups for p in g["params"]]
    for ts in stream:
        for p, q, x in zip(params, cparams, ts):
            p.grad, q.grad = x.clone(), x.clone()
        opt.step()
        clone.step()
    assert_bitwise([p.detach() for p in params], [p.detach() for p in cparams])


def test_per_parameter_theta():
    stream, _ = spike_stream(40, shapes=[(6, 5), (7,)])
    params = params_like(stream[0])
    sc = tz.m.SpikeClip(theta=3.0, beta=0.9, warmup=2).set_param_groups([{"params": [params[1]], "theta": 1e6}])
    out = run_modular([sc], stream, params)
    ra, rb = RefSpikeClip(3.0, 0.9, 2), RefSpikeClip(1e6, 0.9, 2)
    for ts, o in zip(stream, out):
        assert_lists_close(o, ra.step(ts[:1]) + rb.step(ts[1:]))


def test_state_dict_round_trip_is_bitwise():
    stream, _ = spike_stream(60)
    params = params_like(stream[0])
    params2 = [torch.nn.Parameter(p.detach().clone()) for p in params]

    def make(ps):
        return tz.Modular(ps, tz.m.SpikeClip(theta=10.0, warmup=5, target="grad"), tz.m.Adam(), tz.m.LR(1e-2))

    a, b = make(params), make(params2)
    for t, ts in enumerate(stream):
        if t == 30:
            b.load_state_dict(roundtrip(a.state_dict()))
            with torch.no_grad():
                for p, q in zip(params, params2):
                    q.copy_(p)
        for p, q, x in zip(params, params2, ts):
            p.grad, q.grad = x.clone(), x.clone()
        a.step()
        if t >= 30:
            b.step()
    assert_bitwise(snapshot(a), snapshot(b))


def test_rejects_non_module_source():
    with pytest.raises(TypeError, match="SpikeClip.*source"):
        tz.m.SpikeClip(source=torch.optim.Adam)  # type: ignore[arg-type]
    assert "source=Adam" in repr(tz.m.SpikeClip(source=tz.m.Adam()))


def test_source_adam_must_keep_squares():
    params = params_like([torch.zeros(3)])
    adam = tz.m.Adam(pow=3)
    opt = tz.Modular(params, tz.m.SpikeClip(source=adam), adam, tz.m.LR(1e-2))
    params[0].grad = torch.ones(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="SpikeClip: source .* pow=3"):
        opt.step()
