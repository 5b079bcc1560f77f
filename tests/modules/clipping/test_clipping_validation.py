"""Bad arguments are rejected where they are given (construction, param groups, function call)
with a ``ValueError``/``TypeError`` whose message names the argument and shows the value."""

from __future__ import annotations

import math

import pytest
import torch

import torchzero as tz

NAN = float("nan")


def _p() -> torch.nn.Parameter:
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.tensor([3.0, -4.0, 0.5])
    return p


m = tz.m
# (id, factory, exception, substrings the message must contain)
BAD = [
    # ClipValue
    ("ClipValue-value=-1", lambda: m.ClipValue(-1), ValueError, ["value", "-1"]),
    ("ClipValue-value=nan", lambda: m.ClipValue(NAN), ValueError, ["value", "nan"]),
    ("ClipValue-value='a'", lambda: m.ClipValue("a"), TypeError, ["value", "'a'"]),
    ("ClipValue-value=None", lambda: m.ClipValue(None), TypeError, ["value", "None"]),
    ("ClipValue-value=True", lambda: m.ClipValue(True), TypeError, ["value", "True"]),
    ("ClipValue-target", lambda: m.ClipValue(1.0, target="gradient"), ValueError, ["target", "'gradient'"]),
    # ClipNorm
    ("ClipNorm-max_norm=-1", lambda: m.ClipNorm(-1), ValueError, ["max_norm", "-1"]),
    ("ClipNorm-max_norm=nan", lambda: m.ClipNorm(NAN), ValueError, ["max_norm", "nan"]),
    ("ClipNorm-max_norm='1'", lambda: m.ClipNorm("1"), TypeError, ["max_norm", "'1'"]),
    ("ClipNorm-ord='l7'", lambda: m.ClipNorm(1, ord="l7"), ValueError, ["ord", "'l7'", "'mad'", "'linf'"]),
    ("ClipNorm-ord='L2'", lambda: m.ClipNorm(1, ord="L2"), ValueError, ["ord", "'L2'"]),
    ("ClipNorm-ord=None", lambda: m.ClipNorm(1, ord=None), TypeError, ["ord", "None"]),
    ("ClipNorm-ord=nan", lambda: m.ClipNorm(1, ord=NAN), ValueError, ["ord", "nan"]),
    ("ClipNorm-dim='glob'", lambda: m.ClipNorm(1, dim="glob"), ValueError, ["dim", "'glob'"]),
    ("ClipNorm-dim=1.5", lambda: m.ClipNorm(1, dim=1.5), TypeError, ["dim", "1.5"]),
    ("ClipNorm-dim=(0,'a')", lambda: m.ClipNorm(1, dim=(0, "a")), TypeError, ["dim", "'a'"]),
    ("ClipNorm-inverse_dims='yes'", lambda: m.ClipNorm(1, inverse_dims="yes"), TypeError, ["inverse_dims", "'yes'"]),
    ("ClipNorm-min_size=-1", lambda: m.ClipNorm(1, min_size=-1), ValueError, ["min_size", "-1"]),
    ("ClipNorm-min_size=1.5", lambda: m.ClipNorm(1, min_size=1.5), TypeError, ["min_size", "1.5"]),
    ("ClipNorm-target", lambda: m.ClipNorm(1, target="gradient"), ValueError, ["target", "'gradient'"]),
    ("ClipNorm-target=None", lambda: m.ClipNorm(1, target=None), ValueError, ["target", "None"]),
    # Normalize
    ("Normalize-norm_value=-1", lambda: m.Normalize(-1), ValueError, ["norm_value", "-1"]),
    ("Normalize-norm_value=nan", lambda: m.Normalize(NAN), ValueError, ["norm_value", "nan"]),
    ("Normalize-ord='l7'", lambda: m.Normalize(ord="l7"), ValueError, ["ord", "'l7'"]),
    ("Normalize-dim='glob'", lambda: m.Normalize(dim="glob"), ValueError, ["dim", "'glob'"]),
    ("Normalize-target", lambda: m.Normalize(target="grads"), ValueError, ["target", "'grads'"]),
    # Centralize
    ("Centralize-dim='glob'", lambda: m.Centralize(dim="glob"), ValueError, ["dim", "'glob'"]),
    ("Centralize-min_size=-2", lambda: m.Centralize(min_size=-2), ValueError, ["min_size", "-2"]),
    ("Centralize-inverse_dims=1", lambda: m.Centralize(inverse_dims=1), TypeError, ["inverse_dims", "1"]),
    ("Centralize-target", lambda: m.Centralize(target="gradient"), ValueError, ["target", "'gradient'"]),
    # ClipNormByEMA / NormalizeByEMA
    ("ClipNormByEMA-beta=1.0", lambda: m.ClipNormByEMA(beta=1.0), ValueError, ["beta", "1.0"]),
    ("ClipNormByEMA-beta=-0.1", lambda: m.ClipNormByEMA(beta=-0.1), ValueError, ["beta", "-0.1"]),
    ("ClipNormByEMA-beta=nan", lambda: m.ClipNormByEMA(beta=NAN), ValueError, ["beta", "nan"]),
    ("ClipNormByEMA-ord='l7'", lambda: m.ClipNormByEMA(ord="l7"), ValueError, ["ord", "'l7'"]),
    ("ClipNormByEMA-eps=-1", lambda: m.ClipNormByEMA(eps=-1.0), ValueError, ["eps", "-1.0"]),
    ("ClipNormByEMA-tensorwise='yes'", lambda: m.ClipNormByEMA(tensorwise="yes"), TypeError, ["tensorwise", "'yes'"]),
    ("ClipNormByEMA-max_ema_growth=-1", lambda: m.ClipNormByEMA(max_ema_growth=-1), ValueError, ["max_ema_growth", "-1"]),
    ("ClipNormByEMA-max_ema_growth=nan", lambda: m.ClipNormByEMA(max_ema_growth=NAN), ValueError, ["max_ema_growth", "nan"]),
    ("ClipNormByEMA-ema_init='ones'", lambda: m.ClipNormByEMA(ema_init="ones"), ValueError, ["ema_init", "'ones'", "'zeros'", "'update'"]),
    ("ClipNormByEMA-inner='LR'", lambda: m.ClipNormByEMA(inner="LR"), TypeError, ["inner", "'LR'"]),
    ("ClipNormByEMA-target", lambda: m.ClipNormByEMA(target="gradient"), ValueError, ["target", "'gradient'"]),
    ("NormalizeByEMA-beta=1.0", lambda: m.NormalizeByEMA(beta=1.0), ValueError, ["beta", "1.0"]),
    ("NormalizeByEMA-ema_init='ones'", lambda: m.NormalizeByEMA(ema_init="ones"), ValueError, ["ema_init", "'ones'"]),
    ("NormalizeByEMA-ord=None", lambda: m.NormalizeByEMA(ord=None), TypeError, ["ord", "None"]),
    # ClipValueByEMA
    ("ClipValueByEMA-beta=1.0", lambda: m.ClipValueByEMA(beta=1.0), ValueError, ["beta", "1.0"]),
    ("ClipValueByEMA-beta='0.9'", lambda: m.ClipValueByEMA(beta="0.9"), TypeError, ["beta", "'0.9'"]),
    ("ClipValueByEMA-ema_init='ones'", lambda: m.ClipValueByEMA(ema_init="ones"), ValueError, ["ema_init", "'ones'"]),
    ("ClipValueByEMA-ema_tfm='LR'", lambda: m.ClipValueByEMA(ema_tfm="LR"), TypeError, ["ema_tfm", "'LR'"]),
    ("ClipValueByEMA-ema_tfm=class", lambda: m.ClipValueByEMA(ema_tfm=tz.m.LR), TypeError, ["ema_tfm", "LR"]),
    ("ClipValueByEMA-target", lambda: m.ClipValueByEMA(target="gradient"), ValueError, ["target", "'gradient'"]),
    # ClipValueGrowth
    ("ClipValueGrowth-add=-1", lambda: m.ClipValueGrowth(add=-1), ValueError, ["add", "-1"]),
    ("ClipValueGrowth-mul=-1", lambda: m.ClipValueGrowth(mul=-1), ValueError, ["mul", "-1"]),
    ("ClipValueGrowth-mul=nan", lambda: m.ClipValueGrowth(mul=NAN), ValueError, ["mul", "nan"]),
    ("ClipValueGrowth-min_value=-1", lambda: m.ClipValueGrowth(min_value=-1), ValueError, ["min_value", "-1"]),
    ("ClipValueGrowth-max_decay=-2", lambda: m.ClipValueGrowth(max_decay=-2), ValueError, ["max_decay", "-2"]),
    ("ClipValueGrowth-mul='1.5'", lambda: m.ClipValueGrowth(mul="1.5"), TypeError, ["mul", "'1.5'"]),
    ("ClipValueGrowth-target", lambda: m.ClipValueGrowth(target="gradient"), ValueError, ["target", "'gradient'"]),
    # ClipNormGrowth
    ("ClipNormGrowth-mul=-1", lambda: m.ClipNormGrowth(mul=-1), ValueError, ["mul", "-1"]),
    ("ClipNormGrowth-add=nan", lambda: m.ClipNormGrowth(add=NAN), ValueError, ["add", "nan"]),
    ("ClipNormGrowth-min_value=nan", lambda: m.ClipNormGrowth(min_value=NAN), ValueError, ["min_value", "nan"]),
    ("ClipNormGrowth-max_decay=-2", lambda: m.ClipNormGrowth(max_decay=-2), ValueError, ["max_decay", "-2"]),
    ("ClipNormGrowth-ord='l7'", lambda: m.ClipNormGrowth(ord="l7"), ValueError, ["ord", "'l7'"]),
    ("ClipNormGrowth-parameterwise='yes'", lambda: m.ClipNormGrowth(parameterwise="yes"), TypeError, ["parameterwise", "'yes'"]),
    ("ClipNormGrowth-tensorwise='yes'", lambda: m.ClipNormGrowth(tensorwise="yes"), TypeError, ["tensorwise", "'yes'"]),
    ("ClipNormGrowth-target", lambda: m.ClipNormGrowth(target="gradient"), ValueError, ["target", "'gradient'"]),
    # functions
    ("clip_grad_norm_-max_norm=-1", lambda: m.clip_grad_norm_([_p()], -1), ValueError, ["max_norm", "-1"]),
    ("clip_grad_norm_-max_norm=nan", lambda: m.clip_grad_norm_([_p()], NAN), ValueError, ["max_norm", "nan"]),
    ("clip_grad_norm_-ord='l7'", lambda: m.clip_grad_norm_([_p()], 1.0, ord="l7"), ValueError, ["ord", "'l7'"]),
    ("clip_grad_norm_-dim='glob'", lambda: m.clip_grad_norm_([_p()], 1.0, dim="glob"), ValueError, ["dim", "'glob'"]),
    ("clip_grad_norm_-inverse_dims='x'", lambda: m.clip_grad_norm_([_p()], 1.0, inverse_dims="x"), TypeError, ["inverse_dims", "'x'"]),
    ("clip_grad_norm_-min_size=-1", lambda: m.clip_grad_norm_([_p()], 1.0, min_size=-1), ValueError, ["min_size", "-1"]),
    ("clip_grad_norm_-min_norm=-1", lambda: m.clip_grad_norm_([_p()], 1.0, min_norm=-1), ValueError, ["min_norm", "-1"]),
    ("clip_grad_value_-value=-1", lambda: m.clip_grad_value_([_p()], -1), ValueError, ["value", "-1"]),
    ("clip_grad_value_-value=nan", lambda: m.clip_grad_value_([_p()], NAN), ValueError, ["value", "nan"]),
    ("clip_grad_value_-value='a'", lambda: m.clip_grad_value_([_p()], "a"), TypeError, ["value", "'a'"]),
    ("normalize_grads_-norm_value=nan", lambda: m.normalize_grads_([_p()], NAN), ValueError, ["norm_value", "nan"]),
    ("normalize_grads_-ord='l7'", lambda: m.normalize_grads_([_p()], 1.0, ord="l7"), ValueError, ["ord", "'l7'"]),
    ("normalize_grads_-dim='glob'", lambda: m.normalize_grads_([_p()], 1.0, dim="glob"), ValueError, ["dim", "'glob'"]),
    # param groups and overrides
    ("group-max_norm=-1", lambda: tz.Modular([{"params": [_p()], "max_norm": -1}], m.ClipNorm(1.0)), ValueError, ["max_norm", "-1"]),
    ("group-ord='l7'", lambda: tz.Modular([{"params": [_p()], "ord": "l7"}], m.ClipNorm(1.0)), ValueError, ["ord", "'l7'"]),
    ("group-beta=1.5", lambda: tz.Modular([{"params": [_p()], "beta": 1.5}], m.ClipValueByEMA()), ValueError, ["beta", "1.5"]),
    ("group-ema_init='ones'", lambda: tz.Modular([{"params": [_p()], "ema_init": "ones"}], m.NormalizeByEMA()), ValueError, ["ema_init", "'ones'"]),
    ("group-mul=-1", lambda: tz.Modular([{"params": [_p()], "mul": -1}], m.ClipNormGrowth()), ValueError, ["mul", "-1"]),
    ("group-dim='glob'-nested", lambda: tz.Modular([{"params": [_p()], "dim": "glob"}], m.ClipNormByEMA(inner=m.Centralize())), ValueError, ["dim", "'glob'"]),
    ("add_param_group-value=-1", lambda: tz.Modular([_p()], m.ClipValue(1.0)).add_param_group({"params": [_p()], "value": -1}), ValueError, ["value", "-1"]),
    ("set_param_groups-max_norm=-1", lambda: m.ClipNorm(1.0).set_param_groups([{"params": [_p()], "max_norm": -1}]), ValueError, ["max_norm", "-1"]),
    ("set_param_groups-unknown", lambda: m.ClipNorm(1.0).set_param_groups([{"params": [_p()], "max_nrom": 1}]), ValueError, ["max_nrom"]),
    ("set_param_groups-no-params", lambda: m.ClipNorm(1.0).set_param_groups([{"max_norm": 1}]), TypeError, ["params"]),
]


