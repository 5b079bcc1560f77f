"""Norms and norm groups: which elements a norm is taken over, and the norm itself.

Everything here is stateless and works on lists of tensors. Norms of float16/bfloat16
tensors are accumulated in float32.

Sharded tensors (``torch.distributed.tensor.DTensor``, e.g. the parameters and gradients of
FSDP2's ``fully_shard``) are normed as the whole tensors they represent: each rank reduces its
local shard, and one ``all_reduce`` per process group and reduction (batched over all tensors)
combines the shards. Whole-tensor and global norms come back as plain 0-dim tensors holding the
same value on every rank; norms over some dims come back as DTensors (replicated over the mesh
dims whose sharded dim was reduced, still sharded elsewhere). Lists without DTensors never reach
that code: the check is one dict lookup while ``torch.distributed.tensor`` was never imported.
"""
from __future__ import annotations

import functools
import math
import sys
from collections.abc import Iterable, Sequence
from typing import Literal, Union

import torch
from torch import Tensor

from . import cpu_kernels

__all__ = [
    "Ord",
    "Dim",
    "ORD_NAMES",
    "parse_ord",
    "reduce_dims",
    "tensor_norm",
    "tensor_norms",
    "tensor_norm_vector",
    "global_norm",
    "finite_probe",
    "has_dtensor",
    "is_dtensor",
    "gather_whole",
    "scatter_like",
]

Ord = Union[float, Literal["mad", "std", "var", "sum", "l0", "l1", "l2", "l3", "l4", "linf"]]
"""A norm: a number ``p`` as in ``torch.linalg.vector_norm`` (``inf`` is max |x|, ``-inf`` min |x|,
``0`` counts nonzeros) or one of :data:`ORD_NAMES`."""

Dim = Union[int, Sequence[int], Literal["global"], None]
"""Which dims a norm is taken over: ``None`` (all), ints (those the tensor has), or ``"global"``."""

_ALIASES: dict[str, float] = {"l0": 0.0, "l1": 1.0, "l2": 2.0, "l3": 3.0, "l4": 4.0, "linf": math.inf}
_STATS = ("mad", "std", "var", "sum")
ORD_NAMES: tuple[str, ...] = tuple(_ALIASES) + _STATS
"""String values accepted for ``ord``."""

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def parse_ord(ord: object, owner: str | None = None) -> float | str:
    """Validates ``ord`` and returns a float ``p`` or one of ``"mad" "std" "var" "sum"``.

    Raises:
        ValueError: an unknown string or NaN.
        TypeError: anything that is not a number or a string.
    """
    where = f"{owner}: " if owner else ""
    if isinstance(ord, str):
        if ord in _ALIASES:
            return _ALIASES[ord]
        if ord in _STATS:
            return ord
        raise ValueError(f"{where}ord must be a number >= 0 or one of {', '.join(map(repr, ORD_NAMES))}, got {ord!r}")
    if isinstance(ord, Tensor) and ord.numel() == 1:
        ord = ord.item()
    if isinstance(ord, bool) or not isinstance(ord, (int, float)):
        raise TypeError(f"{where}ord must be a number or a string, got {ord!r} of type {type(ord).__name__}")
    p = float(ord)
    if math.isnan(p):
        raise ValueError(f"{where}ord must be a number (torch.linalg.vector_norm's ord) or one of {', '.join(map(repr, ORD_NAMES))}, got {ord!r}")
    return p


def reduce_dims(
    shape: Sequence[int], dim: int | Sequence[int] | None, inverse_dims: bool, min_size: int
) -> tuple[int, ...] | None:
    """The dims of a tensor of ``shape`` that a per-tensor norm group reduces over.

    A 0-dim tensor counts as shape ``(1,)``. ``dim=None`` selects all dims; ints select the dims
    the tensor has (negative ints count from the end; dims it lacks are ignored);
    ``inverse_dims`` takes the complement. Returns ``None`` when the tensor must be left
    unchanged: no dims left, or the product of the reduced sizes is below ``min_size``.
    The result depends only on this tensor's shape (and is cached: it is asked for every tensor
    on every step).
    """
    return _reduce_dims(tuple(shape), dim if dim is None or isinstance(dim, int) else tuple(dim), inverse_dims, min_size)


