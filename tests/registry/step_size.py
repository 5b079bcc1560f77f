"""Registry entries for the step size family (LR is in core_modules.py): StepSize, Warmup, WarmupNormClip."""
from __future__ import annotations

import math

import torch

import torchzero as tz

from . import BadArg, Case

NAN, INF = math.nan, math.inf

CASES = [
    Case("StepSize", lambda: tz.m.StepSize(0.5), ("StepSize",), stateful=False),
    Case("StepSize-key", lambda: [tz.m.StepSize(0.5, key="a"), tz.m.Adam(), tz.m.StepSize(2.0, key="b")], ("StepSize",)),
    # few warmup steps, so the 7 steps of the generic tests cross the end of warmup
    Case("Warmup", lambda: tz.m.Warmup(steps=4, start_lr=0.1, end_lr=1.0), ("Warmup",)),
    Case("Warmup-defaults-adam", lambda: [tz.m.Adam(), tz.m.Warmup()], ("Warmup",)),
    Case("WarmupNormClip", lambda: tz.m.WarmupNormClip(steps=4, start_norm=0.01, end_norm=1.0), ("WarmupNormClip",)),
    Case("WarmupNormClip-defaults-heavyball", lambda: [tz.m.HeavyBall(), tz.m.WarmupNormClip()], ("WarmupNormClip",)),
]


def _bad(cls_name: str, arg: str, value, **other) -> BadArg:
    kwargs = {**other, arg: value}

    def make():
        return getattr(tz.m, cls_name)(**kwargs)

    return BadArg(f"{cls_name}-{arg}={value!r}", make, (ValueError, TypeError), rf"{cls_name}.*{arg}")


_STEPS = [-1, 1.5, 100.0, NAN, "100", None, True]
_NONNEG = [-1e-5, NAN, INF, "1", None, torch.tensor(-1.0)]

BAD_ARGS = [
    *[_bad("StepSize", "step_size", v) for v in [-0.1, NAN, INF, -INF, "1", None, True]],
    *[_bad("StepSize", "key", v, step_size=0.1) for v in ["", "params", None, 1, ("a",)]],
    *[_bad("Warmup", arg, v) for arg, vals in {"steps": _STEPS, "start_lr": _NONNEG, "end_lr": _NONNEG}.items() for v in vals],
    *[_bad("WarmupNormClip", arg, v) for arg, vals in {"steps": _STEPS, "start_norm": _NONNEG, "end_norm": _NONNEG}.items() for v in vals],
]