@pytest.mark.parametrize("factory, exc, substrings", [pytest.param(f, e, s, id=i) for i, f, e, s in BAD])
def test_bad_argument_is_rejected_with_a_clear_message(factory, exc, substrings):
    with pytest.raises(exc) as info:
        factory()
    message = str(info.value)
    for s in substrings:
        assert s in message, f"{s!r} not in the message {message!r}"


def test_functions_do_not_touch_grads_when_rejecting():
    p = _p()
    before = p.grad.clone()
    for call in (lambda: tz.m.clip_grad_norm_([p], -1.0), lambda: tz.m.clip_grad_norm_([p], 1.0, ord="l7"),
                 lambda: tz.m.normalize_grads_([p], 1.0, dim="glob"), lambda: tz.m.clip_grad_value_([p], NAN)):
        with pytest.raises((ValueError, TypeError)):
            call()
        assert torch.equal(p.grad, before)


GOOD = [
    ("ClipValue-0", lambda: m.ClipValue(0)),
    ("ClipNorm-0", lambda: m.ClipNorm(0.0)),
    ("ClipNorm-int", lambda: m.ClipNorm(1)),
    ("ClipNorm-tensor-max_norm", lambda: m.ClipNorm(torch.tensor(1.0))),
    *[(f"ClipNorm-ord={o}", lambda o=o: m.ClipNorm(1, ord=o)) for o in
      (0, 1, 2, 3, 0.5, math.inf, "l0", "l1", "l2", "l3", "l4", "linf", "mad", "std", "var", "sum")],
    ("ClipNorm-ord=tensor", lambda: m.ClipNorm(1, ord=torch.tensor(2.0))),
    ("ClipNorm-dim=list", lambda: m.ClipNorm(1, dim=[0, 1])),
    ("ClipNorm-dim=()", lambda: m.ClipNorm(1, dim=())),
    ("ClipNorm-dim=-2", lambda: m.ClipNorm(1, dim=-2)),
    ("ClipNorm-min_size=0", lambda: m.ClipNorm(1, min_size=0)),
    ("ClipNorm-target=grad", lambda: m.ClipNorm(1, target="grad")),
    ("ClipNormByEMA-beta=0", lambda: m.ClipNormByEMA(beta=0.0)),
    ("ClipNormByEMA-max_ema_growth=None", lambda: m.ClipNormByEMA(max_ema_growth=None)),
    ("ClipNormByEMA-inner=list", lambda: m.ClipNormByEMA(inner=[m.LR(2.0), m.ClipValue(1.0)])),
    ("ClipValueByEMA-ema_tfm=list", lambda: m.ClipValueByEMA(ema_tfm=[m.LR(2.0)])),
    ("ClipValueGrowth-all-None", lambda: m.ClipValueGrowth(add=None, mul=None, min_value=None, max_decay=None)),
    ("ClipValueGrowth-add=0", lambda: m.ClipValueGrowth(add=0)),
    ("ClipNormGrowth-all-None", lambda: m.ClipNormGrowth(add=None, mul=None, min_value=None, max_decay=None)),
    ("group-unrelated-key", lambda: tz.Modular([{"params": [_p()], "foo": -1}], m.ClipNorm(1.0))),
]