@functools.lru_cache(maxsize=4096)
def _reduce_dims(shape: tuple[int, ...], dim: int | tuple[int, ...] | None, inverse_dims: bool, min_size: int) -> tuple[int, ...] | None:
    shape = shape or (1,)
    ndim = len(shape)
    if dim is None:
        dims = set(range(ndim))
    else:
        wanted = (dim,) if isinstance(dim, int) else tuple(dim)
        dims = {d + ndim if d < 0 else d for d in wanted}
        dims = {d for d in dims if 0 <= d < ndim}
    if inverse_dims:
        dims = set(range(ndim)) - dims
    if not dims:
        return None
    size = 1
    for d in dims:
        size *= shape[d]
    if size < min_size:
        return None
    return tuple(sorted(dims))


def _acc_dtype(t: Tensor) -> torch.dtype | None:
    return torch.float32 if t.dtype in _LOW_PRECISION else None


def tensor_norm(t: Tensor, ord: float | str, dims: tuple[int, ...] | None = None, keepdim: bool = True) -> Tensor:
    """Norm of ``t`` over ``dims`` (all dims if ``None``); ``ord`` as returned by :func:`parse_ord`.

    A DTensor is normed as the whole tensor it represents (see the module docstring).
    """
    if is_dtensor(t):
        return _sharded_norm(t, ord, dims, keepdim)
    if t.ndim == 0:
        t = t.reshape(1)
    if t.numel() == 0:  # no elements: norm 0 (vector_norm has no identity for inf)
        shape = [1 if (dims is None or d in dims) else n for d, n in enumerate(t.shape)] if keepdim else []
        if not keepdim and dims is not None:
            shape = [n for d, n in enumerate(t.shape) if d not in dims]
        return torch.zeros(shape, dtype=_acc_dtype(t) or t.dtype, device=t.device)
    acc = _acc_dtype(t)
    if acc is not None and isinstance(ord, str):
        t = t.to(acc)
    if ord == "mad":
        return t.abs().mean(dim=dims, keepdim=keepdim)
    if ord == "std":
        return t.std(dim=dims, keepdim=keepdim)
    if ord == "var":
        return t.var(dim=dims, keepdim=keepdim)
    if ord == "sum":
        return t.sum(dim=dims, keepdim=keepdim)
    return torch.linalg.vector_norm(t, ord, dim=dims, keepdim=keepdim, dtype=acc)


def tensor_norms(tensors: Sequence[Tensor], ord: float | str) -> list[Tensor]:
    """One 0-dim norm per tensor, over all of its elements, in a few multi-tensor kernels."""
    tensors = list(tensors)
    if has_dtensor(tensors):
        return _sharded_norms(tensors, ord)
    vector = _kernel_norms(tensors, ord)
    if vector is not None:
        return list(vector.unbind())
    if isinstance(ord, str) or any(t.numel() == 0 for t in tensors):
        return [tensor_norm(t, ord, keepdim=False) for t in tensors]
    low = [i for i, t in enumerate(tensors) if t.dtype in _LOW_PRECISION]
    if not low:
        return list(torch._foreach_norm(tensors, ord))
    if len(low) == len(tensors):
        return list(torch._foreach_norm(tensors, ord, dtype=torch.float32))
    out: list[Tensor] = [None] * len(tensors)  # type: ignore[list-item]
    high = [i for i, t in enumerate(tensors) if t.dtype not in _LOW_PRECISION]
    for idx, kw in ((low, {"dtype": torch.float32}), (high, {})):
        for i, n in zip(idx, torch._foreach_norm([tensors[i] for i in idx], ord, **kw)):
            out[i] = n
    return out


def _kernel_sumsq(tensors: list[Tensor], ord: float | str) -> list[float] | None:
    """For L2 norms of plain CPU tensors: their sums of squares from the kernel, all tensors in
    one call that reads each once, about twice as fast as torch's norm on CPU (accumulated in
    double across blocks). ``None`` where it doesn't apply."""
    if isinstance(ord, str) or ord != 2 or not tensors or not cpu_kernels.usable(*tensors):
        return None
    return cpu_kernels.sumsq(tensors)


def _kernel_norms(tensors: list[Tensor], ord: float | str) -> Tensor | None:
    """:func:`_kernel_sumsq`'s roots (taken in double) as one 1-D tensor."""
    sumsq = _kernel_sumsq(tensors, ord)
    return None if sumsq is None else torch.tensor([math.sqrt(s) for s in sumsq], dtype=tensors[0].dtype)


