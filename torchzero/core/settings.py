"""Reading per-parameter settings efficiently: resolved once per param group, not per parameter."""
from __future__ import annotations

from typing import Any

from .transform import Settings

__all__ = ["PerTensor", "resolve", "as_list", "is_uniform", "group_by", "subset", "as_scalars"]


class PerTensor(list):
    """A setting that differs between tensors: one value per tensor, in order."""


def resolve(settings: Settings, *keys: str) -> tuple[Any, ...]:
    """Values of ``keys`` for every tensor.

    Each returned item is a single value when all tensors share it (the common case: one param
    group, no overrides), else a :class:`PerTensor` list with one value per tensor. Parameters without overrides in
    the same param group are resolved once for the group.

    Example:
        >>> from collections import ChainMap
        >>> resolve([ChainMap({}, {}, {"a": 1, "b": 2})] * 3, "a", "b")
        (1, 2)
    """
    single = getattr(settings, "single", None)  # a SettingsList that knows it is one group's
    if single is not None:
        return tuple(single[k] for k in keys)
    if settings:
        # the common case, checked first: one param group, no overrides
        group = settings[0].maps[1]
        if all(s.maps[1] is group and not s.maps[0] for s in settings):
            s0 = settings[0]
            return tuple(s0[k] for k in keys)
    cache: dict[int, tuple[Any, ...]] = {}
    rows: list[tuple[Any, ...]] = []
    for s in settings:
        maps = s.maps
        if maps[0]:
            rows.append(tuple(s[k] for k in keys))
            continue
        layout = id(maps[1])
        vals = cache.get(layout)
        if vals is None:
            vals = cache[layout] = tuple(s[k] for k in keys)
        rows.append(vals)
    if not rows:
        return tuple([] for _ in keys)
    if len(cache) == 1 and all(r is rows[0] for r in rows):
        return rows[0]
    cols = list(zip(*rows))
    return tuple(c[0] if all(v is c[0] or v == c[0] for v in c) else PerTensor(c) for c in cols)


def as_list(value: Any, n: int) -> list[Any]:
    """``value`` as a list of ``n`` values (``value`` may already be such a list)."""
    if isinstance(value, PerTensor):
        return value
    return [value] * n


def is_uniform(value: Any) -> bool:
    """True if ``value`` is a single value (not one per tensor)."""
    return not isinstance(value, PerTensor)



def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def group_by(settings: Settings, *keys: str) -> list[tuple[tuple[Any, ...], list[int]]]:
    """Splits tensors into groups that share the values of ``keys``.

    Returns ``[(values, indices), ...]`` in order of first appearance; a single group holding
    every index in the common case where all tensors share the values.
    """
    vals = resolve(settings, *keys)
    n = len(settings)
    if all(is_uniform(v) for v in vals):
        return [(vals, list(range(n)))]
    cols = [as_list(v, n) for v in vals]
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i in range(n):
        groups.setdefault(tuple(_hashable(c[i]) for c in cols), []).append(i)
    return list(groups.items())


def subset(value: Any, idx: list[int]) -> Any:
    """The values of ``idx`` from a :func:`resolve` result (a single value stays as is)."""
    if is_uniform(value):
        return value
    return PerTensor(value[i] for i in idx)


def as_scalars(value: Any) -> Any:
    """A :func:`resolve` result usable as foreach scalars: a 1-element tensor (shape ``(1,)``,
    ``(1, 1)``, as ``torch.optim`` accepts for ``lr``) becomes 0-dim, and one-per-tensor values
    that mix tensors and numbers become numbers."""
    from torch import Tensor

    if isinstance(value, PerTensor):
        if any([isinstance(v, Tensor) for v in value]):
            return PerTensor(float(v) if isinstance(v, Tensor) else v for v in value)
        return value
    if isinstance(value, Tensor) and value.ndim:
        return value.reshape(())
    return value


def host_numbers(value: Any) -> Any:
    """A :func:`resolve` result with tensors read as Python floats (one value, or one per
    tensor): for settings given as tensors (Adam's ``betas``) that the math uses as host
    scalars."""
    from torch import Tensor

    if isinstance(value, PerTensor):
        if any([isinstance(v, Tensor) for v in value]):
            return PerTensor(float(v) if isinstance(v, Tensor) else v for v in value)
        return value
    return float(value) if isinstance(value, Tensor) else value
