"""Stateless multi-tensor math of the adaptive clipping modules and step guards.

The modules in ``torchzero/modules/clipping/adaptive.py`` and ``guards.py`` keep the state and
call these functions. Nothing here makes a host sync: every decision ("is this a spike", "is the
norm above the threshold") is a 0-dim tensor combined with ``torch.where``, so the values a
function returns (norms, thresholds, factors, z-scores, flags) can be logged without slowing the
step down. Functions whose name ends in ``_`` modify their first argument in place; the others
return new tensors and never modify their inputs (state tensors may be shared between several
parameters' state dicts, so they are replaced, never written in place).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple, Union

import torch
from torch import Tensor

from .clipping import _local, norm_factor
from .norms import Dim, global_norm, has_dtensor, reduce_dims, tensor_norm, tensor_norms

__all__ = [
    "MIN_REL_STD",
    "unit_norms",
    "agc_",
    "push_history",
    "history_values",
    "filled",
    "percentile_threshold",
    "ZClipThreshold",
    "zclip_threshold",
    "ema_mean_var",
    "scale_to_norm_",
    "spike_clip_",
    "ema_sq_",
    "norm_zscore",
    "all_finite",
]

Scalars = Union[float, Sequence[float]]

MIN_REL_STD = 0.1
""":func:`norm_zscore`'s default floor on the standard deviation, as a fraction of the mean: when
the norms have (nearly) stopped varying (full-batch training near a minimum), a rise of a few
percent is not a spike; with ``sigma=6`` a norm must exceed 1.6 times the mean to be one."""


def _values(x: Scalars, n: int) -> list[float]:
    if isinstance(x, (int, float)):
        return [float(x)] * n
    out = [float(v) for v in x]
    if len(out) != n:
        raise ValueError(f"expected {n} values, one per tensor, got {len(out)}")
    return out


def _as_input(x: Scalars, n: int, like: Tensor) -> float | Tensor:
    """One number as is; one number per tensor as a tensor of ``like``'s dtype and device."""
    if isinstance(x, (int, float)):
        return float(x)
    vals = _values(x, n)
    if all(v == vals[0] for v in vals):
        return vals[0]
    return torch.tensor(vals, dtype=like.dtype, device=like.device)


# --------------------------------------------------------------------------------------- AGC
def _unit_dims(t: Tensor, dim: int | Sequence[int] | None, inverse_dims: bool) -> tuple[int, ...] | None:
    """Dims a unit's norm reduces over; ``None`` when the whole tensor is one unit."""
    dims = reduce_dims(t.shape, dim, inverse_dims, min_size=0)
    if dims is None or len(dims) == max(t.ndim, 1):
        return None
    return dims


def unit_norms(tensors: Sequence[Tensor], dim: int | Sequence[int] | None, inverse_dims: bool) -> list[Tensor]:
    """The L2 norm of every unit of every tensor, with the reduced dims kept.

    A unit is the slice of a tensor that ``dim``/``inverse_dims`` reduce over (as in
    :func:`~torchzero.functional.norms.reduce_dims`); a tensor that has no dims left to reduce
    (a 0-dim or 1-D tensor with ``dim=0, inverse_dims=True``) is one unit, and so is one whose
    every dim is reduced. Whole-tensor norms are computed in one multi-tensor kernel and returned
    as 0-dim tensors. Norms of float16/bfloat16 tensors are float32.
    """
    tensors = list(tensors)
    out: list[Tensor] = [None] * len(tensors)  # type: ignore[list-item]
    whole: list[int] = []
    for i, t in enumerate(tensors):
        dims = _unit_dims(t, dim, inverse_dims)
        if dims is None:
            whole.append(i)
        else:
            out[i] = tensor_norm(t, 2.0, dims, keepdim=True)
    if whole:
        for i, n in zip(whole, tensor_norms([tensors[i] for i in whole], 2.0)):
            out[i] = n
    return out


def _agc_factor(g: Tensor, w: Tensor, clipping: float | Tensor, eps: float | Tensor) -> Tensor:
    allowed = torch.clamp_min(w, eps) if not isinstance(eps, Tensor) else torch.maximum(w, eps)
    allowed = allowed * clipping
    # a non-finite norm is left alone (as norm_factor does): it must not zero its unit
    return torch.where((g > allowed) & torch.isfinite(g), allowed / g, 1.0)