def tensor_norm_vector(tensors: Sequence[Tensor], ord: float | str) -> Tensor:
    """:func:`tensor_norms` as one 1-D tensor (float64 if the norms' dtypes differ)."""
    tensors = list(tensors)
    vector = _kernel_norms(tensors, ord)
    if vector is not None:
        return vector
    ns = tensor_norms(tensors, ord)
    if len({x.dtype for x in ns}) > 1:
        ns = [x.double() for x in ns]
    return torch.stack(ns)


def finite_probe(tensors: Sequence[Tensor]) -> Tensor:
    """A 0-dim tensor that is finite if and only if every element of ``tensors`` is finite
    (up to float32 overflow of a huge finite total), computed without a host sync.

    It is the sum of all elements (accumulated in float32 for float16/bfloat16): NaN and inf
    propagate through a sum and cannot cancel into a finite value. One read of the data, the
    cheapest check there is (about half the time of a 2-norm on CPU).
    """
    tensors = [t for t in tensors if t.numel() > 0]
    if not tensors:
        return torch.zeros(())
    if has_dtensor(tensors):
        return global_norm(tensors, 2.0)
    if cpu_kernels.usable(*tensors):
        # one call for all tensors (CPU, contiguous, one dtype): no per-tensor op overhead
        return torch.tensor(sum(cpu_kernels.sum(tensors)), dtype=tensors[0].dtype)
    sums = [t.sum(dtype=torch.float32) if t.dtype in _LOW_PRECISION else t.sum() for t in tensors]
    if t_complex := [i for i, x in enumerate(sums) if x.is_complex()]:
        for i in t_complex:
            sums[i] = torch.view_as_real(sums[i]).sum()
    dtypes = {x.dtype for x in sums}
    if len(dtypes) > 1:
        dtype = functools.reduce(torch.promote_types, dtypes)
        sums = [x.to(dtype) for x in sums]
    return torch.stack(sums).sum()


def global_norm(tensors: Sequence[Tensor], ord: float | str) -> Tensor:
    """Norm of all ``tensors`` concatenated into one vector, as a 0-dim tensor (no host sync)."""
    tensors = [t for t in tensors if t.numel() > 0]
    if not tensors:
        return torch.zeros(())
    if isinstance(ord, str) and has_dtensor(tensors):
        return _sharded_global_stat(tensors, ord)
    if ord == "sum":
        return torch.stack([tensor_norm(t, "sum", keepdim=False) for t in tensors]).sum()
    if ord == "mad":
        total = sum(t.numel() for t in tensors)
        return torch.stack([tensor_norm(t, 1.0, keepdim=False) for t in tensors]).sum() / total
    if ord in ("std", "var"):
        flat = torch.cat([t.reshape(-1).to(torch.float32 if t.dtype in _LOW_PRECISION else t.dtype) for t in tensors])
        return flat.std() if ord == "std" else flat.var()
    sumsq = _kernel_sumsq(tensors, ord)
    if sumsq is not None:  # the global L2 norm: the root of the total, in double
        return torch.tensor(math.sqrt(sum(sumsq)), dtype=tensors[0].dtype)
    norms = tensor_norms(tensors, ord)
    dtypes = {n.dtype for n in norms}
    if len(dtypes) > 1:
        dtype = functools.reduce(torch.promote_types, dtypes)
        norms = [n.to(dtype) for n in norms]
    stacked = torch.stack(norms)
    if ord == 0:
        return stacked.sum()
    return torch.linalg.vector_norm(stacked, ord)


# ------------------------------------------------------------------------------ sharded tensors
# DTensor support. Each rank computes a statistic of its local shard that combines across shards
# with one reduction (sum of |x|^p, max, min, count, sum), all statistics of a call are all-reduced
# together (one collective per process group, reduction and dtype), then finished (the p-th root,
# the division by the number of elements). Empty local shards (fewer rows than ranks) contribute
# the reduction's identity. DTensor's own reductions are not used: they fail on empty shards for
# max/min norms, and mean/std/var all-gather the whole tensor on every rank.


