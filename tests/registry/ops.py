"""Registry entries for the ops: Mul, Div, Add, Sub, Negate, Abs, Sign, Clip, NanToNum, Identity,
Grad, Graft, Dropout.

``Dropout`` is registered with ``p=0``: with ``p > 0`` its mask comes from torch's global random
number generator, which two optimizers stepped alternately (the generic checkpoint and deepcopy
tests) do not share; tests/modules/ops/test_ops_graft_dropout.py checks that a resumed run with
the generator state restored is bitwise.
"""
from __future__ import annotations

import math

import torchzero as tz

from . import BadArg, Case

NAN, INF = math.nan, math.inf


def _g(make):
    """``target_grad=True`` and the ``make_grad`` built from ``make(target=...)``."""
    return dict(target_grad=True, make_grad=lambda: make(target="grad"))


CASES = [
    Case("Mul-number", lambda: tz.m.Mul(0.5), ("Mul",), stateful=False, **_g(lambda **k: tz.m.Mul(0.5, **k))),
    Case("Mul-chain", lambda: tz.m.Mul([tz.m.Abs(), tz.m.Add(1.0)]), ("Mul",), stateful=False, **_g(lambda **k: tz.m.Mul([tz.m.Abs(), tz.m.Add(1.0)], **k))),
    Case("Mul-stateful-chain", lambda: tz.m.Mul(tz.m.Adam()), ("Mul",)),
    Case("Div-number", lambda: tz.m.Div(4.0), ("Div",), stateful=False, **_g(lambda **k: tz.m.Div(4.0, **k))),
    Case("Div-chain", lambda: tz.m.Div([tz.m.Abs(), tz.m.Add(1.0)]), ("Div",), stateful=False, **_g(lambda **k: tz.m.Div([tz.m.Abs(), tz.m.Add(1.0)], **k))),
    Case("Add-number", lambda: tz.m.Add(0.1, alpha=2), ("Add",), stateful=False, **_g(lambda **k: tz.m.Add(0.1, alpha=2, **k))),
    Case("Add-chain", lambda: tz.m.Add(tz.m.Mul(0.5)), ("Add",), stateful=False, **_g(lambda **k: tz.m.Add(tz.m.Mul(0.5), **k))),
    Case("Add-stateful-chain", lambda: tz.m.Add(tz.m.Adam(), alpha=0.5), ("Add",)),
    Case("Sub-number", lambda: tz.m.Sub(0.1), ("Sub",), stateful=False, **_g(lambda **k: tz.m.Sub(0.1, **k))),
    Case("Sub-chain", lambda: tz.m.Sub(tz.m.Sign(), alpha=0.25), ("Sub",), stateful=False, **_g(lambda **k: tz.m.Sub(tz.m.Sign(), alpha=0.25, **k))),
    Case("Negate", lambda: tz.m.Negate(), ("Negate",), stateful=False, **_g(lambda **k: tz.m.Negate(**k))),
    Case("Abs", lambda: tz.m.Abs(), ("Abs",), stateful=False, **_g(lambda **k: tz.m.Abs(**k))),
    Case("Sign", lambda: tz.m.Sign(), ("Sign",), stateful=False, **_g(lambda **k: tz.m.Sign(**k))),
    Case("Clip-numbers", lambda: tz.m.Clip(-0.5, 0.5), ("Clip",), stateful=False, **_g(lambda **k: tz.m.Clip(-0.5, 0.5, **k))),
    Case("Clip-max-only", lambda: tz.m.Clip(max=0.2), ("Clip",), stateful=False),
    Case("Clip-chains", lambda: tz.m.Clip(min=tz.m.Mul(2.0), max=[tz.m.Abs(), tz.m.Mul(0.5)]), ("Clip",), stateful=False, **_g(lambda **k: tz.m.Clip(min=tz.m.Mul(2.0), max=[tz.m.Abs(), tz.m.Mul(0.5)], **k))),
    Case("Clip-stateful-chain", lambda: tz.m.Clip(-1.0, tz.m.ClipValueByEMA(ema_init="update")), ("Clip",)),
    Case("NanToNum", lambda: tz.m.NanToNum(), ("NanToNum",), stateful=False, **_g(lambda **k: tz.m.NanToNum(**k))),
    Case("NanToNum-values", lambda: tz.m.NanToNum(1.0, 2.0, -2.0), ("NanToNum",), stateful=False),
    Case("Identity", lambda: tz.m.Identity(), ("Identity",), stateful=False),
    Case("Grad", lambda: [tz.m.Mul(3.0), tz.m.Grad()], ("Grad",), stateful=False),
    Case("Graft", lambda: tz.m.Graft(tz.m.Adam()), ("Graft",), **_g(lambda **k: tz.m.Graft(tz.m.Adam(), **k))),
    Case("Graft-global-linf", lambda: [tz.m.Sign(), tz.m.Graft([tz.m.Grad(), tz.m.Adam()], tensorwise=False, ord="linf")], ("Graft", "Grad")),
    Case("Dropout-p0", lambda: tz.m.Dropout(0.0), ("Dropout",), stateful=False, **_g(lambda **k: tz.m.Dropout(0.0, **k))),
    Case("Dropout-p0-graft", lambda: tz.m.Dropout(0.0, graft=True), ("Dropout",), stateful=False),
]