def agc_(
    tensors: Sequence[Tensor],
    params: Sequence[Tensor],
    clipping: Scalars,
    eps: Scalars,
    dim: Dim = 0,
    inverse_dims: bool = True,
    stats: dict[str, list[Tensor]] | None = None,
) -> list[Tensor]:
    r"""Unit-wise adaptive gradient clipping (Brock et al., 2021) of ``tensors``, in place.

    For every unit $i$ (see :func:`unit_norms`; ``dim="global"``: all tensors form one unit):
    $G_i \leftarrow G_i \cdot \min\left(1, \lambda \frac{\max(\|W_i\|, \epsilon)}{\|G_i\|}\right)$,
    where $G$ are ``tensors`` and $W$ the matching ``params``.

    Args:
        tensors: the gradients (or updates) to clip in place.
        params: the parameters, one per tensor, same shapes.
        clipping: $\lambda$, one value or one per tensor.
        eps: $\epsilon$, one value or one per tensor.
        dim: the units, as in :func:`unit_norms`, or ``dim="global"``.
        inverse_dims: as in :func:`unit_norms`.
        stats: if given, the measured unit norms of ``tensors`` and the applied factors are
            appended (tensors, no copies) to ``stats["norm"]`` and ``stats["factor"]``.

    Returns:
        The factor applied to each tensor (keepdim per-unit factors, 0-dim for whole-tensor
        units; with ``"global"`` the same 0-dim factor for every tensor).
    """
    tensors = list(tensors)
    params = [p.detach() for p in params]
    n = len(tensors)
    if n == 0:
        return []
    if dim == "global":
        g = global_norm(tensors, 2.0)
        w = global_norm(params, 2.0).to(g.dtype)
        f = _agc_factor(g, w, _values(clipping, n)[0], _values(eps, n)[0])
        torch._foreach_mul_(tensors, f)
        if stats is not None:
            stats.setdefault("norm", []).append(g)
            stats.setdefault("factor", []).append(f)
        return [f] * n
    gn = unit_norms(tensors, dim, inverse_dims)  # type: ignore[arg-type]
    wn = unit_norms(params, dim, inverse_dims)  # type: ignore[arg-type]
    if has_dtensor(tensors):
        # sharded (FSDP2): unit norms are DTensors; factors per tensor, applied shard by shard
        cs, es = _values(clipping, n), _values(eps, n)
        factors = [_agc_factor(g, w.to(g.dtype), c, e) for g, w, c, e in zip(gn, wn, cs, es)]
        for t, f in zip(tensors, factors):
            _local(t).mul_(_local(f.to(t.dtype)))
        if stats is not None:
            stats.setdefault("norm", []).extend(gn)
            stats.setdefault("factor", []).extend(factors)
        return factors
    # all units of all tensors in one vector: the factors take a few kernels, not a few per tensor
    dtype = torch.float64 if any(x.dtype == torch.float64 for x in gn) else torch.float32
    counts = [x.numel() for x in gn]
    g = torch.cat([x.reshape(-1).to(dtype) for x in gn])
    w = torch.cat([x.reshape(-1).to(dtype) for x in wn])
    f = _agc_factor(g, w, _per_unit(clipping, counts, g), _per_unit(eps, counts, g))
    factors = [part.view(x.shape) for part, x in zip(f.split(counts), gn)]
    torch._foreach_mul_(tensors, factors)
    if stats is not None:
        stats.setdefault("norm", []).append(g)
        stats.setdefault("factor", []).append(f)
    return factors


def _per_unit(x: Scalars, counts: list[int], like: Tensor) -> float | Tensor:
    """One number as is; one number per tensor repeated for each of its units, as a tensor."""
    v = _as_input(x, len(counts), like)
    if isinstance(v, float):
        return v
    # output_size given: no device-to-host read of the repeats
    return torch.repeat_interleave(v, torch.tensor(counts, device=v.device), output_size=sum(counts))