def _dtensor_type() -> type | None:
    mod = sys.modules.get("torch.distributed.tensor")  # never imported: no DTensor can exist
    return None if mod is None else mod.DTensor


def has_dtensor(tensors: Iterable[Tensor]) -> bool:
    """True if any of ``tensors`` is a ``torch.distributed.tensor.DTensor`` (one dict lookup when
    ``torch.distributed.tensor`` was never imported, else one ``type()`` per tensor)."""
    dt = _dtensor_type()
    return dt is not None and any(issubclass(c, dt) for c in set(map(type, tensors)))


def is_dtensor(t: Tensor) -> bool:
    """True if ``t`` is a ``torch.distributed.tensor.DTensor`` (see :func:`has_dtensor`)."""
    dt = _dtensor_type()
    return dt is not None and isinstance(t, dt)


def _shard(t: Tensor, dims: Sequence[int] | None) -> tuple[Tensor, tuple]:
    """The local shard of DTensor ``t`` and the process groups a reduction over ``dims`` (tensor
    dims; ``None``: all) must be all-reduced over: those of the mesh dims sharding a reduced dim."""
    if any(p.is_partial() for p in t.placements):  # pending reduction (unusual for gradients): do it first
        from torch.distributed.tensor import Replicate

        t = t.redistribute(t.device_mesh, [Replicate() if p.is_partial() else p for p in t.placements])
    ndim = max(t.ndim, 1)
    mesh = t.device_mesh
    groups = tuple(
        mesh.get_group(i)
        for i, p in enumerate(t.placements)
        if p.is_shard() and (dims is None or p.dim % ndim in dims)  # type: ignore[attr-defined]
    )
    return t.to_local(), groups


_OPS = ("sum", "max", "min")


def _all_reduce(stats: list[Tensor], groups: list[tuple], ops: list[str]) -> list[Tensor]:
    """All-reduces each ``stats[i]`` over ``groups[i]`` with ``ops[i]``; one collective per
    (groups, op, dtype, device), in an order that is the same on every rank."""
    import torch.distributed as dist

    red = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
    out = list(stats)
    buckets: dict[tuple, list[int]] = {}
    for i, (s, g, op) in enumerate(zip(stats, groups, ops)):
        if g:
            buckets.setdefault((g, op, s.dtype, s.device), []).append(i)
    for (gs, op, _, _), idx in buckets.items():
        flat = torch.cat([stats[i].reshape(-1) for i in idx])
        for group in gs:
            dist.all_reduce(flat, op=red[op], group=group)
        for i, part in zip(idx, flat.split([stats[i].numel() for i in idx])):
            out[i] = part.view(stats[i].shape)
    return out


def _local_stat(x: Tensor, ord: float | str, dims: tuple[int, ...]) -> tuple[Tensor, str]:
    """A statistic of local shard ``x`` over ``dims`` (kept) and the reduction combining it across
    shards; :func:`_finish` turns the combined statistic into the norm. Not for ``"std"``/``"var"``."""
    acc = _acc_dtype(x) or x.dtype
    if any(x.shape[d] == 0 for d in dims):  # an empty shard: the identity of the reduction
        shape = [1 if d in dims else n for d, n in enumerate(x.shape)]
        if ord == -math.inf:
            return torch.full(shape, math.inf, dtype=acc, device=x.device), "min"
        return torch.zeros(shape, dtype=acc, device=x.device), "max" if ord == math.inf else "sum"
    if ord == "sum":
        return x.to(acc).sum(dims, keepdim=True), "sum"
    if ord == "mad":
        return x.to(acc).abs().sum(dims, keepdim=True), "sum"
    assert isinstance(ord, float)
    if ord == math.inf:
        return x.abs().amax(dims, keepdim=True).to(acc), "max"
    if ord == -math.inf:
        return x.abs().amin(dims, keepdim=True).to(acc), "min"
    if ord == 0:
        return (x != 0).sum(dims, keepdim=True).to(acc), "sum"
    if ord < 0:
        return x.to(acc).abs().pow(ord).sum(dims, keepdim=True), "sum"
    return torch.linalg.vector_norm(x, ord, dim=dims, keepdim=True, dtype=acc).pow(ord), "sum"


def _finish(stat: Tensor, ord: float | str, count: int) -> Tensor:
    if ord == "mad":
        return stat / count
    if isinstance(ord, str) or ord in (0.0, math.inf, -math.inf):
        return stat
    return stat.pow(1.0 / ord)


