"""``Module``: the unit of a chain. It owns per-parameter state, per-parameter settings and children.

Settings are layered per parameter (a ``ChainMap``): overrides set with
:meth:`Module.set_param_groups` > keys of the parameter's param group > the module's defaults.
The param group is referenced, not copied, so a scheduler that changes ``group["lr"]`` is seen
on the next step.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import ChainMap
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..utils.validation import as_setting
from .capabilities import Capabilities
from .settings import Settings
from .state import ModuleState

if TYPE_CHECKING:
    from .var import Var

__all__ = ["Module"]


class Module(ABC):
    """Base class of every module.

    Args:
        defaults: the module's settings and their values; every key may be overridden per
            parameter by a param-group key of the same name or by :meth:`set_param_groups`.

    Attributes:
        defaults: the module-level settings.
        state: per-parameter state, ``state[param] -> dict``; created on first use.
        global_state: state that is not per parameter (e.g. a step counter).
        children: named sub-modules (``inner`` modules, the members of a chain).
    """

    #: What ``Modular`` needs to know about this module (a step guard, a part of the fused
    #: chain, a gradient probe): declared here, read only through it.
    CAPABILITIES: Capabilities = Capabilities()

    #: Setting names this module publishes into every param group of a :class:`Modular`
    #: (with its default value), so ``torch.optim.lr_scheduler`` can find and change them.
    GROUP_KEYS: tuple[str, ...] = ()

    #: Settings read from an element of a param-group key that ``torch.optim`` schedulers use,
    #: ``{setting: (group key, index)}``: Adam's ``{"beta1": ("betas", 0), "beta2": ("betas", 1)}``
    #: makes ``group["betas"]`` (published with the defaults) the source of ``beta1``/``beta2``.
    GROUP_ALIASES: Mapping[str, tuple[str, int]] = {}

    #: The keys every non-empty per-parameter state of this module has, and what they hold
    #: (``"like_param"``: a tensor shaped like the parameter; ``"count"``: a number or a 0-dim
    #: tensor; ``"own_dtype"``: a tensor kept in its own dtype when loaded, even where its shape
    #: is the parameter's, which torch.optim would cast). A loaded state dict is checked against it.
    STATE_KEYS: Mapping[str, str] = {}

    #: Settings that may be tensors (a tensor ``lr``, as ``torch.optim`` allows): a 1-element
    #: tensor given for them is kept as it is; for any other setting it becomes a number.
    TENSOR_SETTINGS: tuple[str, ...] = ()

    #: Keys a state may have or not (Adam's ``max_exp_avg_sq``, made with ``amsgrad=True``), and
    #: what they hold, as in :attr:`STATE_KEYS`.
    OPTIONAL_STATE_KEYS: Mapping[str, str] = {}

    def __init__(self, defaults: Mapping[str, Any] | None = None):
        self.defaults: dict[str, Any] = self.normalize_settings(defaults or {})
        self.validate_settings(self.defaults)
        self.state = ModuleState()
        self.global_state: dict[str, Any] = {}
        self.children: dict[str, Module] = {}
        self._overrides: dict[Tensor, dict[str, Any]] = {}
        self._settings: dict[Tensor, ChainMap[str, Any]] = {}
        # settings_list's last answer; any change to which ChainMap a parameter has, or to
        # overrides, bumps the version and so invalidates it
        self._settings_version = 0
        self._settings_cache: tuple[tuple[int, ...], int, Settings] | None = None
        self._params: list[Tensor] = []
        self._overrides_any = False
        self._hidden_group_keys: frozenset[str] = frozenset()
        self._last_stats: dict[str, Any] = {}
        self.full_stats = False

    # ----------------------------------------------------------------- what Modular tells a module
    def hide_group_keys(self, keys: frozenset[str]) -> None:
        """Param-group keys this module does not read (``Modular`` calls it for nested modules:
        a top-level module's published key, such as ``"lr"``, is not a nested module's setting)."""
        self._hidden_group_keys = frozenset(keys)

    def clear_stats(self) -> None:
        """Forgets the statistics of the last step (``Modular`` calls it before each step, and
        after a step that was skipped)."""
        if self._last_stats:
            self._last_stats = {}

    @property
    def has_overrides(self) -> bool:
        """Whether some parameter has settings of its own (:meth:`set_param_groups`)."""
        return self._overrides_any

    # ----------------------------------------------------------------- settings
    def normalize_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """``settings`` with their numbers in plain Python form (:func:`~torchzero.utils.validation.as_setting`):
        NumPy and tensor scalars, fractions and decimals become ``int``/``float``, generators
        tuples; settings named in :attr:`TENSOR_SETTINGS` keep a 1-element tensor as it is.
        Applied to the defaults, to overrides and to param-group values before validation."""
        keep = self.TENSOR_SETTINGS
        return {k: as_setting(v, keep_tensor=k in keep) for k, v in settings.items()}

    def validate_settings(self, settings: Mapping[str, Any]) -> None:
        """Raises ``ValueError``/``TypeError`` for an invalid value of a setting.

        Called with the defaults at construction, and with param-group keys and overrides when
        they are given, so bad values never reach a step. Subclasses override it.
        """

    def published_settings(self) -> dict[str, Any]:
        """The param-group keys this module publishes in a :class:`Modular`, with their defaults:
        :attr:`GROUP_KEYS` as they are, :attr:`GROUP_ALIASES` gathered into their group key
        (Adam: ``{"betas": (beta1, beta2)}``)."""
        out: dict[str, Any] = {k: self.defaults[k] for k in self.GROUP_KEYS}
        packed: dict[str, dict[int, Any]] = {}
        for setting, (key, i) in self.GROUP_ALIASES.items():
            packed.setdefault(key, {})[i] = self.defaults[setting]
        for key, vals in packed.items():
            out[key] = tuple(vals[i] for i in range(len(vals)))
        return out

    def normalize_group_value(self, name: str, value: Any) -> Any:
        """A param-group value in the form this module computes with (see
        :meth:`normalize_settings`), if this module reads key ``name``; else ``value`` unchanged."""
        if name in self.defaults:
            return as_setting(value, keep_tensor=name in self.TENSOR_SETTINGS)
        aliased = {i: setting for setting, (key, i) in self.GROUP_ALIASES.items() if key == name}
        if not aliased or not isinstance(value, (tuple, list)):
            return value
        if len({isinstance(value[i], Tensor) for i in aliased if i < len(value)}) > 1:
            return value  # mixed tensors and numbers: refused by validate_group_value, as torch.optim refuses them
        out = [as_setting(v, keep_tensor=aliased.get(i) in self.TENSOR_SETTINGS) for i, v in enumerate(value)]
        return type(value)(out) if type(value) in (tuple, list) else value

    def validate_group_value(self, name: str, value: Any) -> None:
        """Validates the value of param-group key ``name`` if this module reads it (a setting,
        or a group key its :attr:`GROUP_ALIASES` read from); does nothing otherwise."""
        if name in self.defaults:
            self.validate_settings({name: value})
            return
        aliased = {s: i for s, (key, i) in self.GROUP_ALIASES.items() if key == name}
        if not aliased:
            return
        owner = type(self).__name__
        n = max(aliased.values()) + 1
        if not isinstance(value, (tuple, list)) or len(value) < n:
            raise ValueError(f"{owner}: param-group {name!r} must be a tuple of {n} values, got {value!r}")
        if len({isinstance(value[i], Tensor) for i in aliased.values()}) > 1:
            raise ValueError(f"{owner}: {name} must be either all floats or all Tensors, got {value!r}")
        self.validate_settings({s: value[i] for s, i in aliased.items()})

    def settings(self, param: Tensor) -> ChainMap[str, Any]:
        """The settings of ``param``: overrides > its param group > defaults."""
        s = self._settings.get(param)
        if s is None:
            s = self._settings[param] = ChainMap(self._overrides.setdefault(param, {}), {}, self.defaults)
            self._settings_version += 1
        return s

    def __getstate__(self) -> dict[str, Any]:
        # the cache is keyed by object ids, meaningless in a copy
        # (and so are packed step counters: torchzero.core.steps)
        return {**self.__dict__, "_settings_cache": None, "_step_block": None}

    def settings_list(self, params: list[Tensor]) -> Settings:
        """The :class:`~torchzero.core.settings.Settings` of ``params``, cached for the same
        parameters from step to step (the ChainMaps are live views: values changed in a param
        group are seen)."""
        if torch.compiler.is_compiling():  # the compiler guards on what it reads; no ids
            return Settings([self.settings(p) for p in params])
        key = tuple(map(id, params))
        cached = self._settings_cache
        if cached is not None and cached[1] == self._settings_version and cached[0] == key:
            return cached[2]
        out = Settings(self.settings(p) for p in params)
        self._settings_cache = (key, self._settings_version, out)
        return out

    def set_param_groups(self, param_groups: Iterable[Mapping[str, Any]]) -> Module:
        """Overrides settings of this module only, for some parameters.

        Args:
            param_groups: dicts like ``{"params": [w1, w2], "max_norm": 0.1}``; keys other than
                ``"params"`` must be settings of this module.

        Returns:
            ``self``, so it can be used inline in a chain.

        Example:
            >>> import torch, torchzero as tz
            >>> model = torch.nn.Linear(4, 2)
            >>> clip = tz.m.ClipNorm(1.0).set_param_groups([{"params": [model.bias], "max_norm": 0.1}])
            >>> opt = tz.Modular(model.parameters(), clip, tz.m.LR(1e-2))
        """
        name = type(self).__name__
        for group in param_groups:
            if not isinstance(group, Mapping) or "params" not in group:
                raise TypeError(f"{name}.set_param_groups: each group must be a dict with a 'params' key, got {group!r}")
            settings = self.normalize_settings({k: v for k, v in group.items() if k != "params"})
            unknown = sorted(set(settings) - set(self.defaults))
            if unknown:
                raise ValueError(f"{name}.set_param_groups: unknown setting(s) {unknown}; this module has {sorted(self.defaults)}")
            self.validate_settings(settings)
            params = group["params"]
            params = [params] if isinstance(params, Tensor) else list(params)
            for p in params:
                self._overrides.setdefault(p, {}).update(settings)
            self._overrides_any = self._overrides_any or bool(settings)
            self._settings_version += 1
        return self

    def _bind_group(self, group: dict[str, Any], keys: list[Tensor] | None = None) -> None:
        """Links the parameters of a param group to this module and its children (called by Modular).

        ``keys``: the tensors modules see for these parameters, if not the parameters themselves
        (``Modular`` passes real views of complex parameters).
        """
        visible = None  # one view per group, so all its parameters share it
        for p in group["params"] if keys is None else keys:
            current = self._settings.get(p)
            if current is None or getattr(current.maps[1], "group", current.maps[1]) is not group:
                if p not in self._settings:
                    self._params.append(p)
                if visible is None:
                    visible = self._group_view(group)
                self._settings[p] = ChainMap(self._overrides.setdefault(p, {}), visible, self.defaults)
                self._settings_version += 1
        for child in self.children.values():
            child._bind_group(group, keys)

    def _group_view(self, group: dict[str, Any]) -> Mapping[str, Any]:
        """What this module's settings see of a param group: without the keys hidden from nested
        modules, with :attr:`GROUP_ALIASES` read from their group key."""
        view: Mapping[str, Any] = group
        if self._hidden_group_keys:
            view = _Without(group, self._hidden_group_keys)
        aliases = {s: a for s, a in self.GROUP_ALIASES.items() if a[0] not in self._hidden_group_keys}
        if aliases:
            view = _Aliased(group, view, aliases)
        return view

    def _unbind(self) -> None:
        self._settings.clear()
        self._settings_version += 1
        self._params.clear()
        for child in self.children.values():
            child._unbind()

    # ----------------------------------------------------------------- children
    def set_child(self, name: str, module: Any) -> None:
        """Registers a child; a list of modules becomes a :class:`~torchzero.core.chain.Chain`."""
        from .chain import as_module

        self.children[name] = as_module(module, owner=f"{type(self).__name__}: {name}")

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and all descendants with dotted paths (``"1.inner.0"``); deterministic."""
        yield prefix, self
        for name, child in self.children.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    # ----------------------------------------------------------------- statistics
    def record_stats(self, **raw: Any) -> None:
        """Keeps what this step measured (tensor references: no copies, no host sync).

        :meth:`stats` summarizes them when asked; :class:`Modular` clears them before each step.
        """
        self._last_stats = raw

    def summarize_stats(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Turns recorded values into the statistics :meth:`stats` returns. Default: as recorded."""
        return dict(raw)

    def stats(self) -> dict[str, Any]:
        """Statistics of the last step (0-dim tensors), e.g. ``{"norm": ..., "factor": ...}``.

        Empty if the module recorded nothing (it has no statistics, or did not run).
        """
        return self.summarize_stats(self._last_stats) if self._last_stats else {}

    # ----------------------------------------------------------------- stepping
    @abstractmethod
    def step(self, var: Var) -> Var:
        """Transforms ``var`` (usually its update) and returns it."""

    def reset(self) -> None:
        """Clears all state of this module and its children (settings are kept)."""
        self.state.clear()
        self.global_state.clear()
        for child in self.children.values():
            child.reset()

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """State of this module and its children, with parameters referred to by index.

        The index is the position of the parameter in the order the module first saw it
        (the optimizer's parameter order when used in :class:`Modular`).
        """
        index = {p: i for i, p in enumerate(self._params)}
        state = {index[p]: dict(s) for p, s in self.state.items() if s and p in index}
        return {
            "state": state,
            "global_state": dict(self.global_state),
            "children": {name: child.state_dict() for name, child in self.children.items()},
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Loads what :meth:`state_dict` returned into a module bound to the same parameters."""
        self.state.clear()
        for i, s in state_dict["state"].items():
            i = int(i)
            if i >= len(self._params):
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: state for parameter {i}, but this module knows "
                    f"{len(self._params)} parameters; build the optimizer with the same parameters first"
                )
            p = self._params[i]
            self.state[p] = {k: (v.to(p.device) if isinstance(v, Tensor) else v) for k, v in s.items()}
        self.global_state = dict(state_dict.get("global_state", {}))
        for name, child_sd in state_dict.get("children", {}).items():
            if name not in self.children:
                raise KeyError(f"{type(self).__name__}.load_state_dict: no child named {name!r}")
            self.children[name].load_state_dict(child_sd)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())

    def __repr__(self) -> str:
        s = f"{type(self).__name__}({self.extra_repr()})"
        if self.children:
            inner = "\n".join(f"  ({k}): " + repr(v).replace("\n", "\n  ") for k, v in self.children.items())
            s = s[:-1] + "\n" + inner + "\n)"
        return s