def _bad(cls_name: str, arg: str, kwargs: dict, positional: tuple = (), exc=(ValueError, TypeError)) -> BadArg:
    def make():
        return getattr(tz.m, cls_name)(*positional, **kwargs)

    shown = kwargs.get(arg, positional[0] if positional else None)
    return BadArg(f"{cls_name}-{arg}={shown!r}", make, exc, rf"{cls_name}.*{arg}")


_TARGET = ["gradient", None, 1]
_OPERAND = [NAN, INF, -INF, "1", None, True, [1.0], []]
_FINITE = [NAN, INF, "1", None]
_BOOL = [1, "yes", None]

BAD_ARGS = [
    *[_bad("Mul", "other", {"other": v}) for v in _OPERAND],
    *[_bad("Div", "other", {"other": v}) for v in [0, 0.0, -0.0, *_OPERAND]],
    *[_bad(c, "other", {"other": v}) for c in ("Add", "Sub") for v in _OPERAND],
    *[_bad(c, "alpha", {"other": 1.0, "alpha": v}) for c in ("Add", "Sub") for v in _FINITE],
    *[_bad(c, "target", {"other": 1.0, "target": v}) for c in ("Mul", "Div", "Add", "Sub") for v in _TARGET],
    *[_bad("Clip", a, {a: v}) for a in ("min", "max") for v in [NAN, INF, -INF, "1", True, [0.5]]],
    _bad("Clip", "min", {"min": 1.0, "max": -1.0}),
    *[_bad("Clip", "target", {"min": 0.0, "target": v}) for v in _TARGET],
    *[_bad(c, "target", {"target": v}) for c in ("Negate", "Abs", "Sign", "NanToNum", "Dropout") for v in _TARGET],
    *[_bad("NanToNum", a, {a: v}) for a in ("nan", "posinf", "neginf") for v in [NAN, INF, "0", True]],
    *[_bad("Graft", "magnitude", {"magnitude": v}) for v in [3, None, "Adam", tz.m.Adam, [tz.m.Adam(), 1]]],
    *[_bad("Graft", a, {"magnitude": tz.m.Adam(), a: v}) for a, vals in {
        "tensorwise": _BOOL,
        "ord": [NAN, "fro", None, [2]],
        "eps": [0.0, -1e-6, NAN, INF, "1e-6", None],
    }.items() for v in vals],
    *[_bad("Dropout", "p", {"p": v}) for v in [-0.1, 1.0, 1.5, NAN, INF, "0.5", None, True]],
    *[_bad("Dropout", "graft", {"graft": v}) for v in _BOOL],
]