def _sharded_stats(items: list[tuple[Tensor, tuple, tuple[int, ...], int]], ord: float | str) -> list[Tensor]:
    """Norms of local shards over dims (kept), combined across shards; 0 where no element is
    reduced (as :func:`tensor_norm` of a zero-size tensor).

    ``items``: ``(local shard, groups, dims, number of elements reduced in the whole tensor)``.
    """
    out = _sharded_stats_(items, ord)
    return [torch.zeros_like(r) if c == 0 else r for r, (_, _, _, c) in zip(out, items)]


def _sharded_stats_(items: list[tuple[Tensor, tuple, tuple[int, ...], int]], ord: float | str) -> list[Tensor]:
    """:func:`_sharded_stats` without the zero-size convention."""
    if ord in ("std", "var"):  # two passes (mean, then squared deviations): no cancellation
        xs = [x.to(_acc_dtype(x) or x.dtype) for x, _, _, _ in items]
        sums = _all_reduce([x.sum(d, keepdim=True) for x, (_, _, d, _) in zip(xs, items)], [g for _, g, _, _ in items], ["sum"] * len(items))
        dev = [(x - s / c).pow(2).sum(d, keepdim=True) for x, s, (_, _, d, c) in zip(xs, sums, items)]
        m2 = _all_reduce(dev, [g for _, g, _, _ in items], ["sum"] * len(items))
        var = [v / (c - 1) if c > 1 else torch.full_like(v, math.nan) for v, (_, _, _, c) in zip(m2, items)]
        return [v.sqrt() for v in var] if ord == "std" else var
    stats, ops = zip(*(_local_stat(x, ord, d) for x, _, d, _ in items))
    reduced = _all_reduce(list(stats), [g for _, g, _, _ in items], list(ops))
    return [_finish(s, ord, c) for s, (_, _, _, c) in zip(reduced, items)]


def _sharded_norm(t: Tensor, ord: float | str, dims: tuple[int, ...] | None, keepdim: bool) -> Tensor:
    """:func:`tensor_norm` of a DTensor: the norm of the whole tensor over ``dims``."""
    from torch.distributed.tensor import DTensor, Replicate

    ord = ord if isinstance(ord, str) else float(ord)
    ndim = max(t.ndim, 1)
    shape = tuple(t.shape) or (1,)
    dims = tuple(range(ndim)) if dims is None else tuple(sorted(d % ndim for d in dims))
    if len(dims) == ndim and not keepdim:  # one value for the whole tensor: a plain 0-dim tensor
        return _sharded_norms([t], ord)[0]
    x, groups = _shard(t, dims)
    if x.ndim == 0:
        x = x.reshape(1)
    if not groups:  # no sharded dim is reduced: a local reduction, sharded like t
        local = tensor_norm(x, ord, dims, keepdim=True)
    else:
        count = math.prod(shape[d] for d in dims)
        local = _sharded_stats([(x, groups, dims, count)], ord)[0]
    # a reduced dim is the same on every rank of the mesh dims that shard it
    placements = [Replicate() if p.is_shard() and p.dim % ndim in dims else p for p in t.placements]  # type: ignore[attr-defined]
    out_shape = torch.Size(1 if d in dims else n for d, n in enumerate(shape))
    stride = torch.empty(out_shape, device="meta").stride()
    out = DTensor.from_local(local, t.device_mesh, placements, run_check=False, shape=out_shape, stride=stride)
    return out if keepdim else out.squeeze(dims)


