"""SkipNonFinite and SkipOnSpike: a bad step leaves the parameters and every module's state
bitwise unchanged, the spike decisions match the reference, and the counters and errors."""
from __future__ import annotations

import math

import pytest
import torch

import torchzero as tz
from aclip_helpers import D, assert_bitwise, params_like, roundtrip, snapshot
from ref_adaptive_clipping import RefSkipOnSpike, spike_stream


def make_opt(params, guards, nonfinite="propagate"):
    # Modular's own non-finite check (nonfinite="skip", the default) would skip bad steps before
    # the guards run; "propagate" hands them to the guards
    return tz.Modular(params, *guards, tz.m.ClipNormByEMA(), tz.m.Adam(), tz.m.LR(1e-2), nonfinite=nonfinite)


def step(opt, params, ts, closure_loss=None):
    for p, x in zip(params, ts):
        p.grad = x.clone()
    if closure_loss is None:
        return opt.step()
    return opt.step(lambda: torch.tensor(closure_loss, dtype=D))


def without_guard_counters(snap: dict, guard_paths: list[str]) -> dict:
    snap = dict(snap)
    snap["global"] = {k: v for k, v in snap["global"].items() if k not in guard_paths}
    return snap


def _poison(ts, kind):
    ts = [x.clone() for x in ts]
    if kind == "nan":
        ts[2][1, 1] = math.nan
    elif kind == "inf":
        ts[0] = torch.tensor(-math.inf, dtype=D)
    elif kind == "all-nan":
        ts = [torch.full_like(x, math.nan) for x in ts]
    return ts


@pytest.mark.parametrize("kind", ["nan", "inf", "all-nan", "loss-nan", "loss-inf"])
def test_non_finite_step_leaves_everything_bitwise_unchanged(kind):
    stream, _ = spike_stream(12, start=1000)
    params = params_like(stream[0])
    opt = make_opt(params, [tz.m.SkipNonFinite()])
    for ts in stream[:6]:
        step(opt, params, ts)
    before = snapshot(opt)
    if kind.startswith("loss"):
        loss = step(opt, params, stream[6], closure_loss=math.nan if kind == "loss-nan" else math.inf)
        assert not math.isfinite(float(loss))
    else:
        step(opt, params, _poison(stream[6], kind))
    after = snapshot(opt)
    guard = opt.chain.modules[0]
    assert guard.global_state == {"consecutive": 1, "skipped": 1}
    assert_bitwise(without_guard_counters(before, ["0"]), without_guard_counters(after, ["0"]))


def test_skipped_steps_are_as_if_they_never_happened():
    stream, _ = spike_stream(20, start=1000)
    params_a = params_like(stream[0])
    params_b = params_like(stream[0])
    a = make_opt(params_a, [tz.m.SkipNonFinite(), tz.m.SkipOnSpike(warmup=4)])
    b = make_opt(params_b, [tz.m.SkipNonFinite(), tz.m.SkipOnSpike(warmup=4)])
    for t, ts in enumerate(stream):
        step(a, params_a, ts)
        if t in (8, 13):  # b also sees a NaN step and a 1000x spike, which are skipped
            step(b, params_b, _poison(ts, "nan"))
            step(b, params_b, [x * 1000 for x in ts])
        step(b, params_b, ts)
    assert b.chain.modules[0].global_state["skipped"] == 2
    assert b.chain.modules[1].global_state["skipped"] == 2
    assert_bitwise(without_guard_counters(snapshot(a), ["0", "1"]), without_guard_counters(snapshot(b), ["0", "1"]))


def test_spike_decisions_match_reference():
    stream, spikes = spike_stream(200)
    params = params_like(stream[0])
    guard = tz.m.SkipOnSpike(sigma=6, window=64, warmup=16)
    opt = make_opt(params, [guard])
    ref = RefSkipOnSpike(sigma=6, window=64, warmup=16)
    skipped = []
    for t, ts in enumerate(stream):
        before = guard.global_state.get("skipped", 0)
        step(opt, params, ts)
        was_skipped = guard.global_state["skipped"] > before
        assert was_skipped == ref.is_spike(ts), t
        skipped.append(was_skipped)
    norm_spikes = spikes[::2]
    assert all(skipped[t] for t in norm_spikes)
    assert not any(s for t, s in enumerate(skipped) if t not in spikes)  # no false positives here
    st = guard.state[params[0]]
    assert st["step"] == len(ref.accepted) == 200 - sum(skipped)


