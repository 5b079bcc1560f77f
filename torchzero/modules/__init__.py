"""All modules, available as ``tz.m.<Name>``."""
from ..core.chain import Chain
from .adaptive import Adam
from .clipping import (
    Centralize,
    ClipNorm,
    ClipNormByEMA,
    ClipNormGrowth,
    ClipValue,
    ClipValueByEMA,
    ClipValueGrowth,
    Normalize,
    NormalizeByEMA,
    clip_grad_norm_,
    clip_grad_value_,
    normalize_grads_,
)
from .step_size import LR

__all__ = [
    "Chain",
    "Adam",
    "LR",
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
]
