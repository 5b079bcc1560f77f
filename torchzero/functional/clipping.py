"""Stateless, in-place, multi-tensor clipping kernels shared by the modules and the public functions.

Every function modifies ``tensors`` in place and never makes a host sync: decisions such as
"is the norm above the threshold" are made with ``torch.where`` / ``clamp`` on device.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from .norms import Dim, finite_probe, global_norm, has_dtensor, is_dtensor, reduce_dims, tensor_norm, tensor_norm_vector, tensor_norms

__all__ = ["TINY_NORM", "norm_factor", "scale_by_norm_", "clip_value_", "centralize_"]

TINY_NORM = 1e-12
"""A norm at or below this leaves its slice unchanged (no division by ~0)."""

Scalars = float | Sequence[float]


def norm_factor(n: Tensor, target: float | Tensor | None, mode: str, min_norm: float | Tensor | None = None) -> Tensor:
    """The factor that scales a slice of norm ``n``.

    ``mode="clip"``: ``min(1, target / n)`` (and ``max(1, min_norm / n)`` if ``min_norm``);
    ``mode="normalize"``: ``target / n``. Where ``n <= 1e-12`` or ``n`` is not finite the factor is
    1 (nothing to scale by, and one NaN or inf must not zero or poison the rest of a global group).
    """
    if mode == "normalize":
        f = target / n
    else:
        f = torch.ones_like(n) if target is None else (target / n).clamp(max=1)
        if min_norm is not None:
            f = f * (min_norm / n).clamp(min=1)
    return torch.where((n > TINY_NORM) & torch.isfinite(n), f, 1.0)


def _local(t: Tensor) -> Tensor:
    """``t`` itself, or the local shard of a DTensor (the same memory).

    A tensor and a slice statistic of it (``tensor_norm(t, ord, dims)``) are combined shard by
    shard: the statistic is replicated along the reduced dims and sharded like ``t`` elsewhere,
    so the local shards broadcast. (DTensor itself has no in-place rule for a replicated
    operand along a sharded dim of size 1.)
    """
    return t.to_local() if is_dtensor(t) else t


def _uniform(values: Scalars, n: int) -> tuple[bool, list[float]]:
    if isinstance(values, (int, float)):
        return True, [float(values)] * n
    values = [float(v) for v in values]
    if len(values) != n:
        raise ValueError(f"expected {n} values, one per tensor, got {len(values)}")
    return all(v == values[0] for v in values), values


def _as_factor_input(values: list[float], uniform: bool, like: Tensor) -> float | Tensor:
    if uniform:
        return values[0]
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def scale_by_norm_(
    tensors: Sequence[Tensor],
    target: Scalars | None,
    ord: float | str,
    dim: Dim,
    inverse_dims: bool,
    min_size: int,
    mode: str,
    min_norm: Scalars | None = None,
    stats: dict[str, list[Tensor]] | None = None,
    out: list[Tensor] | None = None,
) -> Tensor | list[Tensor]:
    """Clips (``mode="clip"``) or sets (``mode="normalize"``) the norm of each norm group in place.

    Args:
        tensors: tensors to scale in place.
        target: ``max_norm`` (clip) or ``norm_value`` (normalize); one value or one per tensor.
            ``None`` (clip only) means no upper clip.
        ord: parsed norm order (see :func:`~torchzero.functional.norms.parse_ord`).
        dim: the norm groups (see "Clipping: exact semantics" in the docs, docs/guide/clipping_semantics.md).
        inverse_dims: reduce over the dims not selected by ``dim``.
        min_size: slices with fewer elements are left unchanged.
        mode: ``"clip"`` or ``"normalize"``.
        min_norm: clip only: scale up slices whose norm is below this.
        stats: if given, the measured norms and applied factors are appended (as tensors, no
            copies) to ``stats["norm"]`` and ``stats["factor"]``.
        out: if given (an empty list), ``tensors`` are left unchanged and the results, new
            tensors, are put in ``out`` (one pass that reads the inputs, instead of a copy and an
            in-place pass).

    Returns:
        The norms measured before scaling: a 0-dim tensor for ``dim="global"``, else a list with
        one tensor per input tensor (keepdim slices norms; a tensor left unchanged reports the
        norm of all its elements).
    """
    tensors = list(tensors)
    n_t = len(tensors)
    if out is not None:
        out[:] = [None] * n_t
    if n_t == 0:
        return torch.zeros(()) if dim == "global" else []
    uni_t, targets = _uniform(target, n_t) if target is not None else (True, [None] * n_t)  # type: ignore[list-item]
    uni_m, mins = _uniform(min_norm, n_t) if min_norm is not None else (True, [None] * n_t)  # type: ignore[list-item]

    if dim == "global":
        n = global_norm(tensors, ord)
        t_in = None if target is None else _as_factor_input(targets, uni_t, n)
        m_in = None if min_norm is None else _as_factor_input(mins, uni_m, n)
        f = norm_factor(n, t_in, mode, m_in)
        if stats is not None:
            stats.setdefault("norm", []).append(n)
            stats.setdefault("factor", []).append(f)
        _mul(tensors, f if f.ndim == 0 else list(f.unbind()), out, range(n_t))
        return n

    norms: list[Tensor] = [None] * n_t  # type: ignore[list-item]
    whole: list[int] = []  # tensors normed over all of their elements: batched
    unchanged: list[int] = []  # below min_size: only measured, batched too
    for i, t in enumerate(tensors):
        if dim is None and not inverse_dims:  # the default: whole tensors (what reduce_dims says)
            (whole if t.numel() >= min_size else unchanged).append(i)
            continue
        dims = reduce_dims(t.shape, dim, inverse_dims, min_size)  # type: ignore[arg-type]
        if dims is None:
            unchanged.append(i)
        elif len(dims) == max(t.ndim, 1):
            whole.append(i)
        else:
            n = tensor_norm(t, ord, dims)
            tg = None if targets[i] is None else targets[i]
            f = norm_factor(n, tg, mode, mins[i])
            if out is not None:
                t = out[i] = t.clone()
            _local(t).mul_(_local(f.to(t.dtype)))
            if stats is not None:
                stats.setdefault("norm", []).append(n)
                stats.setdefault("factor", []).append(f)
            norms[i] = n
    if unchanged:
        for i, x in zip(unchanged, tensor_norms([tensors[i] for i in unchanged], ord)):
            norms[i] = x
    if whole:
        group = [tensors[i] for i in whole]
        stacked = tensor_norm_vector(group, ord)
        ns = stacked.unbind()
        t_in = None if target is None else _as_factor_input([targets[i] for i in whole], uni_t, stacked)
        m_in = None if min_norm is None else _as_factor_input([mins[i] for i in whole], uni_m, stacked)
        f = norm_factor(stacked, t_in, mode, m_in)
        _mul(group, list(f.unbind()), out, whole)
        if stats is not None:
            stats.setdefault("norm", []).append(stacked)
            stats.setdefault("factor", []).append(f)
        for i, x in zip(whole, ns):
            norms[i] = x
    _fill_unchanged(tensors, out)
    return norms


def _mul(tensors: list[Tensor], f: Tensor | list[Tensor], out: list[Tensor] | None, at: Iterable[int]) -> None:
    """``tensors *= f`` in place, or, with ``out``, ``out[at[k]] = tensors[k] * f[k]``."""
    if out is None:
        torch._foreach_mul_(tensors, f)
        return
    for i, t, r in zip(at, tensors, torch._foreach_mul(tensors, f)):
        # a 0-dim tensor times a 0-dim factor of a wider dtype would be promoted: keep the dtype
        out[i] = r if r.dtype == t.dtype else r.to(t.dtype)


def _fill_unchanged(tensors: list[Tensor], out: list[Tensor] | None) -> None:
    """With ``out``: copies of the tensors a function left unchanged (never the inputs themselves)."""
    if out is not None:
        for i, o in enumerate(out):
            if o is None:
                out[i] = tensors[i].clone()


#: From this many elements a tensor gets its own op, below it is batched into multi-tensor ops.
_ONE_OP_NUMEL = 1 << 16


def clip_value_(tensors: Sequence[Tensor], value: Scalars, out: list[Tensor] | None = None) -> None:
    """``t = clamp(t, -value, value)`` in place; ``value`` is one number or one per tensor.

    With ``out`` (an empty list), ``tensors`` are left unchanged and the results are put in it.
    """
    tensors = list(tensors)
    if out is not None:
        out[:] = [None] * len(tensors)
    if not tensors:
        return
    uniform, values = _uniform(value, len(tensors))
    # large tensors: one clamp each (one pass over the data); small ones: two multi-tensor clamps
    # (fewer op launches, which is what costs there)
    big = [i for i, t in enumerate(tensors) if t.numel() >= _ONE_OP_NUMEL]
    for i in big:
        t, v = tensors[i], values[i]
        if out is None:
            t.clamp_(-v, v)
        else:
            out[i] = t.clamp(-v, v)
    small = range(len(tensors)) if not big else [i for i, t in enumerate(tensors) if t.numel() < _ONE_OP_NUMEL]
    if small:
        ts = tensors if not big else [tensors[i] for i in small]
        lo, hi = (-values[0], values[0]) if uniform else ([-values[i] for i in small], [values[i] for i in small])
        if out is not None:
            ts = torch._foreach_clamp_min(ts, lo)
            for i, r in zip(small, ts):
                out[i] = r
        else:
            torch._foreach_clamp_min_(ts, lo)
        torch._foreach_clamp_max_(ts, hi)


def _global_mean(tensors: list[Tensor], sharded: bool) -> Tensor:
    """The mean of all elements of ``tensors`` (non-empty), accumulated in float32 or float64."""
    total = sum(t.numel() for t in tensors)
    if sharded:  # sums of whole tensors, across shards (one all_reduce)
        sums = tensor_norms(tensors, "sum")
    else:
        sums = [t.sum(dtype=torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else None) for t in tensors]
    return torch.stack([s.to(torch.float64 if t.dtype == torch.float64 else torch.float32) for s, t in zip(sums, tensors)]).sum() / total


def _centralize_into(tensors: list[Tensor], dim: Dim, inverse_dims: bool, min_size: int, out: list[Tensor]) -> Tensor | None:
    """:func:`centralize_` with the results in ``out``: one pass that reads the inputs. Returns the
    sum of the means it took (NaN and inf propagate into it) and of the tensors it left unchanged:
    a 0-dim value that is finite iff every input element is; ``None`` for DTensors."""
    out[:] = [None] * len(tensors)
    if has_dtensor(tensors):  # rare enough to take the copy
        out[:] = [t.clone() for t in tensors]
        centralize_(out, dim, inverse_dims, min_size)
        return None
    parts: list[Tensor] = []
    means: list[Tensor] = []
    if dim == "global":
        nonempty = [i for i, t in enumerate(tensors) if t.numel() > 0]
        if nonempty:
            sub = [tensors[i] for i in nonempty]
            mean = _global_mean(sub, False)
            parts.append(mean)
            for i, r in zip(nonempty, torch._foreach_sub(sub, mean)):
                out[i] = r
    else:
        for i, t in enumerate(tensors):
            dims = None if t.ndim == 0 or t.numel() == 0 else reduce_dims(t.shape, dim, inverse_dims, min_size)  # type: ignore[arg-type]
            if dims is not None:
                acc = torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else None
                mean = t.mean(dim=dims, keepdim=True, dtype=acc)
                means.append(mean.reshape(-1))
                out[i] = t - mean.to(t.dtype)
        if means:
            parts.append(torch.cat(means).sum(dtype=torch.float64))
    unchanged = [t for t, o in zip(tensors, out) if o is None]
    _fill_unchanged(tensors, out)
    if unchanged:
        parts.append(finite_probe(unchanged).to(torch.float64))
    if not parts:
        return torch.zeros((), dtype=torch.float64)
    return torch.stack([p.to(torch.float64) for p in parts]).sum()


def centralize_(tensors: Sequence[Tensor], dim: Dim, inverse_dims: bool, min_size: int, out: list[Tensor] | None = None) -> Tensor | None:
    """Subtracts the mean of each group in place. 0-dim tensors are left unchanged (per-tensor mode).

    With ``out`` (an empty list), ``tensors`` are left unchanged, the results are put in it, and
    the return value is a 0-dim tensor that is finite iff every element of ``tensors`` is (built
    from the means, so it costs no extra read; ``None`` for DTensors). Without ``out``: ``None``.
    """
    if out is not None:
        return _centralize_into(list(tensors), dim, inverse_dims, min_size, out)
    tensors = [t for t in tensors if t.numel() > 0]
    if not tensors:
        return
    sharded = has_dtensor(tensors)
    if dim == "global":
        torch._foreach_sub_(tensors, _global_mean(tensors, sharded))
        return
    whole: list[Tensor] = []  # sharded tensors centred as a whole: one all_reduce for all of them
    for t in tensors:
        if t.ndim == 0:
            continue
        dims = reduce_dims(t.shape, dim, inverse_dims, min_size)  # type: ignore[arg-type]
        if dims is None:
            continue
        if sharded:  # sums over the whole tensor's dims (DTensor's mean would all-gather the tensor)
            if len(dims) == t.ndim:
                whole.append(t)
                continue
            count = 1
            for d in dims:
                count *= t.shape[d]
            _local(t).sub_(_local((tensor_norm(t, "sum", dims) / count).to(t.dtype)))
            continue
        acc = torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else None
        t.sub_(t.mean(dim=dims, keepdim=True, dtype=acc).to(t.dtype))
    if whole:
        torch._foreach_sub_(whole, [(s / t.numel()).to(t.dtype) for s, t in zip(tensor_norms(whole, "sum"), whole)])
    return None