# ----------------------------------------------------------------------------- norm histories
def push_history(buf: Tensor | None, value: Tensor, count: int, size: int) -> tuple[Tensor, int]:
    """Pushes ``value`` into a ring buffer of ``size`` values; returns the new buffer and count.

    ``count`` is the number of values pushed so far (a Python int, so no host sync): the buffer
    holds the last ``min(count, size)`` of them, the next one goes to position ``count % size``.
    The result is a new tensor; ``buf`` is not modified (it may be shared by several state dicts).
    ``None`` starts a new buffer (zeros) of ``value``'s dtype and device. A ``buf`` of another size
    (the size setting changed) is first re-laid out, keeping the newest values, oldest first,
    and ``count`` restarts at their number.
    """
    if buf is None:
        new = torch.zeros((size,), dtype=value.dtype, device=value.device)
        count = 0
    elif buf.numel() != size:
        kept = history_values(buf, count)[-size:]
        new = torch.zeros((size,), dtype=buf.dtype, device=buf.device)
        new[: kept.numel()] = kept
        count = kept.numel()
    else:
        new = buf.clone()
    new[count % size] = value.to(new.dtype)
    return new, count + 1


def history_values(buf: Tensor, count: int) -> Tensor:
    """The values held by a ring buffer after ``count`` pushes, oldest first."""
    size = buf.numel()
    if count <= size:
        return buf[:count]
    start = count % size
    return torch.cat([buf[start:], buf[:start]])


def filled(buf: Tensor, count: int) -> Tensor:
    """The values held by a ring buffer after ``count`` pushes, in storage order (cheaper than
    :func:`history_values` when the order does not matter)."""
    return buf[: min(count, buf.numel())]


def percentile_threshold(values: Tensor, percentile: float) -> Tensor:
    """The ``percentile``-th percentile (0..100, linear interpolation, as ``numpy.percentile``)
    of ``values``; NaN values are ignored."""
    return torch.nanquantile(values, percentile / 100.0)


# ---------------------------------------------------------------------------------------- ZClip
class ZClipThreshold(NamedTuple):
    """What :func:`zclip_threshold` measured (all 0-dim tensors)."""

    threshold: Tensor
    """The adaptive threshold (only meaningful where ``spike``)."""
    zscore: Tensor
    """$z = (g - \\mu) / (\\sigma + \\epsilon)$."""
    spike: Tensor
    """Boolean: the norm is an outlier and is clipped to ``threshold``."""


def zclip_threshold(
    norm: Tensor,
    mean: Tensor,
    var: Tensor,
    z_thresh: float,
    eps: float,
    mode: str = "zscore",
    clip_option: str = "adaptive_scaling",
    clip_factor: float = 1.0,
) -> ZClipThreshold:
    r"""ZClip's spike test and threshold (Kumar et al., 2025) for a norm $g$.

    With $\sigma = \sqrt{\text{var}}$ and $z = (g - \mu)/(\sigma + \epsilon)$:

    - ``mode="zscore"``: a spike is $z > z_{thr}$; the threshold is
      $c\,(\mu + z_{thr}^2 \sigma / z)$ (``clip_option="adaptive_scaling"``, $c$ = ``clip_factor``)
      or $\mu$ (``"mean"``).
    - ``mode="percentile"``: the threshold is $\mu + z_{thr}\sigma$ and a spike is $g$ above it.
    """
    std = var.sqrt()
    z = (norm - mean) / (std + eps)
    if mode == "percentile":
        thr = mean + z_thresh * std
        return ZClipThreshold(thr, z, norm > thr)
    spike = z > z_thresh
    if clip_option == "mean":
        thr = mean
    else:
        thr = (mean + (z_thresh * z_thresh) * std / z) * clip_factor
    return ZClipThreshold(thr, z, spike)