def _sharded_norms(tensors: list[Tensor], ord: float | str) -> list[Tensor]:
    """:func:`tensor_norms` of a list holding DTensors: plain 0-dim tensors, equal on every rank."""
    ord = ord if isinstance(ord, str) else float(ord)
    out: list[Tensor] = [None] * len(tensors)  # type: ignore[list-item]
    plain = [i for i, t in enumerate(tensors) if not is_dtensor(t)]
    if plain:
        for i, n in zip(plain, tensor_norms([tensors[i] for i in plain], ord)):
            out[i] = n
    sharded = [i for i, t in enumerate(tensors) if is_dtensor(t)]
    items = []
    for i in sharded:
        x, groups = _shard(tensors[i], None)
        x = x.reshape(-1)
        items.append((x, groups, (0,), tensors[i].numel()))
    if isinstance(ord, float) and ord > 0:  # p-norms and max: local norms in one multi-tensor kernel
        reduced = _local_norms([x for x, _, _, _ in items], ord)
        buckets: dict[tuple, list[int]] = {}
        for j, ((_, g, _, _), n) in enumerate(zip(items, reduced)):
            if g:  # else: replicated, the local norm is the norm
                buckets.setdefault((g, n.dtype), []).append(j)
        for (g, _), idx in buckets.items():  # (sum over shards of norm^p)^(1/p), or the max
            stacked = torch.stack([reduced[j] for j in idx])
            stacked = _all_reduce([stacked if ord == math.inf else stacked.pow(ord)], [g], ["max" if ord == math.inf else "sum"])[0]
            for j, n in zip(idx, (stacked if ord == math.inf else stacked.pow(1.0 / ord)).unbind()):
                reduced[j] = n
    else:
        reduced = [r.reshape(()) for r in _sharded_stats(items, ord)]
    for i, n in zip(sharded, reduced):
        out[i] = n
    return out


def _local_norms(xs: list[Tensor], ord: float) -> list[Tensor]:
    """p-norms (``p > 0``, or ``inf``) of local shards, in their accumulation dtypes; 0 for empty ones."""
    out: list[Tensor] = [None] * len(xs)  # type: ignore[list-item]
    by_acc: dict[bool, list[int]] = {}
    for i, x in enumerate(xs):
        if x.numel() == 0:
            out[i] = torch.zeros((), dtype=_acc_dtype(x) or x.dtype, device=x.device)
        else:
            by_acc.setdefault(x.dtype in _LOW_PRECISION, []).append(i)
    for low, idx in by_acc.items():
        kw = {"dtype": torch.float32} if low else {}
        for i, n in zip(idx, torch._foreach_norm([xs[i] for i in idx], ord, **kw)):
            out[i] = n
    return out


def _sharded_global_stat(tensors: list[Tensor], ord: str) -> Tensor:
    """:func:`global_norm` with a statistic ``ord`` (``"sum" "mad" "std" "var"``) of a list holding DTensors."""
    if ord in ("sum", "mad"):
        parts = tensor_norms(tensors, "sum" if ord == "sum" else 1.0)
        dtype = functools.reduce(torch.promote_types, {p.dtype for p in parts})
        total = torch.stack([p.to(dtype) for p in parts]).sum()
        return total if ord == "sum" else total / sum(t.numel() for t in tensors)
    # std/var of all elements of all tensors: two passes over the shards, plain tensors counted once
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
    count = sum(t.numel() for t in tensors)
    xs, groups = [], []
    for t in tensors:
        x, g = _shard(t, None) if is_dtensor(t) else (t, ())
        xs.append(x.reshape(-1).to(dtype))
        groups.append(g)
    sums = _all_reduce([x.sum() for x in xs], groups, ["sum"] * len(xs))
    mean = torch.stack(sums).sum() / count
    m2 = torch.stack(_all_reduce([(x - mean).pow(2).sum() for x in xs], groups, ["sum"] * len(xs))).sum()
    var = m2 / (count - 1) if count > 1 else torch.full_like(m2, math.nan)
    return var.sqrt() if ord == "std" else var


def gather_whole(tensors: Sequence[Tensor]) -> list[Tensor]:
    """Each DTensor of ``tensors`` as the whole tensor on every rank (``full_tensor()``: one
    all-gather per sharded tensor, in order, so every rank must call this with the same
    tensors); other tensors as they are."""
    return [t.full_tensor() if is_dtensor(t) else t for t in tensors]  # type: ignore[attr-defined]


def scatter_like(whole: Sequence[Tensor], like: Sequence[Tensor]) -> list[Tensor]:
    """``whole[i]`` sharded as ``like[i]`` is, where that is a DTensor: each rank keeps its own
    shard of the (identical) whole tensor it computed, without communication."""
    out = []
    for w, t in zip(whole, like):
        if is_dtensor(t):
            from torch.distributed.tensor import distribute_tensor

            out.append(distribute_tensor(w, t.device_mesh, t.placements, src_data_rank=None))  # type: ignore[attr-defined]
        else:
            out.append(w)
    return out