class _Without(Mapping):
    """A live view of a param group without some keys (the ``"lr"`` Modular adds for schedulers
    is not seen by modules nested inside other modules, e.g. ``ema_tfm=LR(2.0)``)."""

    def __init__(self, group: dict[str, Any], hidden: frozenset[str]):
        self.group = group
        self.hidden = hidden

    def __getitem__(self, key: str) -> Any:
        if key in self.hidden:
            raise KeyError(key)
        return self.group[key]

    def __iter__(self) -> Iterator[str]:
        return (k for k in self.group if k not in self.hidden)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _Aliased(Mapping):
    """A live view of a param group in which some settings are read from an element of another
    key (``beta1`` from ``betas[0]``) when the group has that key."""

    def __init__(self, group: dict[str, Any], view: Mapping[str, Any], aliases: Mapping[str, tuple[str, int]]):
        self.group = group
        self.view = view
        self.aliases = dict(aliases)

    def __getitem__(self, key: str) -> Any:
        alias = self.aliases.get(key)
        if alias is not None and alias[0] in self.group:
            return self.group[alias[0]][alias[1]]
        return self.view[key]

    def __iter__(self) -> Iterator[str]:
        seen = set(self.view)
        yield from seen
        yield from (k for k, (g, _) in self.aliases.items() if g in self.group and k not in seen)

    def __len__(self) -> int:
        return sum(1 for _ in self)
