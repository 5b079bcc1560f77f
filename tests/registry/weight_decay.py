"""Registry entries for the weight decay family: WeightDecay, DirectWeightDecay."""
from __future__ import annotations

import math

import torch

import torchzero as tz

from . import BadArg, Case

NAN, INF = math.nan, math.inf

CASES = [
    Case("WeightDecay-coupled", lambda: [tz.m.WeightDecay(0.1), tz.m.HeavyBall()], ("WeightDecay",), stateful=True),
    Case("WeightDecay-decoupled", lambda: [tz.m.Adam(), tz.m.WeightDecay(0.1)], ("WeightDecay",)),
    Case("WeightDecay", lambda: tz.m.WeightDecay(0.1), ("WeightDecay",), stateful=False, target_grad=True, make_grad=lambda: tz.m.WeightDecay(0.1, target="grad")),
    Case("WeightDecay-l1", lambda: tz.m.WeightDecay(0.05, ord=1), ("WeightDecay",), stateful=False, target_grad=True, make_grad=lambda: tz.m.WeightDecay(0.05, ord=1, target="grad")),
    Case("WeightDecay-ord3", lambda: tz.m.WeightDecay(0.05, ord=3), ("WeightDecay",), stateful=False),
    Case("DirectWeightDecay", lambda: tz.m.DirectWeightDecay(0.01), ("DirectWeightDecay",), stateful=False),
    Case("DirectWeightDecay-l1-adam", lambda: [tz.m.DirectWeightDecay(0.01, ord=1), tz.m.Adam()], ("DirectWeightDecay",)),
    Case("DirectWeightDecay-ord1.5", lambda: tz.m.DirectWeightDecay(0.01, ord=1.5), ("DirectWeightDecay",), stateful=False),
]


def _bad(cls_name: str, arg: str, value, **other) -> BadArg:
    kwargs = {"weight_decay": 0.1, **other, arg: value}

    def make():
        return getattr(tz.m, cls_name)(**kwargs)

    return BadArg(f"{cls_name}-{arg}={value!r}", make, (ValueError, TypeError), rf"{cls_name}.*{arg}")


_WD = [-1e-4, NAN, INF, -INF, "0.1", None, True, [0.1]]
_ORD = [0, 0.5, -1, NAN, INF, "l2", "fro", None, True, torch.tensor(0.5)]

BAD_ARGS = [
    *[_bad(cls, arg, v) for cls in ("WeightDecay", "DirectWeightDecay") for arg, vals in {"weight_decay": _WD, "ord": _ORD}.items() for v in vals],
    *[_bad("WeightDecay", "target", v) for v in ["gradient", "param", None, 2]],
]
