"""Registry entries for the momentum family: EMA, HeavyBall, NAG, Debias, Cautious, ScheduleFree, MARSCorrection."""
from __future__ import annotations

import math

import torchzero as tz

from . import BadArg, Case

NAN, INF = math.nan, math.inf


def _grad(cls_name: str, **kw):
    return lambda: getattr(tz.m, cls_name)(**kw, target="grad")


def _same(cls_name: str, **kw):
    return lambda: getattr(tz.m, cls_name)(**kw)


CASES = [
    Case("EMA", _same("EMA"), ("EMA",), target_grad=True, make_grad=_grad("EMA")),
    Case("EMA-debiased-dampened", _same("EMA", momentum=0.8, dampening=0.3, debiased=True), ("EMA",), target_grad=True, make_grad=_grad("EMA", momentum=0.8, dampening=0.3, debiased=True)),
    Case("EMA-update-init-sum", _same("EMA", lerp=False, ema_init="update"), ("EMA",)),
    Case("HeavyBall", _same("HeavyBall"), ("HeavyBall",), target_grad=True, make_grad=_grad("HeavyBall")),
    Case("HeavyBall-dampening-lerp", _same("HeavyBall", momentum=0.5, dampening=0.5, lerp=True), ("HeavyBall",)),
    Case("NAG", _same("NAG"), ("NAG",), target_grad=True, make_grad=_grad("NAG")),
    Case("NAG-lerp-dampening", _same("NAG", momentum=0.95, dampening=0.1, lerp=True), ("NAG",), target_grad=True, make_grad=_grad("NAG", momentum=0.95, dampening=0.1, lerp=True)),
    Case("Debias-beta1", lambda: [tz.m.EMA(0.9), tz.m.Debias(beta1=0.9)], ("Debias",)),
    Case("Debias-after-adam-pow3", lambda: [tz.m.Adam(debiased=False, pow=3), tz.m.Debias(0.9, 0.999, alpha=2.0, pow=3)], ("Debias",)),
    Case("Debias-both", _same("Debias", beta1=0.9, beta2=0.999, alpha=2.0), ("Debias",), target_grad=True, make_grad=_grad("Debias", beta1=0.9, beta2=0.999, alpha=2.0)),
    Case("Debias-none", _same("Debias"), ("Debias",)),
    Case("Cautious-zero", lambda: [tz.m.HeavyBall(), tz.m.Cautious()], ("Cautious",)),
    Case("Cautious-normalize", lambda: [tz.m.Adam(), tz.m.Cautious(normalize=True)], ("Cautious",)),
    Case("Cautious-grad", lambda: [tz.m.NAG(), tz.m.Cautious(mode="grad")], ("Cautious",)),
    Case("Cautious-backtrack", lambda: [tz.m.EMA(0.5), tz.m.Cautious(mode="backtrack")], ("Cautious",)),
    Case("MARSCorrection-Adam", lambda: [tz.m.MARSCorrection(0.95), tz.m.Adam(0.95, 0.99)], ("MARSCorrection",)),
    Case("MARSCorrection-global-unclipped", lambda: [tz.m.MARSCorrection(0.5, 0.1, None, False), tz.m.Lion()], ("MARSCorrection",)),
    Case("MARSCorrection-global", _same("MARSCorrection", beta=0.9, max_norm=0.5, tensorwise=False), ("MARSCorrection",)),
    # ScheduleFree takes lr itself and is last: no LR after it
    Case("ScheduleFree-SGD", lambda: [tz.m.WeightDecay(1e-3), tz.m.ScheduleFree(1e-2)], ("ScheduleFree",), lr=None),
    Case(
        "ScheduleFree-AdamW-warmup-r",
        lambda: [tz.m.RMSprop(0.999, debiased=True), tz.m.ScheduleFree(1e-2, 0.9, warmup_steps=2, r=0.5, weight_lr_power=1.0)],
        ("ScheduleFree",),
        lr=None,
    ),
]


def _bad(cls_name: str, arg: str, value, **other) -> BadArg:
    kwargs = {**other, arg: value}

    def make():
        return getattr(tz.m, cls_name)(**kwargs)

    return BadArg(f"{cls_name}-{arg}={value!r}", make, (ValueError, TypeError), rf"{cls_name}.*{arg}")


_BETA = [-0.1, 1.0, 1.5, NAN, INF, "0.9", None, True]
_DAMPENING = [-0.1, 1.5, NAN, INF, "0", None]
_BOOL = [1, 0, "yes", None]
_TARGET = ["gradient", "params", None, 1]

BAD_ARGS = [
    *[
        _bad(cls, arg, v)
        for cls in ("EMA", "HeavyBall")
        for arg, vals in {
            "momentum": _BETA,
            "dampening": _DAMPENING,
            "debiased": _BOOL,
            "lerp": _BOOL,
            "ema_init": ["ones", "Zeros", "grad", None, 0],
            "target": _TARGET,
        }.items()
        for v in vals
    ],
    *[_bad("NAG", arg, v) for arg, vals in {"momentum": _BETA, "dampening": _DAMPENING, "lerp": _BOOL, "target": _TARGET}.items() for v in vals],
    *[
        _bad("Debias", arg, v)
        for arg, vals in {
            "beta1": [-0.1, 1.0, NAN, INF, "0.9", False],
            "beta2": [-0.5, 1.0, 2.0, NAN, "0.999"],
            "alpha": [NAN, INF, -INF, "1", None],
            "pow": [0, -2, NAN, INF, "2", None],
            "target": _TARGET,
        }.items()
        for v in vals
    ],
    *[
        _bad("ScheduleFree", arg, v)
        for arg, vals in {
            "lr": [-1e-3, NAN, INF, "1", None],
            "momentum": [0.0, 1.0, -0.5, 1.5, NAN, "0.9", None],
            "warmup_steps": [-1, 2.5, "10", None],
            "r": [-1.0, NAN, INF, None],
            "weight_lr_power": [-2.0, NAN, None],
        }.items()
        for v in vals
    ],
    *[
        _bad("MARSCorrection", arg, v)
        for arg, vals in {"beta": _BETA, "scaling": [-1.0, NAN, INF, "0.025", None], "max_norm": [0.0, -1.0, NAN, "1"], "tensorwise": _BOOL}.items()
        for v in vals
    ],
    *[_bad("Cautious", arg, v) for arg, vals in {"normalize": _BOOL, "eps": [0, -1e-6, NAN, INF, "1e-6", None], "mode": ["zeros", "negate", "Zero", None, 0]}.items() for v in vals],
    _bad("Cautious", "normalize", True, mode="grad"),
    _bad("Cautious", "normalize", True, mode="backtrack"),
]