@pytest.mark.parametrize("factory", [pytest.param(f, id=i) for i, f in GOOD])
def test_valid_arguments_are_accepted(factory):
    factory()


def test_positional_argument_order_follows_the_old_api():
    """Names, order and defaults as in torchzero 0.3.x (spec tables)."""
    assert m.ClipNorm(0.5, 1, 0, True, 3).defaults == dict(max_norm=0.5, ord=1, dim=0, inverse_dims=True, min_size=3)
    assert m.Normalize().defaults == dict(norm_value=1, ord=2, dim=None, inverse_dims=False, min_size=1)
    assert m.Centralize().defaults == dict(dim=None, inverse_dims=False, min_size=2)
    assert m.ClipNormByEMA().defaults == dict(beta=0.99, ord=2, eps=1e-6, tensorwise=True, max_ema_growth=1.5, ema_init="zeros")
    assert m.NormalizeByEMA(0.5, 1, 1e-3, False, None, "update").defaults == dict(
        beta=0.5, ord=1, eps=1e-3, tensorwise=False, max_ema_growth=None, ema_init="update")
    assert m.ClipValueByEMA().defaults == dict(beta=0.99, ema_init="zeros")
    assert m.ClipValueGrowth().defaults == dict(add=None, mul=1.5, min_value=1e-4, max_decay=2)
    assert m.ClipNormGrowth(0.1, 2.0, 1e-3, 3, 1, False).defaults == dict(
        add=0.1, mul=2.0, min_value=1e-3, max_decay=3, ord=1, parameterwise=False)
    for module in (m.ClipValue(1.0), m.ClipNorm(1.0), m.ClipNormGrowth()):
        assert module.target == "update"


@pytest.mark.parametrize("ord", [-1, -math.inf], ids=["ord=-1", "ord=-inf"])
def test_negative_ord_follows_vector_norm(ord):
    from reference.clipping import ref_clip_norm

    t = [torch.tensor([[3.0, -4.0], [0.5, 2.0]], dtype=torch.float64)]
    out = tz.apply_transform(tz.m.ClipNorm(0.1, ord=ord), t)
    torch.testing.assert_close(out[0], ref_clip_norm(t, 0.1, ord)[0], rtol=1e-10, atol=0)
