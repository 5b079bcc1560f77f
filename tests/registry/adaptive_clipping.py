"""Registry entries for the adaptive clipping modules (AGC, AutoClip, ZClip, SpikeClip) and the
step guards (SkipNonFinite, SkipOnSpike)."""
from __future__ import annotations

import math

import torchzero as tz

from . import BadArg, Case


def _spam():
    adam = tz.m.Adam()
    return [tz.m.SpikeClip(theta=2.0, warmup=1, source=adam), adam]


def _both(cls_name: str, **kw) -> dict:
    """``make`` and ``make_grad`` of a case that supports ``target="grad"``."""
    cls = getattr(tz.m, cls_name)
    return dict(make=lambda: cls(**kw), target_grad=True, make_grad=lambda: cls(**kw, target="grad"))


CASES = [
    Case("AGC", covers=("AGC",), stateful=False, **_both("AGC")),
    Case("AGC-tensorwise", covers=("AGC",), stateful=False, **_both("AGC", clipping=0.1, dim=None)),
    Case("AGC-global", covers=("AGC",), stateful=False, **_both("AGC", clipping=0.1, dim="global")),
    Case("AutoClip", covers=("AutoClip",), **_both("AutoClip")),
    Case("AutoClip-short-history", covers=("AutoClip",), **_both("AutoClip", percentile=50, history=2)),
    Case("ZClip", covers=("ZClip",), **_both("ZClip", warmup_steps=2)),
    Case("ZClip-percentile-nocap", covers=("ZClip",), **_both("ZClip", warmup_steps=1, mode="percentile", max_grad_norm=None, z_thresh=0.5)),
    Case("ZClip-mean-skipstats", covers=("ZClip",), make=lambda: tz.m.ZClip(0.5, 0.1, None, warmup_steps=2, clip_option="mean", skip_update_on_spike=True)),
    Case("SpikeClip", covers=("SpikeClip",), **_both("SpikeClip", theta=2.0, warmup=1)),
    Case("SpikeClip-source", _spam, ("SpikeClip",)),
    Case("SkipNonFinite", lambda: tz.m.SkipNonFinite(), ("SkipNonFinite",), stateful=False),
    Case("SkipOnSpike", lambda: tz.m.SkipOnSpike(sigma=1.0, window=3, warmup=2, max_consecutive=None), ("SkipOnSpike",)),
    Case("SkipNonFinite-SkipOnSpike", lambda: [tz.m.SkipNonFinite(), tz.m.SkipOnSpike(warmup=2)], ("SkipNonFinite", "SkipOnSpike")),
]

NAN, INF = math.nan, math.inf


def _bad(cls_name: str, arg: str, value) -> BadArg:
    def make():
        return getattr(tz.m, cls_name)(**{arg: value})

    return BadArg(f"{cls_name}-{arg}={value!r}", make, (ValueError, TypeError), rf"{cls_name}.*{arg}")


def _matrix(cls_name: str, args: dict[str, list]) -> list[BadArg]:
    return [_bad(cls_name, a, v) for a, vals in args.items() for v in vals]


_POS = [0, -1.0, NAN, INF, "1", True]  # must be a finite number > 0
_NONNEG = [-1.0, NAN, INF, "1", None]
_BETA = [-0.1, 1.0, NAN, "0.9", None]
_BOOL = [1, "yes", None]
_TARGET = ["gradient", "updates", None, 1]

BAD_ARGS = [
    *_matrix("AGC", {"clipping": [0, -0.01, NAN, INF, "0.01", True], "eps": [*_POS, None], "dim": ["glob", 1.5, [0, "a"], True], "inverse_dims": _BOOL, "target": _TARGET}),
    *_matrix("AutoClip", {"percentile": [-1, 100.5, NAN, INF, "10", None], "history": [0, -5, 10.0, "1000", None, True], "target": _TARGET}),
    *_matrix(
        "ZClip",
        {
            "alpha": _BETA,
            "z_thresh": [*_POS, None],
            "max_grad_norm": [-1.0, NAN, INF, "1"],
            "eps": _NONNEG,
            "warmup_steps": [0, -1, 2.5, "25", None],
            "mode": ["z", "ZSCORE", None, 1],
            "clip_option": ["adaptive", "max", None],
            "clip_factor": [*_POS, None],
            "skip_update_on_spike": _BOOL,
            "target": _TARGET,
        },
    ),
    *_matrix("SpikeClip", {"theta": [*_POS, None], "beta": _BETA, "warmup": [-1, 1.5, "20", None], "source": ["Adam", 1, object()], "target": _TARGET}),
    *_matrix("SkipNonFinite", {"max_consecutive": [-1, 1.5, "3", NAN, True]}),
    *_matrix("SkipOnSpike", {"sigma": [*_POS, None], "window": [1, 0, -3, 64.0, "128", None], "warmup": [1, 0, 2.5, "32", None], "max_consecutive": [-1, 2.5, "10", INF]}),
]
