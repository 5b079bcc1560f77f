"""AGC against the reference written from Brock et al. (2021), on the spike stream."""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from aclip_helpers import D, Record, assert_lists_close, params_like, run_modular
from ref_adaptive_clipping import ref_agc, spike_stream


@pytest.mark.parametrize(
    "kw, units",
    [
        (dict(), "rows"),
        (dict(clipping=0.5, eps=0.3), "rows"),
        (dict(clipping=0.2, dim=None), "tensor"),
        (dict(clipping=0.2, dim="global"), "global"),
        (dict(clipping=0.05, dim=(1, 2, 3)), "rows"),  # the same units, spelled out (conv: all but 0)
    ],
    ids=["defaults", "clip0.5-eps0.3", "tensorwise", "global", "explicit-dims"],
)
@pytest.mark.parametrize("target", ["update", "grad"])
def test_matches_reference_on_spike_stream(kw, units, target):
    stream, _ = spike_stream(60)
    params = params_like(stream[0])
    if kw.get("dim") == (1, 2, 3):  # only the (out, in, ...) tensors have units; 1-D/0-D are whole
        kw = dict(kw, inverse_dims=False)
    out = run_modular([tz.m.AGC(**kw, target=target)], stream, params)
    clipping, eps = kw.get("clipping", 0.01), kw.get("eps", 1e-3)
    changed = 0
    for ts, o in zip(stream, out):
        ref = ref_agc(ts, [p.detach() for p in params], clipping, eps, units)
        assert_lists_close(o, ref, rtol=1e-10)
        changed += any(not torch.equal(a, b) for a, b in zip(o, ts))
    assert changed > 0


def test_units_are_output_rows_of_conv_weights():
    w = torch.ones(3, 2, 2, 2, dtype=D)  # each filter has norm sqrt(8)
    g = torch.zeros(3, 2, 2, 2, dtype=D)
    g[0] = 1.0  # filter 0: norm sqrt(8) -> ratio 1 > 0.5: scaled to 0.5 * sqrt(8)
    g[1, 0, 0, 0] = 1.0  # filter 1: ratio 1/sqrt(8) < 0.5: unchanged
    out = tz.apply_transform(tz.m.AGC(0.5), [g], params=[w])[0]
    torch.testing.assert_close(out[0].norm(), 0.5 * torch.tensor(8.0, dtype=D).sqrt())
    torch.testing.assert_close(out[1], g[1])
    torch.testing.assert_close(out[2], g[2])


@pytest.mark.parametrize("shape", [(), (5,)], ids=["0d", "1d"])
def test_small_tensors_are_one_unit(shape):
    w = torch.full(shape, 2.0, dtype=D)
    g = torch.full(shape, 10.0, dtype=D)
    out = tz.apply_transform(tz.m.AGC(0.1), [g], params=[w])[0]
    torch.testing.assert_close(out.norm(), 0.1 * w.norm())


def test_eps_lets_zero_parameters_move():
    w = torch.zeros(4, dtype=D)
    g = torch.ones(4, dtype=D)
    out = tz.apply_transform(tz.m.AGC(0.01, eps=1e-3), [g], params=[w])[0]
    torch.testing.assert_close(out.norm(), torch.tensor(1e-5, dtype=D))


def _two_layers():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)).double()


@pytest.mark.parametrize("how", ["set_param_groups", "param_group_key"])
def test_clipping_none_excludes_parameters(how):
    model = _two_layers()
    head = list(model[2].parameters())
    body = list(model[0].parameters())
    if how == "set_param_groups":
        agc = tz.m.AGC(1e-4).set_param_groups([{"params": head, "clipping": None}])
        groups = model.parameters()
    else:
        agc = tz.m.AGC(1e-4)
        groups = [{"params": body}, {"params": head, "clipping": None}]
    rec = Record()
    opt = tz.Modular(groups, agc, rec, tz.m.LR(0.0))
    model(torch.randn(8, 4, dtype=D)).pow(2).sum().backward()
    opt.step()
    seen = dict(zip([id(p) for p in model.parameters()], rec.seen[0]))
    for p in head:
        assert torch.equal(seen[id(p)], p.grad)  # excluded: unchanged
    for p in body:
        assert seen[id(p)].norm() < p.grad.norm()  # clipped hard


def test_per_parameter_clipping_values():
    params = params_like([torch.zeros(5, 4), torch.zeros(3)])
    stream, _ = spike_stream(5, shapes=[(5, 4), (3,)])
    agc = tz.m.AGC(0.01).set_param_groups([{"params": [params[1]], "clipping": 0.3, "eps": 0.5}])
    out = run_modular([agc], stream, params)
    for ts, o in zip(stream, out):
        ref0 = ref_agc([ts[0]], [params[0].detach()], 0.01, 1e-3)
        ref1 = ref_agc([ts[1]], [params[1].detach()], 0.3, 0.5)
        assert_lists_close(o, ref0 + ref1)


def test_update_target_after_adam_uses_the_update_norm():
    stream, _ = spike_stream(10)
    params = params_like(stream[0])
    before = Record()
    out = run_modular([tz.m.Adam(), before, tz.m.AGC(0.02)], stream, params)
    for u, o in zip(before.seen, out):
        assert_lists_close(o, ref_agc(u, [p.detach() for p in params], 0.02, 1e-3))


def test_grad_target_clips_p_grad_before_adam_sees_it():
    stream, _ = spike_stream(5)
    params = params_like(stream[0])
    rec = Record()
    opt = tz.Modular(params, tz.m.AGC(0.01, target="grad"), rec, tz.m.LR(0.0))
    for ts in stream:
        for p, t in zip(params, ts):
            p.grad = t.clone()
        opt.step()
        ref = ref_agc(ts, [p.detach() for p in params], 0.01, 1e-3)
        assert_lists_close([p.grad for p in params], ref)
        assert_lists_close(rec.grads[-1], ref)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
def test_low_precision_matches_float64_reference(dtype):
    stream, _ = spike_stream(3, dtype=dtype)
    params = params_like(stream[0], dtype=dtype)
    out = run_modular([tz.m.AGC(0.05)], stream, params)
    tol = {torch.float16: 2e-3, torch.bfloat16: 2e-2, torch.float32: 1e-5}[dtype]
    for ts, o in zip(stream, out):
        ref = ref_agc([t.double() for t in ts], [p.detach().double() for p in params], 0.05, 1e-3)
        assert all(x.dtype == dtype for x in o)
        assert_lists_close([x.double() for x in o], ref, rtol=tol, atol=tol * 1e-2)