def ema_mean_var(mean: Tensor, var: Tensor, value: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    r"""$\mu' = \alpha\mu + (1-\alpha)x$, $v' = \alpha v + (1-\alpha)(x - \mu')^2$ (new tensors)."""
    new_mean = alpha * mean + (1 - alpha) * value
    new_var = alpha * var + (1 - alpha) * (value - new_mean) ** 2
    return new_mean, new_var


def scale_to_norm_(tensors: Sequence[Tensor], norm: Tensor, max_norm: Tensor | float | None) -> Tensor:
    r"""Scales ``tensors`` (whose joint norm is ``norm``) by $\min(1, \mathtt{max\_norm}/\text{norm})$
    in place and returns that factor (1 where ``norm`` is at most ``1e-12`` or ``max_norm`` is None)."""
    f = norm_factor(norm, max_norm, "clip")
    torch._foreach_mul_(list(tensors), f)
    return f


# ------------------------------------------------------------------------------------ SpikeClip
def spike_clip_(tensors: Sequence[Tensor], exp_avg_sq: Sequence[Tensor], theta: Scalars, count: bool = False) -> Tensor | None:
    r"""SPAM's spike-aware clipping (Huang et al., 2025), elementwise and in place:
    where $g^2 > \theta v$, $g \leftarrow \operatorname{sign}(g)\sqrt{\theta v}$.

    That is $g \leftarrow \operatorname{clamp}(g, -\sqrt{\theta v}, \sqrt{\theta v})$, which is how
    it is computed (five multi-tensor kernels, no masks). ``theta`` is one value or one per tensor.
    With ``count=True`` it also returns the number of clipped elements (a 0-dim tensor; one more
    pass over the data), else None.
    """
    tensors = list(tensors)
    if not tensors:
        return torch.zeros(()) if count else None
    th = theta if isinstance(theta, (int, float)) else _values(theta, len(tensors))
    bound = torch._foreach_mul(list(exp_avg_sq), th)
    torch._foreach_sqrt_(bound)
    n_clipped = torch.stack([(t.abs() > b).sum() for t, b in zip(tensors, bound)]).sum() if count else None
    torch._foreach_clamp_max_(tensors, bound)
    torch._foreach_neg_(bound)
    torch._foreach_clamp_min_(tensors, bound)
    return n_clipped


def ema_sq_(exp_avg_sq: Sequence[Tensor], tensors: Sequence[Tensor], beta: Scalars) -> None:
    r"""$v \leftarrow \beta v + (1-\beta) g^2$ in place; ``beta`` is one value or one per tensor."""
    exp_avg_sq = list(exp_avg_sq)
    if not exp_avg_sq:
        return
    if isinstance(beta, (int, float)):
        torch._foreach_mul_(exp_avg_sq, beta)
        torch._foreach_addcmul_(exp_avg_sq, list(tensors), list(tensors), 1 - beta)
    else:
        b = _values(beta, len(exp_avg_sq))
        torch._foreach_mul_(exp_avg_sq, b)
        torch._foreach_addcmul_(exp_avg_sq, list(tensors), list(tensors), [1 - x for x in b])


# ---------------------------------------------------------------------------------------- guards
def norm_zscore(norm: Tensor, window: Tensor, min_rel_std: float = MIN_REL_STD) -> Tensor:
    r"""$z = (g - \mu) / \max(\sigma, r\mu)$ of ``norm`` against the values in ``window``.

    $\mu$ and $\sigma$ are the mean and the unbiased standard deviation of the values in
    ``window`` (at least two), $r$ = ``min_rel_std``.
    """
    mean = window.mean()
    std = window.std()
    return (norm.to(window.dtype) - mean) / torch.maximum(std, min_rel_std * mean)


def all_finite(tensors: Sequence[Tensor]) -> Tensor:
    """A 0-dim boolean tensor: no element of ``tensors`` is NaN or infinite (no host sync).

    Computed from each tensor's max-abs (NaN propagates through it) in one multi-tensor kernel
    per dtype.
    """
    by_dtype: dict[torch.dtype, list[Tensor]] = {}
    for t in tensors:
        if t.numel() > 0:
            by_dtype.setdefault(t.dtype, []).append(t)
    flags = [torch.isfinite(torch.stack(torch._foreach_norm(ts, math.inf))).all() for ts in by_dtype.values()]
    if not flags:
        return torch.ones((), dtype=torch.bool)
    return flags[0] if len(flags) == 1 else torch.stack(flags).all()
