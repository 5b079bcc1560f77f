"""Registry entries for sharpness-aware minimization: SAM, ASAM (they take the closure)."""
from __future__ import annotations

import math

import torchzero as tz

from . import BadArg, Case

NAN, INF = math.nan, math.inf

CASES = [
    Case("SAM", lambda: tz.m.SAM(), ("SAM",), needs_closure=True),
    Case("SAM-p3-Adam", lambda: [tz.m.SAM(0.1, p=3), tz.m.Adam()], ("SAM",), needs_closure=True),
    Case("SAM-pinf-asam", lambda: tz.m.SAM(0.01, p=INF, asam=True, eta=0.1), ("SAM",), needs_closure=True),
    Case("ASAM", lambda: tz.m.ASAM(), ("ASAM",), needs_closure=True),
]


def _bad(cls_name: str, arg: str, value) -> BadArg:
    def make():
        return getattr(tz.m, cls_name)(**{arg: value})

    return BadArg(f"{cls_name}-{arg}={value!r}", make, (ValueError, TypeError), rf"{cls_name}.*{arg}")


BAD_ARGS = [
    *[
        _bad(cls, arg, v)
        for cls in ("SAM", "ASAM")
        for arg, vals in {
            "rho": [-0.1, NAN, INF, "0.05", None],
            "p": [1, 0.5, -2, NAN, "2", None],
            "eps": [-1e-10, NAN, INF, None],
            "eta": [-0.01, NAN, INF, None],
        }.items()
        for v in vals
    ],
    *[_bad("SAM", "asam", v) for v in (1, "yes", None)],
]
