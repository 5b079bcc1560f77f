"""Registry entries for LR, Adam and the clipping modules of the core."""
from __future__ import annotations

import math

import torchzero as tz

from . import BadArg, Case

CASES = [
    Case("LR", lambda: tz.m.LR(0.5), ("LR",), stateful=False),
    Case("Adam", lambda: tz.m.Adam(), ("Adam",)),
    Case("Adam-amsgrad-inner", lambda: tz.m.Adam(amsgrad=True, pow=3, inner=tz.m.ClipNorm(1.0)), ("Adam",)),
    Case("ClipValue", lambda: tz.m.ClipValue(0.1), ("ClipValue",), stateful=False, target_grad=True, make_grad=lambda: tz.m.ClipValue(0.1, target="grad")),
    Case("ClipNorm", lambda: tz.m.ClipNorm(0.5), ("ClipNorm",), stateful=False, target_grad=True, make_grad=lambda: tz.m.ClipNorm(0.5, target="grad")),
    Case("ClipNorm-global", lambda: tz.m.ClipNorm(0.5, dim="global"), ("ClipNorm",), stateful=False, target_grad=True, make_grad=lambda: tz.m.ClipNorm(0.5, dim="global", target="grad")),
    Case("ClipNorm-dims-linf", lambda: tz.m.ClipNorm(0.5, ord="linf", dim=0, inverse_dims=True), ("ClipNorm",), stateful=False),
    Case("Normalize", lambda: tz.m.Normalize(), ("Normalize",), stateful=False, target_grad=True, make_grad=lambda: tz.m.Normalize(target="grad")),
    Case("Normalize-global-mad", lambda: tz.m.Normalize(2.0, ord="mad", dim="global"), ("Normalize",), stateful=False),
    Case("Centralize", lambda: tz.m.Centralize(dim=0, inverse_dims=True), ("Centralize",), stateful=False, target_grad=True, make_grad=lambda: tz.m.Centralize(dim=0, inverse_dims=True, target="grad")),
    Case("Centralize-global", lambda: tz.m.Centralize(dim="global"), ("Centralize",), stateful=False),
    Case("ClipNormByEMA", lambda: tz.m.ClipNormByEMA(), ("ClipNormByEMA",), target_grad=True, make_grad=lambda: tz.m.ClipNormByEMA(target="grad")),
    Case("ClipNormByEMA-global-inner", lambda: tz.m.ClipNormByEMA(0.9, tensorwise=False, ema_init="update", inner=tz.m.Adam()), ("ClipNormByEMA",)),
    Case("NormalizeByEMA", lambda: tz.m.NormalizeByEMA(max_ema_growth=None), ("NormalizeByEMA",), target_grad=True, make_grad=lambda: tz.m.NormalizeByEMA(max_ema_growth=None, target="grad")),
    Case("ClipValueByEMA", lambda: tz.m.ClipValueByEMA(ema_init="update", ema_tfm=tz.m.LR(2.0)), ("ClipValueByEMA",), target_grad=True, make_grad=lambda: tz.m.ClipValueByEMA(ema_init="update", ema_tfm=tz.m.LR(2.0), target="grad")),
    Case("ClipValueGrowth", lambda: tz.m.ClipValueGrowth(add=0.1), ("ClipValueGrowth",), target_grad=True, make_grad=lambda: tz.m.ClipValueGrowth(add=0.1, target="grad")),
    Case("ClipNormGrowth", lambda: tz.m.ClipNormGrowth(), ("ClipNormGrowth",), target_grad=True, make_grad=lambda: tz.m.ClipNormGrowth(target="grad")),
    Case("ClipNormGrowth-global", lambda: tz.m.ClipNormGrowth(add=0.5, mul=None, parameterwise=False), ("ClipNormGrowth",)),
]

NAN, INF = math.nan, math.inf


def _bad(cls_name: str, arg: str, kwargs: dict, exc=(ValueError, TypeError), positional: tuple = ()) -> BadArg:
    def make():
        return getattr(tz.m, cls_name)(*positional, **kwargs)

    return BadArg(f"{cls_name}-{arg}={kwargs[arg]!r}", make, exc, rf"{cls_name}.*{arg}")


def _matrix(cls_name: str, args: dict[str, list], positional: tuple = ()) -> list[BadArg]:
    return [_bad(cls_name, a, {a: v}, positional=positional) for a, vals in args.items() for v in vals]


_NUM = [NAN, INF, "1", None]
_NONNEG = [-1.0, NAN, INF, "1", None]
_BETA = [-0.1, 1.0, 1.5, NAN, "0.9", None]
_ORD = [NAN, "l7", "fro", None, [2], True]
_DIM = ["glob", 1.5, [0, "a"], True]
_BOOL = [1, "yes", None]
_TARGET = ["gradient", "updates", None, 1]

BAD_ARGS = [
    *_matrix("LR", {"lr": [-1e-3, *_NUM]}),
    *_matrix("Adam", {"beta1": _BETA, "beta2": _BETA, "eps": [-1e-8, NAN, INF, "x"], "alpha": [NAN, INF, "1"], "pow": [0, -2, NAN, "2"], "amsgrad": _BOOL, "debiased": _BOOL}),
    *[_bad("ClipValue", "value", {"value": v}) for v in _NONNEG],
    *[_bad("ClipValue", "target", {"value": 1.0, "target": v}) for v in _TARGET],
    *[_bad("ClipNorm", "max_norm", {"max_norm": v}) for v in _NONNEG],
    *[_bad("ClipNorm", a, {"max_norm": 1.0, a: v}) for a, vals in {"ord": _ORD, "dim": _DIM, "inverse_dims": _BOOL, "min_size": [-1, 1.5, "2", None], "target": _TARGET}.items() for v in vals],
    *[_bad("Normalize", a, {a: v}) for a, vals in {"norm_value": _NONNEG, "ord": _ORD, "dim": _DIM, "inverse_dims": _BOOL, "min_size": [-1, 0.5], "target": _TARGET}.items() for v in vals],
    *[_bad("Centralize", a, {a: v}) for a, vals in {"dim": _DIM, "inverse_dims": _BOOL, "min_size": [-2, 2.5, "2"], "target": _TARGET}.items() for v in vals],
    *[
        _bad(cls, a, {a: v})
        for cls in ("ClipNormByEMA", "NormalizeByEMA")
        for a, vals in {
            "beta": _BETA,
            "ord": _ORD,
            "eps": [0.0, -1e-6, NAN, INF, "1e-6"],
            "tensorwise": _BOOL,
            "max_ema_growth": [0, -1.5, NAN, INF, "1.5"],
            "ema_init": ["ones", "Zeros", None],
            "inner": ["Adam", 1],
            "target": _TARGET,
        }.items()
        for v in vals
    ],
    *[_bad("ClipValueByEMA", a, {a: v}) for a, vals in {"beta": _BETA, "ema_init": ["ones", None], "ema_tfm": ["LR", 2.0], "inner": [object()], "target": _TARGET}.items() for v in vals],
    *[
        _bad(cls, a, {a: v})
        for cls in ("ClipValueGrowth", "ClipNormGrowth")
        for a, vals in {"add": [-0.1, NAN, INF, "1"], "mul": [0, -1.5, NAN, INF, "1.5"], "min_value": [-1e-4, NAN, INF], "max_decay": [0, -2, NAN, INF], "target": _TARGET}.items()
        for v in vals
    ],
    *[_bad("ClipNormGrowth", a, {a: v}) for a, vals in {"ord": _ORD, "parameterwise": _BOOL}.items() for v in vals],
]
