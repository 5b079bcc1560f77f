"""Per-parameter optimizer state: one store that ``Modular.state`` *is*, seen by every module.

``Modular.state`` is a real ``collections.defaultdict`` (a :class:`StateStore`), as
``torch.optim`` optimizers' ``state`` is: ``opt.state[p]`` is the state of parameter ``p``, and
any other key may be stored too (``opt.state["note"] = 1``). The state of a parameter is a
:class:`ParamState`, a ``dict`` keyed by the path of a module in the chain (``"1"``,
``"0.inner.0"``), each value the module's own ``{key: value}`` dict for that parameter::

    opt.state[p] == {"1": {"step": tensor(3.), "exp_avg": ..., "exp_avg_sq": ...}}

A module reads and writes its part through :class:`ModuleState` (``module.state[p]``), a view
onto the same dicts, so every write made through ``opt.state`` (replacing a parameter's state,
rebinding a module's dict, editing a tensor in place) is what the module sees on its next step.

``Modular.state_dict()`` saves each parameter's state flat, keyed ``"<path>.<key>"``
(``"1.exp_avg"``): one level of plain values per parameter, the layout that
``torch.distributed.checkpoint`` (also with ``flatten_optimizer_state_dict``) handles.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = ["StateStore", "ParamState", "ModuleState", "flatten", "unflatten"]


class StateStore(defaultdict):
    """``Modular.state``: parameter -> :class:`ParamState` (any other key -> any value).

    ``version`` counts structural changes (an entry of a parameter or of a module added,
    replaced or removed); :class:`ModuleState` caches its lists of per-parameter dicts until it
    changes.
    """

    def __init__(self, paths: Iterable[str] = ()) -> None:
        super().__init__()
        self.version = 0
        #: the module paths a parameter's state may have (empty: any)
        self.paths: frozenset[str] = frozenset(paths)

    def __missing__(self, key: Any) -> Any:
        if not isinstance(key, Tensor):
            raise KeyError(key)
        value = self[key] = ParamState(self)
        return value

    def _wrap(self, value: Any) -> ParamState:
        if isinstance(value, ParamState) and value._store is self:
            return value
        if not isinstance(value, Mapping):
            raise TypeError(
                f"Modular.state[param] must be a dict keyed by module path ({{'1': {{'exp_avg': ...}}}}) "
                f"or by '<path>.<key>' as in state_dict(), got {type(value).__name__}"
            )
        return ParamState(self, unflatten(value, self.paths))

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(key, Tensor):
            value = self._wrap(value)
        self.version += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self.version += 1
        super().__delitem__(key)

    def pop(self, key: Any, *default: Any) -> Any:
        self.version += 1
        return super().pop(key, *default)

    def popitem(self) -> tuple[Any, Any]:
        self.version += 1
        return super().popitem()

    def clear(self) -> None:
        self.version += 1
        super().clear()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key in self:
            return self[key]
        self[key] = {} if default is None and isinstance(key, Tensor) else default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def __reduce__(self) -> Any:
        # defaultdict pickles its factory; this one has none: rebuild from items
        return (_rebuild_store, (sorted(self.paths), list(self.items())))

    def __copy__(self) -> StateStore:
        return _rebuild_store(sorted(self.paths), list(self.items()))

    def __repr__(self) -> str:
        return repr(dict(self))


def _rebuild_store(paths: list[str], items: list[tuple[Any, Any]]) -> StateStore:
    store = StateStore(paths)
    for k, v in items:
        store[k] = dict(v) if isinstance(v, ParamState) else v
    return store


class ParamState(dict):
    """The state of one parameter: module path -> that module's ``{key: value}`` dict."""

    __slots__ = ("_store",)

    def __init__(self, store: StateStore, items: Mapping[str, Any] = ()):  # type: ignore[assignment]
        super().__init__()
        self._store = store
        for k, v in dict(items).items():
            self[k] = v

    def _split(self, key: Any) -> tuple[str, str] | None:
        """``"1.exp_avg"`` -> ``("1", "exp_avg")`` when ``"1"`` is a module path (the flat
        layout of ``state_dict()``, also accepted here); ``None`` for a module path itself."""
        if not isinstance(key, str):
            return None
        paths = self._store.paths
        if key in paths:
            return None
        for path in sorted(paths or self.keys(), key=len, reverse=True):
            if key.startswith(path + ".") and len(key) > len(path) + 1:
                return path, key[len(path) + 1 :]
        return None

    def _check(self, key: Any, value: Any) -> dict[str, Any]:
        paths = self._store.paths
        if paths and key not in paths:
            raise KeyError(
                f"Modular.state[param][{key!r}]: this chain has no module at path {key!r}; "
                f"its module paths are {sorted(paths)} (keys are module paths, or '<path>.<key>')"
            )
        if not isinstance(value, Mapping):
            raise TypeError(f"Modular.state[param][{key!r}] must be a dict of that module's state, got {type(value).__name__}")
        return value if type(value) is dict else dict(value)

    def __missing__(self, key: Any) -> Any:
        split = self._split(key)
        if split is None:
            raise KeyError(key)
        return dict.__getitem__(self, split[0])[split[1]] if split[0] in self else self._raise(key)

    @staticmethod
    def _raise(key: Any) -> Any:
        raise KeyError(key)

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        if dict.__contains__(self, key):
            return True
        split = self._split(key)
        return split is not None and dict.__contains__(self, split[0]) and split[1] in dict.__getitem__(self, split[0])

    def __setitem__(self, key: str, value: Any) -> None:
        split = self._split(key)
        if split is not None:  # "1.exp_avg": a value of module "1"
            self.setdefault(split[0])[split[1]] = value
            return
        self._store.version += 1
        super().__setitem__(key, self._check(key, value))

    def __delitem__(self, key: str) -> None:
        split = self._split(key)
        if split is not None and not dict.__contains__(self, key):
            del dict.__getitem__(self, split[0])[split[1]]
            return
        self._store.version += 1
        super().__delitem__(key)

    def pop(self, key: str, *default: Any) -> Any:
        self._store.version += 1
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        self._store.version += 1
        return super().popitem()

    def clear(self) -> None:
        self._store.version += 1
        super().clear()

    def setdefault(self, key: str, default: Any = None) -> Any:
        if not dict.__contains__(self, key):
            self[key] = {} if default is None else default
        return dict.__getitem__(self, key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def __reduce__(self) -> Any:
        return (dict, (dict(self),))

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        from copy import deepcopy

        return {k: deepcopy(v, memo) for k, v in self.items()}


class ModuleState:
    """``module.state``: the module's part of a :class:`StateStore`, keyed by the tensors the
    module sees (a real view of a complex parameter stands for the parameter).

    ``state[p]`` is the module's dict for ``p`` (created empty on first access, as a
    ``defaultdict(dict)`` would); :meth:`many` returns the dicts of many parameters at once.
    """

    __slots__ = ("_store", "_path", "_owner", "_cache")

    def __init__(self, store: StateStore | None = None, path: str = "", owner: Mapping[Tensor, Tensor] | None = None):
        self._store = StateStore() if store is None else store
        self._path = path
        #: the parameter each tensor a module sees stands for, where that is another tensor
        self._owner: Mapping[Tensor, Tensor] = {} if owner is None else owner
        self._cache: tuple[tuple[int, ...], int, list[dict[str, Any]]] | None = None

    def __getstate__(self) -> tuple[Any, ...]:
        return (self._store, self._path, self._owner)  # the cache is keyed by object ids: not copied

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self._store, self._path, self._owner = state
        self._cache = None

    def _key(self, p: Tensor) -> Tensor:
        owner = self._owner
        return owner.get(p, p) if owner else p

    def __getitem__(self, p: Tensor) -> dict[str, Any]:
        ps = self._store[self._key(p)]
        d = dict.get(ps, self._path)
        if d is None:
            d = {}
            ps[self._path] = d
        return d

    def many(self, params: list[Tensor]) -> list[dict[str, Any]]:
        """``[self[p] for p in params]``, reused from step to step while nothing was replaced."""
        if torch.compiler.is_compiling():  # the compiler guards on what it reads: no cache
            return [self[p] for p in params]
        key = tuple(map(id, params))
        cached = self._cache
        if cached is not None and cached[1] == self._store.version and cached[0] == key:
            return cached[2]
        out = [self[p] for p in params]
        self._cache = (key, self._store.version, out)
        return out

    def get(self, p: Tensor, default: Any = None) -> Any:
        ps = self._store.get(self._key(p))
        if ps is None:
            return default
        return dict.get(ps, self._path, default)

    def __setitem__(self, p: Tensor, value: Mapping[str, Any]) -> None:
        self._store[self._key(p)][self._path] = value

    def __delitem__(self, p: Tensor) -> None:
        ps = self._store.get(self._key(p))
        if ps is None or self._path not in ps:
            raise KeyError(p)
        del ps[self._path]

    def pop(self, p: Tensor, *default: Any) -> Any:
        ps = self._store.get(self._key(p))
        if ps is None or self._path not in ps:
            if default:
                return default[0]
            raise KeyError(p)
        return ps.pop(self._path)

    def __contains__(self, p: object) -> bool:
        ps = self._store.get(self._key(p)) if isinstance(p, Tensor) else None
        return ps is not None and self._path in ps

    def items(self) -> Iterator[tuple[Tensor, dict[str, Any]]]:
        """``(parameter, state)`` for every parameter this module has state for."""
        path = self._path
        for p, ps in list(self._store.items()):
            if isinstance(p, Tensor) and path in ps:
                yield p, ps[path]

    def __iter__(self) -> Iterator[Tensor]:
        return (p for p, _ in self.items())

    def __len__(self) -> int:
        return sum(1 for _ in self.items())

    def clear(self) -> None:
        for ps in list(self._store.values()):
            if isinstance(ps, ParamState) and self._path in ps:
                del ps[self._path]

    def __repr__(self) -> str:
        return f"ModuleState({dict(self.items())!r})"


def flatten(ps: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``{"1": {"exp_avg": t}}`` -> ``{"1.exp_avg": t}`` (the layout ``state_dict()`` saves)."""
    return {f"{path}.{k}": v for path, d in ps.items() for k, v in d.items()}


def unflatten(flat: Mapping[str, Any], paths: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The inverse of :func:`flatten` for a chain with module ``paths``: each key is split at
    the longest module path it starts with. Values that are already dicts keyed by a module
    path are kept as they are.

    Raises:
        KeyError: a key belongs to no module path.
    """
    known = sorted(paths, key=len, reverse=True)
    out: dict[str, dict[str, Any]] = {}
    for key, v in flat.items():
        if not isinstance(key, str):
            raise KeyError(f"state key {key!r} is not a string '<module path>.<key>'")
        if isinstance(v, Mapping) and (not known or key in known):
            out.setdefault(key, {}).update(v)
            continue
        for path in known:
            if key.startswith(path + ".") and len(key) > len(path) + 1:
                out.setdefault(path, {})[key[len(path) + 1 :]] = v
                break
        else:
            raise KeyError(
                f"state key {key!r} belongs to no module of this chain (module paths: {sorted(paths)}); "
                "keys are '<module path>.<key>', e.g. '1.exp_avg'"
            )
    return out
