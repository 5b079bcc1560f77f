"""AGC, AutoClip, ZClip and SpikeClip in any position of a chain, with both targets.

Each module is wrapped between two ``Record`` probes; whatever reaches it (the gradient, Adam's
update, a scaled update, Adam's first moment inside ``inner``) is fed to the reference, which
must produce what leaves it. Plus: one long chain of all of them through a checkpoint.
"""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from aclip_helpers import Record, assert_bitwise, assert_lists_close, params_like, roundtrip, snapshot
from ref_adaptive_clipping import RefAutoClip, RefSpikeClip, RefZClip, ref_agc, spike_stream


class _AGCRef:
    """Stateless AGC, with the parameters as they were when the module ran."""

    uses_params = True

    def step(self, ts, params):  # noqa: ANN001
        return ref_agc(ts, params, 0.005, 1e-3)


class _Stateful:
    uses_params = False

    def __init__(self, ref):  # noqa: ANN001
        self.ref = ref

    def step(self, ts, params):  # noqa: ANN001
        return self.ref.step(ts)


MODULES = {
    "AGC": (lambda target: tz.m.AGC(0.005, target=target), _AGCRef),
    "AutoClip": (lambda target: tz.m.AutoClip(20, history=16, target=target), lambda: _Stateful(RefAutoClip(20, 16))),
    "ZClip": (lambda target: tz.m.ZClip(0.5, 0.5, None, warmup_steps=5, target=target), lambda: _Stateful(RefZClip(0.5, 0.5, None, warmup_steps=5))),
    "SpikeClip": (lambda target: tz.m.SpikeClip(theta=4.0, beta=0.9, warmup=3, target=target), lambda: _Stateful(RefSpikeClip(4.0, 0.9, 3))),
}


def _positions(x, rin, rout):  # noqa: ANN001
    """name -> chain, with the module under test ``x`` between the probes ``rin`` and ``rout``."""
    return {
        "first": lambda: [rin, x, rout, tz.m.Adam(), tz.m.LR(1e-2)],
        "after-adam": lambda: [tz.m.Adam(), rin, x, rout, tz.m.LR(1e-2)],
        "after-lr": lambda: [tz.m.Adam(), tz.m.LR(1e-2), rin, x, rout],
        "adam-inner": lambda: [tz.m.Adam(inner=[rin, x, rout]), tz.m.LR(1e-2)],
        "nested-chain": lambda: [tz.m.ClipNorm(30.0), tz.m.Chain(rin, x, rout), tz.m.LR(1e-2)],
    }


@pytest.mark.parametrize("position", list(_positions(None, None, None)))
@pytest.mark.parametrize("name", list(MODULES))
def test_update_target_in_any_position(name, position):
    make, make_ref = MODULES[name]
    rin, rout = Record(), Record()
    chain = _positions(make("update"), rin, rout)[position]()
    _run_and_compare(chain, rin, rout, make_ref())


@pytest.mark.parametrize("position", ["first", "after-grad-clip", "after-grad-clip-late-update"])
@pytest.mark.parametrize("name", list(MODULES))
def test_grad_target_in_any_position(name, position):
    """With ``target="grad"`` the module transforms the gradient; the update is formed later."""
    make, make_ref = MODULES[name]
    rin, rout = Record("grad"), Record("grad")
    x = make("grad")
    chain = {
        "first": [rin, x, rout, tz.m.Adam(), tz.m.LR(1e-2)],
        "after-grad-clip": [tz.m.ClipValue(3.0, target="grad"), rin, x, rout, tz.m.Adam(), tz.m.LR(1e-2)],
        "after-grad-clip-late-update": [tz.m.Centralize(target="grad"), rin, x, rout, tz.m.LR(1e-2)],
    }[position]
    _run_and_compare(chain, rin, rout, make_ref())


def _run_and_compare(chain, rin, rout, ref, steps=60):  # noqa: ANN001
    stream, _ = spike_stream(steps)
    params = params_like(stream[0])
    opt = tz.Modular(params, *chain)
    changed = 0
    for t, ts in enumerate(stream):
        for p, x in zip(params, ts):
            p.grad = x.clone()
        opt.step()
        expected = ref.step(rin.seen[-1], rin.params[-1])
        assert_lists_close(rout.seen[-1], expected, rtol=1e-9, atol=1e-14, msg=f"step {t}")
        changed += any(not torch.equal(a, b) for a, b in zip(rin.seen[-1], rout.seen[-1]))
    assert changed > 0, "the module never changed anything: the test would not see a difference"


def _all_of_them(groups: bool):  # noqa: ANN001
    adam = tz.m.Adam()
    return [
        tz.m.SkipOnSpike(warmup=4),
        tz.m.AGC(0.05, target="grad"),
        tz.m.AutoClip(30, history=8),
        tz.m.SpikeClip(theta=10.0, warmup=2, source=adam),
        adam,
        tz.m.ZClip(warmup_steps=4, max_grad_norm=None),
        tz.m.LR(1e-2),
    ]


@pytest.mark.parametrize("groups", [False, True], ids=["one-group", "param-groups"])
def test_long_chain_checkpoint_round_trip_is_bitwise(groups):
    stream, _ = spike_stream(50)
    params = params_like(stream[0])
    params2 = [torch.nn.Parameter(p.detach().clone()) for p in params]

    def make(ps):  # noqa: ANN001
        if groups:
            ps = [{"params": ps[:2], "percentile": 80, "clipping": None}, {"params": ps[2:], "z_thresh": 1.0, "theta": 3.0, "lr": 1e-3}]
        return tz.Modular(ps, *_all_of_them(groups))

    a, b = make(params), make(params2)
    for t, ts in enumerate(stream):
        if t == 25:
            b.load_state_dict(roundtrip(a.state_dict()))
            with torch.no_grad():
                for p, q in zip(params, params2):
                    q.copy_(p)
        for p, q, x in zip(params, params2, ts):
            p.grad, q.grad = x.clone(), x.clone()
        a.step()
        if t >= 25:
            b.step()
    assert_bitwise(snapshot(a), snapshot(b))
    assert a.chain.modules[0].global_state["skipped"] > 0  # the guard did skip the norm spikes
