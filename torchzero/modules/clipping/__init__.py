"""Gradient and update clipping, normalization and centralization."""
from .clipping import (
    Centralize,
    ClipNorm,
    ClipValue,
    Normalize,
    clip_grad_norm_,
    clip_grad_value_,
    normalize_grads_,
)
from .ema_clipping import ClipNormByEMA, ClipValueByEMA, NormalizeByEMA
from .growth_clipping import ClipNormGrowth, ClipValueGrowth
from .adaptive import AGC, AutoClip, SpikeClip, ZClip
from .guards import SkipNonFinite, SkipOnSpike

__all__ = [
    "Centralize",
    "ClipNorm",
    "ClipNormByEMA",
    "ClipNormGrowth",
    "ClipValue",
    "ClipValueByEMA",
    "ClipValueGrowth",
    "Normalize",
    "NormalizeByEMA",
    "clip_grad_norm_",
    "clip_grad_value_",
    "normalize_grads_",
    "AGC",
    "AutoClip",
    "ZClip",
    "SpikeClip",
    "SkipNonFinite",
    "SkipOnSpike",
]