def test_param_groups_have_their_own_windows():
    stream, _ = spike_stream(60, start=1000)
    params = params_like(stream[0])
    guard = tz.m.SkipOnSpike(sigma=3, window=8, warmup=4, max_consecutive=None)
    opt = tz.Modular([{"params": params[:2]}, {"params": params[2:], "sigma": 1.0}], guard, tz.m.LR(0.0))
    ra, rb = RefSkipOnSpike(3, 8, 4), RefSkipOnSpike(1.0, 8, 4)
    for t, ts in enumerate(stream):
        before = guard.global_state.get("skipped", 0)
        step(opt, params, ts)
        skipped = guard.global_state["skipped"] > before
        # the reference: a spike in either group skips the step; then no window takes its norm
        sa, sb = _peek(ra, ts[:2]), _peek(rb, ts[2:])
        assert skipped == (sa or sb), t
        if not skipped:
            ra.is_spike(ts[:2]), rb.is_spike(ts[2:])
    assert guard.global_state["skipped"] > 0


def _peek(ref: RefSkipOnSpike, ts) -> bool:
    accepted = list(ref.accepted)
    spike = ref.is_spike(ts)
    ref.accepted = accepted
    return spike


def test_max_consecutive_raises_with_explanation():
    stream, _ = spike_stream(10, start=1000)
    params = params_like(stream[0])
    opt = make_opt(params, [tz.m.SkipNonFinite(max_consecutive=2)])
    step(opt, params, stream[0])
    step(opt, params, _poison(stream[1], "nan"))
    step(opt, params, stream[2])  # a good step resets the count
    assert opt.chain.modules[0].global_state == {"consecutive": 0, "skipped": 1}
    step(opt, params, _poison(stream[3], "nan"))
    step(opt, params, _poison(stream[4], "inf"))
    before = snapshot(opt)
    with pytest.raises(RuntimeError, match=r"SkipNonFinite: 3 consecutive .* max_consecutive=2; this step 1 of 4 gradient tensors have NaN or infinite"):
        step(opt, params, _poison(stream[5], "nan"))
    assert_bitwise(without_guard_counters(before, ["0"]), without_guard_counters(snapshot(opt), ["0"]))


def test_max_consecutive_zero_and_none():
    stream, _ = spike_stream(3, start=1000)
    params = params_like(stream[0])
    opt = make_opt(params, [tz.m.SkipNonFinite(max_consecutive=0)])
    with pytest.raises(RuntimeError, match="loss is nan"):
        step(opt, params, stream[0], closure_loss=math.nan)
    opt = make_opt(params, [tz.m.SkipNonFinite(max_consecutive=None)])
    for _ in range(50):
        step(opt, params, _poison(stream[0], "nan"))
    assert opt.chain.modules[0].global_state["consecutive"] == 50


def test_spike_guard_error_explains_the_statistics():
    stream, _ = spike_stream(30, start=1000)
    params = params_like(stream[0])
    opt = make_opt(params, [tz.m.SkipOnSpike(warmup=5, max_consecutive=1)])
    for ts in stream[:10]:
        step(opt, params, ts)
    step(opt, params, [x * 100 for x in stream[10]])
    with pytest.raises(RuntimeError, match=r"SkipOnSpike: 2 consecutive .* accepted norms have mean .* reset\(\)"):
        step(opt, params, [x * 100 for x in stream[11]])


@pytest.mark.parametrize("guard", [tz.m.SkipNonFinite, tz.m.SkipOnSpike], ids=["SkipNonFinite", "SkipOnSpike"])
def test_guard_after_a_module_that_formed_the_update_raises(guard):
    # Modular rejects a misplaced guard at construction, before any step
    params = params_like([torch.zeros(3)])
    with pytest.raises(ValueError, match=f"{guard.__name__} must come before Adam"):
        tz.Modular(params, tz.m.Adam(), guard(), tz.m.LR(1e-2))
    with pytest.raises(ValueError, match="top level of the chain"):
        tz.Modular(params, tz.m.Adam(inner=guard()), tz.m.LR(1e-2))
    # used outside Modular (apply_transform), the guard itself still refuses to run second
    with pytest.raises(ValueError, match=f"{guard.__name__} must be the first module of the chain"):
        tz.apply_transform([tz.m.Adam(), guard()], [torch.ones(3, dtype=D)], params=params)


