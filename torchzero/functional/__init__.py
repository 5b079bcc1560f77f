"""Stateless multi-tensor math shared by the modules, one file per topic.

Every function works on lists of tensors (one per parameter) and makes no host sync. The
modules in ``tz.m`` fetch their state and settings and call these; users can call them
directly too, e.g. ``torchzero.functional.norms.global_norm(grads, 2)``.
"""
from . import (
    adagrad,
    adam,
    adan,
    adaptive_clipping,
    clipping,
    lion,
    momentum,
    norms,
    ops,
    orthogonalize,
    powers,
    rmsprop,
    rprop,
    stats,
    warmup,
    weight_decay,
)
from .clipping import centralize_, clip_value_, norm_factor, scale_by_norm_
from .norms import global_norm, parse_ord, reduce_dims, tensor_norm, tensor_norms

__all__ = [
    "parse_ord",
    "reduce_dims",
    "tensor_norm",
    "tensor_norms",
    "global_norm",
    "norm_factor",
    "scale_by_norm_",
    "clip_value_",
    "centralize_",
    "adagrad",
    "adam",
    "adan",
    "adaptive_clipping",
    "clipping",
    "lion",
    "momentum",
    "norms",
    "ops",
    "orthogonalize",
    "powers",
    "rmsprop",
    "rprop",
    "stats",
    "warmup",
    "weight_decay",
]
