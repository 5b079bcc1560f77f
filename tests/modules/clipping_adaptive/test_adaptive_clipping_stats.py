"""What the adaptive clipping modules and guards report through ``opt.stats()``, against the
references; and that their steps make no host sync (the guards: exactly one)."""
from __future__ import annotations

import contextlib
import os
import sys
import math

import pytest
import torch

import torchzero as tz
from aclip_helpers import params_like
from ref_adaptive_clipping import RefAutoClip, RefSkipOnSpike, RefSpikeClip, RefZClip, global_norm, spike_stream


def _run(modules, steps=80, full_stats=False, nonfinite="skip"):  # noqa: ANN001
    """Yields (step index, stream tensors, opt.stats()) after every step."""
    stream, _ = spike_stream(steps)
    params = params_like(stream[0])
    opt = tz.Modular(params, *modules, tz.m.LR(0.0), full_stats=full_stats, nonfinite=nonfinite)
    for t, ts in enumerate(stream):
        for p, x in zip(params, ts):
            p.grad = x.clone()
        opt.step()
        yield t, ts, opt.stats()


def _close(a, b, rel=1e-5):  # noqa: ANN001
    assert float(a) == pytest.approx(b, rel=rel, abs=1e-12)


def test_autoclip_stats():
    ref = RefAutoClip(10)
    for _t, ts, s in _run([tz.m.AutoClip(10)]):
        ref.step(ts)
        n, thr = ref.norms[-1], ref.thresholds[-1]
        assert set(s) == {"AutoClip/norm", "AutoClip/factor", "AutoClip/clipped", "AutoClip/threshold"}
        _close(s["AutoClip/norm"], n)
        _close(s["AutoClip/threshold"], thr)
        _close(s["AutoClip/factor"], min(1.0, thr / n))
        assert s["AutoClip/clipped"].item() == float(n > thr)


def test_zclip_stats():
    kw = dict(max_grad_norm=None, warmup_steps=10)
    ref = RefZClip(**kw)
    n_spikes = 0
    for t, ts, s in _run([tz.m.ZClip(**kw)]):
        mean, var = ref.mean, ref.var
        ref.step(ts)
        n = global_norm(ts)
        _close(s["ZClip/norm"], n)
        if t < 10:
            assert "ZClip/zscore" not in s
            continue
        std = math.sqrt(var)
        _close(s["ZClip/mean"], mean)
        _close(s["ZClip/std"], std)
        _close(s["ZClip/zscore"], (n - mean) / (std + 1e-6))
        assert s["ZClip/spike"].item() == float(ref.spikes[-1])
        _close(s["ZClip/threshold"], ref.effective[-1])
        _close(s["ZClip/factor"], min(1.0, ref.effective[-1] / n))
        n_spikes += ref.spikes[-1]
    assert n_spikes > 0


def test_agc_stats_count_clipped_units():
    stream, _ = spike_stream(3)
    params = params_like(stream[0])
    opt = tz.Modular(params, tz.m.AGC(0.3), tz.m.LR(0.0))
    for p, x in zip(params, stream[0]):
        p.grad = x.clone()
    opt.step()
    s = opt.stats()
    ratios, norms = [], []
    for g, w in zip(stream[0], params):
        w = w.detach()
        rows = [(g[i], w[i]) for i in range(g.shape[0])] if g.ndim >= 2 else [(g, w)]
        for gi, wi in rows:
            norms.append(gi.norm().item())
            ratios.append(gi.norm().item() / max(wi.norm().item(), 1e-3))
    _close(s["AGC/clip_frac"], sum(r > 0.3 for r in ratios) / len(ratios))
    _close(s["AGC/norm_max"], max(norms))
    _close(s["AGC/factor_min"], min(min(1.0, 0.3 / r) for r in ratios))


def test_spikeclip_counts_only_with_full_stats():
    for _t, _ts, s in _run([tz.m.SpikeClip(theta=4.0, beta=0.9, warmup=3)], steps=10):
        assert s == {}
    ref = RefSpikeClip(4.0, 0.9, 3)
    total = None
    for t, ts, s in _run([tz.m.SpikeClip(theta=4.0, beta=0.9, warmup=3)], steps=40, full_stats=True):
        ref.step(ts)
        total = sum(x.numel() for x in ts)
        if t < 3:
            assert s == {}
        else:
            _close(s["SpikeClip/clip_frac"], ref.clipped[-1] / total)
    assert sum(ref.clipped) > 0


