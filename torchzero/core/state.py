"""Per-parameter optimizer state: one store that ``Modular.state`` *is*, seen by every module.

``Modular.state`` is a real ``collections.defaultdict`` (a :class:`StateStore`), as
``torch.optim`` optimizers' ``state`` is: ``opt.state[p]`` is the state of parameter ``p``, and
any other key may be stored too (``opt.state["note"] = 1``). The state of a parameter is a
:class:`ParamState`, a flat ``dict`` keyed ``"<module path>.<key>"``, each value what that
module stores (tensors, as in ``torch.optim``, or small Python values)::

    opt.state[p] == {"1.step": tensor(3.), "1.exp_avg": ..., "1.exp_avg_sq": ...}

This is the layout of ``state_dict()`` too, so code written for ``torch.optim`` that walks
``opt.state[p].items()`` (moving tensors to a device, comparing two optimizers' states, casting)
works unchanged.

A module reads and writes its own part through :class:`ModuleState`: ``module.state[p]`` is a
:class:`ModuleView`, a mutable mapping over the keys of its path (``view["exp_avg"]`` is
``opt.state[p]["1.exp_avg"]``). So every write made through ``opt.state`` (replacing a
parameter's state, setting a key, editing a tensor in place) is what the module sees on its next
step, and every write a module makes is in ``opt.state``.

A module's own keys contain no dot: the module path of a flat key is what comes before its last
dot. ``opt.state[p]["1"]`` (a module path) gives that module's view, and assigning a dict to it
replaces that module's keys.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any

import torch
from torch import Tensor

__all__ = ["StateStore", "ParamState", "ModuleView", "StateList", "ModuleState", "values_of", "flatten", "unflatten", "split_key"]


def split_key(key: Any) -> tuple[str, str] | None:
    """``"0.inner.1.exp_avg"`` -> ``("0.inner.1", "exp_avg")``; ``None`` for a key with no dot."""
    if not isinstance(key, str):
        return None
    path, dot, name = key.rpartition(".")
    return (path, name) if dot and path and name else None


class StateStore(defaultdict):
    """``Modular.state``: parameter -> :class:`ParamState` (any other key -> any value).

    ``version`` counts replacements of a parameter's state (added, replaced or removed);
    :class:`ModuleState` caches its lists of views until it changes.
    """

    def __init__(self, paths: Iterable[str] = ()) -> None:
        super().__init__()
        self.version = 0
        #: ``describe(p)``: how error messages name parameter ``p`` (set by ``Modular``)
        self.describe: Callable[[Tensor], str] | None = None
        #: the module paths of the chain (empty: any)
        self.paths: frozenset[str] = frozenset(paths)

    def __missing__(self, key: Any) -> Any:
        if not isinstance(key, Tensor):
            raise KeyError(key)
        value = self[key] = ParamState(store=self)
        return value

    def _wrap(self, value: Any) -> ParamState:
        if isinstance(value, ParamState) and value._store is self:
            return value
        if not isinstance(value, Mapping):
            raise TypeError(
                "Modular.state[param] must be a dict keyed '<module path>.<key>' as in state_dict() "
                f"(e.g. {{'1.exp_avg': tensor}}) or by module path ({{'1': {{'exp_avg': tensor}}}}), "
                f"got {type(value).__name__}"
            )
        return ParamState(value, store=self)

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
    """The state of one parameter: ``"<module path>.<key>"`` -> value.

    A module path as the key (``state["1"]``) stands for that module's :class:`ModuleView`;
    assigning a dict to it replaces the module's keys. ``ParamState(mapping)`` (no store, as
    generic code that rebuilds a mapping with ``type(m)(items)`` makes it) is a plain flat dict,
    checked when it is put into a store.
    """

    __slots__ = ("_store",)

    def __init__(self, items: Mapping[str, Any] | Iterable[tuple[str, Any]] = (), store: StateStore | None = None):
        super().__init__()
        self._store = store
        for k, v in dict(items).items():
            self[k] = v

    def _paths(self) -> frozenset[str]:
        return self._store.paths if self._store is not None else frozenset()

    def _is_path(self, key: Any) -> bool:
        paths = self._paths()
        return isinstance(key, str) and (key in paths if paths else "." not in key and key.isdigit())

    def __missing__(self, key: Any) -> Any:
        if self._is_path(key):
            return ModuleView(self, key)
        raise KeyError(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        paths = self._paths()
        if paths:
            split = split_key(key)
            if key not in paths and (split is None or split[0] not in paths):
                raise KeyError(
                    f"Modular.state[param][{key!r}]: this chain has no module at path "
                    f"{key if split is None else split[0]!r}; its module paths are {sorted(paths)} "
                    "(keys are '<module path>.<key>', e.g. '1.exp_avg')"
                )
        if self._is_path(key):
            if not isinstance(value, Mapping):
                raise TypeError(f"Modular.state[param][{key!r}] must be a dict of that module's state, got {type(value).__name__}")
            view = ModuleView(self, key)
            items = list(value.items())  # value may be the view itself
            view.clear()
            for k, v in items:
                view[k] = v
            return
        super().__setitem__(key, value)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __reduce__(self) -> Any:
        return (dict, (dict(self),))

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        from copy import deepcopy

        return {k: deepcopy(v, memo) for k, v in self.items()}


class ModuleView(MutableMapping):
    """One module's state for one parameter: the keys ``"<path>.<key>"`` of a
    :class:`ParamState`, seen as ``key``. Reads and writes go straight to the parameter's state."""

    __slots__ = ("_ps", "_prefix")

    def __init__(self, ps: dict[str, Any], path: str):
        self._ps = ps
        self._prefix = path + "."

    def __getitem__(self, key: str) -> Any:
        return dict.__getitem__(self._ps, self._prefix + key)

    def get(self, key: str, default: Any = None) -> Any:
        return dict.get(self._ps, self._prefix + key, default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and dict.__contains__(self._ps, self._prefix + key)

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"a module's state key must be a non-empty string without '.', got {key!r}")
        dict.__setitem__(self._ps, self._prefix + key, value)

    def __delitem__(self, key: str) -> None:
        dict.__delitem__(self._ps, self._prefix + key)

    def _keys(self) -> list[str]:
        prefix, n = self._prefix, len(self._prefix)
        return [k[n:] for k in dict.keys(self._ps) if isinstance(k, str) and k.startswith(prefix) and "." not in k[n:]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def clear(self) -> None:
        for k in self._keys():
            dict.__delitem__(self._ps, self._prefix + k)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    __hash__ = None  # type: ignore[assignment]

    def __copy__(self) -> dict[str, Any]:
        return dict(self.items())

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        from copy import deepcopy

        return {k: deepcopy(v, memo) for k, v in self.items()}

    def __reduce__(self) -> Any:
        return (dict, (dict(self.items()),))

    def __repr__(self) -> str:
        return repr(dict(self.items()))


class StateList(list):
    """A module's views of many parameters' states (what :meth:`ModuleState.many` returns), with
    reads of one key for all of them at once."""

    __slots__ = ("_pss", "_path")

    def __init__(self, views: Iterable[ModuleView], pss: list[dict[str, Any]], path: str):
        super().__init__(views)
        self._pss = pss
        self._path = path

    def __getitem__(self, key: Any) -> Any:
        """``states[i]``: parameter ``i``'s state; ``states["key"]``: ``key``'s value in every
        parameter's state, as a list."""
        if type(key) is str:
            return list(map(itemgetter(f"{self._path}.{key}"), self._pss))
        return super().__getitem__(key)

    def missing(self, key: str) -> list[int]:
        """Positions of the states that have no ``key`` (for state an option creates when it is
        switched on later, such as Adam's ``max_exp_avg_sq``)."""
        if self.has_all(key):
            return []
        full = f"{self._path}.{key}"
        return [i for i, ps in enumerate(self._pss) if full not in ps]

    def values_of(self, key: str) -> list[Any]:
        """``[view[key] for view in self]``, without a Python call per parameter.

        Raises:
            KeyError: a parameter's state has no ``key``.
        """
        return list(map(itemgetter(f"{self._path}.{key}"), self._pss))

    def get_each(self, key: str, default: Any = None) -> list[Any]:
        """``[view.get(key, default) for view in self]``, without a Python call per parameter."""
        return list(map(dict.get, self._pss, repeat(f"{self._path}.{key}"), repeat(default)))

    def has_all(self, key: str) -> bool:
        """Whether every parameter's state has ``key``."""
        full = f"{self._path}.{key}"
        return all(map(dict.__contains__, self._pss, repeat(full)))


def values_of(states: Sequence[Mapping[str, Any]], key: str) -> list[Any]:
    """``[s[key] for s in states]``; one C-level pass for what :meth:`ModuleState.many` returned.

    Raises:
        KeyError: a state has no ``key``.
    """
    if type(states) is StateList:
        return states.values_of(key)
    return [s[key] for s in states]


class ModuleState:
    """``module.state``: the module's part of a :class:`StateStore`, keyed by the tensors the
    module sees (a real view of a complex parameter stands for the parameter).

    ``state[p]`` is the module's :class:`ModuleView` for ``p``; :meth:`many` returns the views
    of many parameters at once.
    """

    __slots__ = ("_store", "_path", "_owner", "_cache")

    def __init__(self, store: StateStore | None = None, path: str = "", owner: Mapping[Tensor, Tensor] | None = None):
        self._store = StateStore() if store is None else store
        self._path = path
        #: the parameter each tensor a module sees stands for, where that is another tensor
        self._owner: Mapping[Tensor, Tensor] = {} if owner is None else owner
        self._cache: tuple[tuple[int, ...], int, StateList] | None = None

    def __getstate__(self) -> tuple[Any, ...]:
        return (self._store, self._path, self._owner)  # the cache is keyed by object ids: not copied

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self._store, self._path, self._owner = state
        self._cache = None

    @property
    def describe(self) -> Callable[[Tensor], str] | None:
        """``describe(p)``: how errors name parameter ``p`` (set by ``Modular`` on the store)."""
        return getattr(self._store, "describe", None)

    def _key(self, p: Tensor) -> Tensor:
        owner = self._owner
        return owner.get(p, p) if owner else p

    def __getitem__(self, p: Tensor) -> ModuleView:
        return ModuleView(self._store[self._key(p)], self._path)

    def many(self, params: list[Tensor]) -> StateList:
        """``[self[p] for p in params]``, reused from step to step while no parameter's state
        was replaced."""
        if torch.compiler.is_compiling():  # the compiler guards on what it reads: no cache
            pss = [self._store[self._key(p)] for p in params]
            return StateList([ModuleView(ps, self._path) for ps in pss], pss, self._path)
        key = tuple(map(id, params))
        cached = self._cache
        if cached is not None and cached[1] == self._store.version and cached[0] == key:
            return cached[2]
        store = self._store
        pss = [store[self._key(p)] for p in params]
        out = StateList([ModuleView(ps, self._path) for ps in pss], pss, self._path)
        self._cache = (key, self._store.version, out)
        return out

    def get(self, p: Tensor, default: Any = None) -> Any:
        ps = self._store.get(self._key(p))
        if ps is None:
            return default
        view = ModuleView(ps, self._path)
        return view if len(view) else default

    def __setitem__(self, p: Tensor, value: Mapping[str, Any]) -> None:
        view = self[p]
        items = list(value.items())  # value may be the view itself
        view.clear()
        for k, v in items:
            view[k] = v

    def __delitem__(self, p: Tensor) -> None:
        ps = self._store.get(self._key(p))
        view = None if ps is None else ModuleView(ps, self._path)
        if view is None or not len(view):
            raise KeyError(p)
        view.clear()

    def pop(self, p: Tensor, *default: Any) -> Any:
        ps = self._store.get(self._key(p))
        view = None if ps is None else ModuleView(ps, self._path)
        if view is None or not len(view):
            if default:
                return default[0]
            raise KeyError(p)
        out = dict(view.items())
        view.clear()
        return out

    def __contains__(self, p: object) -> bool:
        ps = self._store.get(self._key(p)) if isinstance(p, Tensor) else None
        return ps is not None and len(ModuleView(ps, self._path)) > 0

    def items(self) -> Iterator[tuple[Tensor, ModuleView]]:
        """``(parameter, state)`` for every parameter this module has state for."""
        for p, ps in list(self._store.items()):
            if isinstance(p, Tensor):
                view = ModuleView(ps, self._path)
                if len(view):
                    yield p, view

    def __iter__(self) -> Iterator[Tensor]:
        return (p for p, _ in self.items())

    def __len__(self) -> int:
        return sum(1 for _ in self.items())

    def clear(self) -> None:
        for ps in list(self._store.values()):
            if isinstance(ps, ParamState):
                ModuleView(ps, self._path).clear()

    def __repr__(self) -> str:
        return f"ModuleState({ {id(p): dict(v.items()) for p, v in self.items()} !r})"


def flatten(ps: Mapping[str, Any]) -> dict[str, Any]:
    """A parameter's state in the flat layout: ``{"1": {"exp_avg": t}}`` or
    ``{"1.exp_avg": t}`` -> ``{"1.exp_avg": t}``."""
    out: dict[str, Any] = {}
    for key, v in ps.items():
        if split_key(key) is None and isinstance(v, Mapping):
            out.update({f"{key}.{k}": x for k, x in v.items()})
        else:
            out[key] = v
    return out


def unflatten(flat: Mapping[str, Any], paths: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``{"1.exp_avg": t}`` -> ``{"1": {"exp_avg": t}}`` for a chain with module ``paths`` (a
    key's module path is what comes before its last dot). Values that are already dicts keyed
    by a module path are kept as they are.

    Raises:
        KeyError: a key belongs to no module path.
    """
    known = set(paths)
    out: dict[str, dict[str, Any]] = {}
    for key, v in flat.items():
        if not isinstance(key, str):
            raise KeyError(f"state key {key!r} is not a string '<module path>.<key>'")
        if isinstance(v, Mapping) and (not known or key in known):
            out.setdefault(key, {}).update(v)
            continue
        split = split_key(key)
        if split is None or (known and split[0] not in known):
            raise KeyError(
                f"state key {key!r} belongs to no module of this chain (module paths: {sorted(known)}); "
                "keys are '<module path>.<key>', e.g. '1.exp_avg'"
            )
        out.setdefault(split[0], {})[split[1]] = v
    return out
