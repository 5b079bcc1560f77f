"""Turning what a clipping module measured into a few scalar statistics, on device."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from .norms import is_dtensor

__all__ = ["summarize_norm_scaling"]


def _full(t: Tensor) -> Tensor:
    return t.full_tensor() if is_dtensor(t) else t  # sharded (FSDP2) norms: read only when logged


def _flat(parts: Sequence[Tensor] | Tensor) -> Tensor:
    if isinstance(parts, Tensor):
        return _full(parts).reshape(-1).float()
    return torch.cat([_full(p).reshape(-1).float() for p in parts]) if parts else torch.zeros(0)


def summarize_norm_scaling(raw: Mapping[str, Sequence[Tensor] | Tensor], is_global: bool) -> dict[str, Tensor]:
    """Statistics of a step that scaled slices by a factor computed from their norms.

    Args:
        raw: ``"norm"``: the norms measured before scaling; ``"factor"``: the factors applied
            (tensors or lists of tensors, any shapes; flattened and concatenated).
        is_global: one norm for everything (``dim="global"``, ``tensorwise=False``).

    Returns:
        For a global norm: ``norm`` (before), ``factor`` and ``clipped`` (1.0 if the factor was
        not 1). Otherwise: ``norm_max``, ``norm_mean`` (over slices), ``factor_min``,
        ``factor_max`` and ``clip_frac`` (fraction of slices whose factor was not 1).
        All are 0-dim float tensors, computed without a host sync.
    """
    norm, factor = _flat(raw["norm"]), _flat(raw["factor"])
    if norm.numel() == 0:
        return {}
    changed = (factor != 1).float()
    if is_global:
        return {"norm": norm[0], "factor": factor[0], "clipped": changed[0]}
    return {
        "norm_max": norm.max(),
        "norm_mean": norm.mean(),
        "factor_min": factor.min(),
        "factor_max": factor.max(),
        "clip_frac": changed.mean(),
    }
