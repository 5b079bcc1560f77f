"""``Settings``: a module's settings for the tensors of one step, resolved.

A module reads ``settings["beta"]`` and gets one value when every tensor shares it (the common
case: one param group, no overrides) or a :class:`PerTensor` list with one value per tensor.
Per-parameter settings are layered ``ChainMap``\\ s (overrides > param group > defaults, see
:class:`~torchzero.core.module.Module`); parameters of one param group without overrides are
resolved once for the group.
"""
from __future__ import annotations

from collections import ChainMap
from collections.abc import Iterable, Sequence
from typing import Any, overload

from torch import Tensor

__all__ = ["Settings", "PerTensor"]


class PerTensor(list):
    """A setting that differs between tensors: one value per tensor, in order."""


class Settings(list):
    """The settings of the tensors of one step, in order: ``settings[i]`` is tensor ``i``'s
    (a mapping), ``settings["key"]`` is the value of ``key`` for all of them.

    Example:
        >>> from collections import ChainMap
        >>> s = Settings([ChainMap({}, {}, {"beta": 0.9})] * 3)
        >>> s["beta"]
        0.9
        >>> Settings([ChainMap({"beta": 0.5}, {}, {"beta": 0.9}), ChainMap({}, {}, {"beta": 0.9})])["beta"]
        [0.5, 0.9]
    """

    __slots__ = ("single",)

    def __init__(self, items: Iterable[ChainMap[str, Any]] = ()):
        super().__init__(items)
        first = self[0] if self else None
        group = None if first is None else first.maps[1]
        #: the first mapping when all are one param group's without overrides, else None
        self.single = first if first is not None and all(s.maps[1] is group and not s.maps[0] for s in self) else None

    @overload
    def __getitem__(self, key: str) -> Any: ...
    @overload
    def __getitem__(self, key: int) -> ChainMap[str, Any]: ...
    @overload
    def __getitem__(self, key: slice) -> list[ChainMap[str, Any]]: ...
    def __getitem__(self, key: Any) -> Any:
        if type(key) is str:
            single = self.single
            if single is not None:
                return single[key]
            return _resolve(self, (key,))[0]
        return super().__getitem__(key)

    def values(self, *keys: str) -> tuple[Any, ...]:
        """``(settings[k] for k in keys)`` in one pass."""
        single = self.single
        if single is not None:
            return tuple(single[k] for k in keys)
        return _resolve(self, keys)

    def each(self, key: str) -> list[Any]:
        """The value of ``key`` for each tensor, as a list (one value per tensor)."""
        v = self[key]
        return v if isinstance(v, PerTensor) else [v] * len(self)

    def groups(self, *keys: str) -> list[tuple[tuple[Any, ...], list[int]]]:
        """Splits the tensors into groups that share the values of ``keys``:
        ``[(values, indices), ...]`` in order of first appearance (one group in the common case).
        For settings that change the algorithm's structure (``amsgrad``, ``ord``)."""
        vals = self.values(*keys)
        n = len(self)
        if not any(isinstance(v, PerTensor) for v in vals):
            return [(vals, list(range(n)))]
        cols = [v if isinstance(v, PerTensor) else [v] * n for v in vals]
        out: dict[tuple[Any, ...], list[int]] = {}
        firsts: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        for i in range(n):
            row = tuple(c[i] for c in cols)
            key = tuple(_hashable(v) for v in row)
            out.setdefault(key, []).append(i)
            firsts.setdefault(key, row)
        return [(firsts[k], idx) for k, idx in out.items()]

    def coupled(self, keys: Iterable[str], owner: str) -> dict[str, Any]:
        """``{key: value}`` for a method that couples all parameters (one line search, one
        curvature estimate for all of them), so every key must have one value.

        Raises:
            ValueError: a key differs between the tensors (param groups or overrides disagree),
                naming the key, its values and what to do.
        """
        out = {}
        for key in keys:
            value = self[key]
            if isinstance(value, PerTensor):
                raise ValueError(
                    f"{owner}: {key} differs between param groups ({sorted(set(map(repr, value)))}), but {owner} couples "
                    f"all parameters; give {key} one value (remove it from the param groups)"
                )
            out[key] = value
        return out

    def subset(self, idx: Sequence[int]) -> Settings:
        """The settings of the tensors at positions ``idx``."""
        items = list(self)
        return Settings(items[i] for i in idx)


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _resolve(settings: Sequence[ChainMap[str, Any]], keys: Sequence[str]) -> tuple[Any, ...]:
    """The values of ``keys``: one value each when all tensors share it, else a PerTensor list."""
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
        return tuple(PerTensor() for _ in keys)
    if len(cache) == 1 and all(r is rows[0] for r in rows):
        return rows[0]
    cols = list(zip(*rows))
    return tuple(c[0] if all(v is c[0] or v == c[0] for v in c) else PerTensor(c) for c in cols)


# ----------------------------------------------------------------------------- value helpers
def as_list(value: Any, n: int) -> list[Any]:
    """``value`` (one value, or one per tensor) as a list of ``n`` values."""
    return value if isinstance(value, PerTensor) else [value] * n


def subset(value: Any, idx: Sequence[int]) -> Any:
    """The values at positions ``idx`` of a setting (one value stays as it is)."""
    return PerTensor(value[i] for i in idx) if isinstance(value, PerTensor) else value


def as_scalars(value: Any) -> Any:
    """A setting usable as foreach scalars: a 1-element tensor (shape ``(1,)``, ``(1, 1)``, as
    ``torch.optim`` accepts for ``lr``) becomes 0-dim, and one-per-tensor values that mix tensors
    and numbers become numbers."""
    if isinstance(value, PerTensor):
        if any([isinstance(v, Tensor) for v in value]):
            return PerTensor(float(v) if isinstance(v, Tensor) else v for v in value)
        return value
    if isinstance(value, Tensor) and value.ndim:
        return value.reshape(())
    return value


def host_numbers(value: Any) -> Any:
    """A setting with tensors read as Python floats (one value, or one per tensor): for settings
    given as tensors (Adam's ``betas``) that the math uses as host scalars."""
    if isinstance(value, PerTensor):
        if any([isinstance(v, Tensor) for v in value]):
            return PerTensor(float(v) if isinstance(v, Tensor) else v for v in value)
        return value
    return float(value) if isinstance(value, Tensor) else value


def is_uniform(value: Any) -> bool:
    """True if a setting is one value for all tensors (not a :class:`PerTensor` list)."""
    return not isinstance(value, PerTensor)
