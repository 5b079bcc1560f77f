"""Stateless multi-tensor math shared by the modules: norms and clipping kernels."""
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
]