def test_guard_stats():
    ref = RefSkipOnSpike(6, 128, 16)
    skipped = 0
    for t, ts, s in _run([tz.m.SkipNonFinite(), tz.m.SkipOnSpike(warmup=16)], steps=120, nonfinite="propagate"):
        accepted = list(ref.accepted)
        spike = ref.is_spike(ts)
        assert s["SkipNonFinite/skipped"].item() == 0.0
        assert s["SkipOnSpike/skipped"].item() == float(spike)
        _close(s["SkipOnSpike/norm"], global_norm(ts))
        if len(accepted) >= 16:
            w = accepted[-128:]
            mean = sum(w) / len(w)
            std = math.sqrt(sum((x - mean) ** 2 for x in w) / (len(w) - 1))
            _close(s["SkipOnSpike/zscore"], (global_norm(ts) - mean) / max(std, 1e-3 * mean))
        else:
            assert "SkipOnSpike/zscore" not in s
        skipped += spike
    assert skipped > 0


# ------------------------------------------------------------------------------- host syncs
class _Sync(Exception):
    pass


@contextlib.contextmanager
def no_host_sync(allowed: int = 0):
    """Makes the Python-level ways of reading a tensor on the host raise after ``allowed`` uses
    (a CPU stand-in for ``torch.cuda.set_sync_debug_mode("error")``); yields the use counter.

    Reads made by ``torchzero/core/steps.py`` are allowed: step counters live on the host (as
    ``torch.optim``'s do), so reading them is no device sync on any device."""
    used = {"n": 0}
    names = ("__bool__", "item", "tolist", "__float__", "__int__")
    originals = {name: getattr(torch.Tensor, name) for name in names}

    def make(name):  # noqa: ANN001
        def guarded(self, *a, **k):  # noqa: ANN001
            if sys._getframe(1).f_code.co_filename.endswith(os.path.join("torchzero", "core", "steps.py")):
                return originals[name](self, *a, **k)
            if used["n"] < allowed:
                used["n"] += 1
                return originals[name](self, *a, **k)
            raise _Sync(f"host sync: Tensor.{name}")

        return guarded

    try:
        for name in names:
            setattr(torch.Tensor, name, make(name))
        yield used
    finally:
        for name, f in originals.items():
            setattr(torch.Tensor, name, f)


SYNC_FREE = {
    "AGC": lambda: tz.m.AGC(0.01),
    "AGC-global": lambda: tz.m.AGC(0.01, dim="global"),
    "AutoClip": lambda: tz.m.AutoClip(10, history=8),
    "ZClip": lambda: tz.m.ZClip(warmup_steps=3),
    "ZClip-skipstats": lambda: tz.m.ZClip(warmup_steps=3, skip_update_on_spike=True, mode="percentile"),
    "SpikeClip": lambda: tz.m.SpikeClip(theta=4.0, warmup=2),
}


@pytest.mark.parametrize("name", list(SYNC_FREE))
def test_clipping_steps_make_no_host_sync(name):
    stream, _ = spike_stream(12)
    params = params_like(stream[0])
    opt = tz.Modular(params, SYNC_FREE[name](), tz.m.Adam(), tz.m.LR(1e-2), nonfinite="propagate")
    for ts in stream:
        for p, x in zip(params, ts):
            p.grad = x.clone()
        with no_host_sync():
            opt.step()
            opt.stats()  # summarizing is on device too


@pytest.mark.parametrize("guard", [tz.m.SkipNonFinite, tz.m.SkipOnSpike], ids=["SkipNonFinite", "SkipOnSpike"])
def test_guards_make_one_host_sync_per_step(guard):
    stream, _ = spike_stream(40)
    params = params_like(stream[0])
    opt = tz.Modular(params, guard(warmup=4) if guard is tz.m.SkipOnSpike else guard(), tz.m.Adam(), tz.m.LR(1e-2), nonfinite="propagate")
    for ts in stream:
        for p, x in zip(params, ts):
            p.grad = x.clone()
        with no_host_sync(allowed=1) as used:
            opt.step()
        assert used["n"] == 1
    assert opt.chain.modules[0].global_state["skipped"] == (1 if guard is tz.m.SkipOnSpike else 0)  # the norm spike at step 30