def test_state_dict_round_trip_carries_windows_and_counters():
    stream, _ = spike_stream(40, start=1000)
    params = params_like(stream[0])
    params2 = [torch.nn.Parameter(p.detach().clone()) for p in params]
    a = make_opt(params, [tz.m.SkipNonFinite(), tz.m.SkipOnSpike(sigma=50, window=8, warmup=4)])
    b = make_opt(params2, [tz.m.SkipNonFinite(), tz.m.SkipOnSpike(sigma=50, window=8, warmup=4)])
    for t, ts in enumerate(stream):
        if t == 20:
            sd = roundtrip(a.state_dict())
            assert sd["param_groups"][0]["torchzero"]["global_state"]["0"] == {"consecutive": 0, "skipped": 1}
            b.load_state_dict(sd)
            with torch.no_grad():
                for p, q in zip(params, params2):
                    q.copy_(p)
        if t in (12, 25):
            ts = _poison(ts, "nan")
        if t in (15, 30):
            ts = [x * 1e4 for x in ts]
        step(a, params, ts)
        if t >= 20:
            step(b, params2, ts)
    assert_bitwise(snapshot(a), snapshot(b))
    assert a.chain.modules[1].global_state["skipped"] == 2


def test_zero_and_missing_gradients():
    params = params_like([torch.zeros(3), torch.zeros(2, 2)])
    guard = tz.m.SkipOnSpike(warmup=2)
    opt = tz.Modular(params, guard, tz.m.Adam(), tz.m.LR(1e-2))
    for _ in range(5):
        for p in params:
            p.grad = torch.zeros_like(p)
        opt.step()
    assert guard.global_state["skipped"] == 0
    params[1].grad = None
    frozen = dict(guard.state[params[1]])
    params[0].grad = torch.zeros(3, dtype=D)
    opt.step()
    assert guard.state[params[1]] == frozen


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_full_batch_training_to_convergence_is_not_killed():
    """Full-batch training near a minimum: the norms stop varying (std ~ 0), and a warm restart
    of the learning rate raises the norm; skipping can't change a full-batch gradient, so the
    guard must not skip the same gradient until max_consecutive raises."""
    torch.manual_seed(0)
    x = torch.randn(64, 8)
    y = x @ torch.randn(8, 1)
    model = torch.nn.Linear(8, 1)
    guard = tz.m.SkipOnSpike()
    opt = tz.Modular(model.parameters(), guard, tz.m.Adam(), tz.m.LR(1e-2))
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=50)
    for _ in range(4000):  # raised RuntimeError ("11 consecutive optimizer steps were bad") before
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
        sched.step()
    assert loss.item() < 1e-10
    assert guard.global_state["consecutive"] <= 1


def test_a_repeated_skipped_norm_is_accepted():
    params = params_like([torch.ones(4)])
    guard = tz.m.SkipOnSpike(warmup=4)
    opt = tz.Modular(params, guard, tz.m.LR(1e-3))
    for i in range(8):
        params[0].grad = torch.full((4,), 1.0 + 0.01 * (i % 2), dtype=D)
        opt.step()
    params[0].grad = torch.full((4,), 100.0, dtype=D)
    before = params[0].detach().clone()
    opt.step()  # a spike: skipped
    assert torch.equal(params[0].detach(), before) and guard.global_state["skipped"] == 1
    opt.step()  # the same gradient again: skipping it could never end
    assert not torch.equal(params[0].detach(), before) and guard.global_state["skipped"] == 1


@pytest.mark.parametrize("rise, spike", [(1.5, False), (1.7, True)], ids=["1.5x-no", "1.7x-yes"])
def test_min_rel_std_floors_the_spread(rise, spike):
    params = params_like([torch.ones(4)])
    guard = tz.m.SkipOnSpike(warmup=4)  # sigma 6, min_rel_std 0.1: a spike above 1.6x the mean
    opt = tz.Modular(params, guard, tz.m.LR(1e-3))
    for _ in range(8):
        params[0].grad = torch.ones(4, dtype=D)  # constant norms: std 0
        opt.step()
    params[0].grad = torch.full((4,), rise, dtype=D)
    opt.step()
    assert guard.global_state["skipped"] == int(spike)
