"""``Modular.state_dict`` and ``Modular.load_state_dict``: the saved layout, and a load that is
validated as a whole before anything changes.

Layout (``torch.optim``'s, plus one key per param group)::

    {"state": {0: {"1.step": tensor(3.), "1.exp_avg": ..., ...}, ...},   # "<module path>.<key>"
     "param_groups": [{"lr": 0.001, ..., "params": [0, 1, ...],
                       "torchzero": {"format": 1,
                                     "modules": {"0": "ClipNorm", "1": "Adam", "2": "LR"},
                                     "global_state": {"": {"skipped_steps": 0}, ...}}}]}

The ``"torchzero"`` record (the chain's fingerprint and the state that is not per parameter)
is the same in every param group, so a state dict stays deterministic however the groups are
arranged, and ``torch.distributed.checkpoint``, which keeps only ``"state"`` (keyed by
parameter) and the param groups' keys, keeps it.

Loading checks the whole dict first: its structure, the param groups (count, sizes, setting
values), the chain's fingerprint, every state entry against its parameter and module. Only then
is anything replaced; a failed load raises and leaves the optimizer exactly as it was.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .state import flatten, unflatten
from .steps import as_step

if TYPE_CHECKING:
    from .module import Module
    from .modular import Modular

__all__ = ["RECORD_KEY", "pack", "prepare_load", "LoadPlan", "chain_fingerprint"]

#: The param-group key of the chain's record in a state dict.
RECORD_KEY = "torchzero"
_FORMAT = 1


def chain_fingerprint(opt: Modular) -> dict[str, str]:
    """``{module path: class name}`` for every module of the chain (the root chain excluded)."""
    return {path: type(m).__name__ for path, m in opt.chain.named_modules() if path}


def _record(opt: Modular) -> dict[str, Any]:
    global_state = {path: dict(m.global_state) for path, m in opt.chain.named_modules() if m.global_state}
    return {"format": _FORMAT, "modules": chain_fingerprint(opt), "global_state": global_state}


def pack(opt: Modular) -> dict[str, Any]:
    """The state dict of ``opt`` (before ``state_dict`` post-hooks), as ``torch.optim`` packs it."""
    mapping: dict[int, int] = {}
    start = 0

    def pack_group(group: dict[str, Any]) -> dict[str, Any]:
        nonlocal start
        packed = {k: v for k, v in group.items() if k != "params"}
        mapping.update({id(p): i for i, p in enumerate(group["params"], start) if id(p) not in mapping})
        packed["params"] = [mapping[id(p)] for p in group["params"]]
        start += len(packed["params"])
        return packed

    groups = [pack_group(g) for g in opt.param_groups]
    state: dict[Any, Any] = {}
    for k, v in opt.state.items():
        if isinstance(k, Tensor):
            if id(k) not in mapping:
                continue  # a parameter no longer in any group
            flat = flatten(v)
            if flat:
                state[mapping[id(k)]] = flat
        else:
            state[k] = v
    record = _record(opt)
    for g in groups:
        g[RECORD_KEY] = record
    return {"state": state, "param_groups": groups}


# ---------------------------------------------------------------------------------- loading
@dataclass
class LoadPlan:
    """What a validated state dict replaces: built completely before anything is changed."""

    param_groups: list[dict[str, Any]]
    state: dict[Any, Any]  # parameter -> {path: {key: value}}; other keys as saved
    global_state: dict[str, dict[str, Any]]


def _fail(msg: str) -> ValueError:
    return ValueError(f"Modular.load_state_dict: {msg}; nothing was changed")


def _param_label(opt: Modular, p: Tensor, index: Any) -> str:
    name = opt._param_names.get(p)
    return f"parameter {index!r}" + (f" ({name!r})" if name else "")


def _saved_record(sd: Mapping[str, Any], groups: Sequence[Mapping[str, Any]]) -> tuple[dict[str, str] | None, dict[str, Any]]:
    """``(fingerprint or None, global state)`` from the current layout or the earlier ones
    (``"global_state"`` at the top level or in the first param group, no fingerprint)."""
    records = [g[RECORD_KEY] for g in groups if RECORD_KEY in g]
    if records:
        rec = records[0]
        if not isinstance(rec, Mapping) or not isinstance(rec.get("modules"), Mapping) or not isinstance(rec.get("global_state", {}), Mapping):
            raise _fail(f"param group key {RECORD_KEY!r} must be the record state_dict() writes, got {rec!r:.200}")
        if rec.get("format", _FORMAT) != _FORMAT:
            raise _fail(f"state dict format {rec.get('format')!r} is not supported (this version writes {_FORMAT})")
        return dict(rec["modules"]), dict(rec.get("global_state", {}))
    gs = sd.get("global_state")
    if gs is None and groups:
        gs = groups[0].get("global_state")
    if gs is not None and not isinstance(gs, Mapping):
        raise _fail(f"'global_state' must be a dict keyed by module path, got {type(gs).__name__}")
    return None, dict(gs or {})


def _check_fingerprint(opt: Modular, saved: dict[str, str] | None) -> None:
    if saved is None:
        return
    mine = chain_fingerprint(opt)
    if saved != mine:
        def show(fp: Mapping[str, str]) -> str:
            return ", ".join(f"{p}: {c}" for p, c in fp.items()) or "(none)"

        raise _fail(
            f"the state dict was saved by another chain of modules ({show(saved)}), but this optimizer's chain is "
            f"({show(mine)}); build the optimizer with the same modules in the same order to load it"
        )


def _convert(opt: Modular, p: Tensor, index: Any, path: str, module: Module, state: Mapping[str, Any]) -> dict[str, Any]:
    """One module's saved state for parameter ``p``, checked and moved/cast like ``torch.optim``."""
    t = opt._key(p)  # the tensor modules see (the real view of a complex parameter)
    where = f"state of module {path!r} ({type(module).__name__}) for {_param_label(opt, p, index)}"
    out: dict[str, Any] = {}
    required = module.STATE_KEYS
    missing = [k for k in required if k not in state]
    if state and missing:
        raise _fail(f"{where} lacks {missing}; it has {sorted(state)}")
    declared = {**required, **module.OPTIONAL_STATE_KEYS}
    for key, v in state.items():
        kind = declared.get(key)
        if kind == "like_param" and not isinstance(v, Tensor):
            raise _fail(f"{where}: {key!r} must be a tensor shaped like the parameter {tuple(t.shape)}, got {v!r:.100}")
        if kind is not None and (isinstance(v, bool) or not isinstance(v, (Tensor, int, float))):
            raise _fail(f"{where}: {key!r} must be a number or a tensor, got {type(v).__name__} {v!r:.100}")
        if kind == "step":  # a step counter as torch.optim keeps it (a number saved by 0.3.x is converted)
            try:
                v = as_step(v).clone()  # the live counter is advanced in place
            except TypeError as e:
                raise _fail(f"{where}: {key!r}: {e}") from None
        elif isinstance(v, Tensor):
            v = _convert_tensor(t, key, v, kind, where)
        out[key] = v
    return out


def _convert_tensor(t: Tensor, key: str, v: Tensor, kind: str | None, where: str) -> Tensor:
    if v.is_sparse or v.layout != torch.strided:
        raise _fail(f"{where}: {key!r} has layout {v.layout}; only dense tensors are supported")
    shape, pshape = tuple(v.shape), tuple(t.shape)
    like = shape == pshape
    if kind == "like_param" and not like:
        raise _fail(f"{where}: {key!r} has shape {shape}, but the parameter has shape {pshape}; "
                    "was the checkpoint saved for another model?")
    if key == "step":  # a step counter keeps its dtype, and stays on the host where it was saved there
        return v if v.device.type == "cpu" else v.to(t.device)
    if like and v.is_floating_point() and t.is_floating_point() and kind != "own_dtype":
        return v.to(device=t.device, dtype=t.dtype)  # as torch.optim casts
    if v.is_complex() != t.is_complex() and like:
        raise _fail(f"{where}: {key!r} is {v.dtype} but the parameter is {t.dtype}")
    return v.to(device=t.device)


def _check_group_value(opt: Modular, name: str, value: Any, gi: int) -> Any:
    """A saved param-group value, validated by every module that reads it."""
    if name == "lr" and isinstance(value, float) and math.isnan(value):
        raise _fail(f"param group {gi}: lr=nan")
    try:
        for _, m in opt.chain.named_modules():
            value = m.normalize_group_value(name, value)
            m.validate_group_value(name, value)
    except (TypeError, ValueError) as e:
        raise _fail(f"param group {gi}: {e}") from e
    return value


def _looks_like_an_id(k: Any) -> bool:
    """A state key meant as a parameter id (a number, or a string of one): it must be in the groups."""
    if isinstance(k, bool):
        return False
    if isinstance(k, (int, float, Tensor)):
        return True
    if isinstance(k, str):
        try:
            float(k)
        except ValueError:
            return False
        return True
    return False


def prepare_load(opt: Modular, sd: Any) -> LoadPlan:
    """Validates ``sd`` against ``opt`` and builds everything loading it replaces.

    Raises:
        TypeError: ``sd`` is not a state dict.
        ValueError: it does not fit this optimizer (the message says what and where).
    """
    if not isinstance(sd, Mapping) or not isinstance(sd.get("state"), Mapping) or not isinstance(sd.get("param_groups"), (list, tuple)):
        got = sorted(map(str, sd)) if isinstance(sd, Mapping) else type(sd).__name__
        raise TypeError(
            "Modular.load_state_dict: expected a dict with 'state' (a dict) and 'param_groups' (a list), as "
            f"Modular.state_dict() returns, got {got}; nothing was changed"
        )
    saved_groups = list(sd["param_groups"])
    for i, g in enumerate(saved_groups):
        if not isinstance(g, Mapping) or not isinstance(g.get("params"), (list, tuple)):
            raise _fail(f"param group {i} must be a dict with a 'params' list, got {g!r:.200}")
    if len(saved_groups) != len(opt.param_groups):
        raise _fail(f"loaded state dict has {len(saved_groups)} parameter groups, this optimizer has {len(opt.param_groups)}")
    for i, (g, sg) in enumerate(zip(opt.param_groups, saved_groups)):
        if len(g["params"]) != len(sg["params"]):
            raise _fail(f"loaded state dict contains a parameter group ({i}) with {len(sg['params'])} parameters, "
                        f"but this optimizer's group has {len(g['params'])}")
    fingerprint, global_state = _saved_record(sd, saved_groups)
    _check_fingerprint(opt, fingerprint)

    modules = dict(opt.chain.named_modules())
    for path, gs in global_state.items():
        if path not in modules:
            raise _fail(f"global state for module {path!r}, which this chain does not have (paths: {sorted(modules)})")
        if not isinstance(gs, Mapping):
            raise _fail(f"global state of module {path!r} must be a dict, got {type(gs).__name__}")
    new_global = {path: deepcopy(dict(gs)) for path, gs in global_state.items()}

    # saved ids -> parameters, by position in the param groups (as torch.optim does)
    id_map: dict[Any, Tensor] = {}
    for sg, g in zip(saved_groups, opt.param_groups):
        for k, p in zip(sg["params"], g["params"]):
            try:
                id_map[k] = p
            except TypeError:
                raise _fail(f"parameter id {k!r} is not hashable") from None
    paths = [p for p in modules if p]
    state: dict[Any, Any] = {}
    for k, flat in sd["state"].items():
        if k not in id_map:
            if _looks_like_an_id(k):
                raise _fail(f"state for parameter id {k!r}, which no param group lists (ids: {sorted(map(repr, id_map))[:10]})")
            state[k] = flat  # any other key is kept as it is, as torch.optim keeps it
            continue
        p = id_map[k]
        if not isinstance(flat, Mapping):
            raise _fail(f"state of {_param_label(opt, p, k)} must be a dict, got {type(flat).__name__}")
        try:
            nested = unflatten(flat, paths)
        except KeyError as e:
            raise _fail(f"{_param_label(opt, p, k)}: {e.args[0]}") from None
        state[p] = {path: _convert(opt, p, k, path, modules[path], s) for path, s in nested.items()}

    new_groups: list[dict[str, Any]] = []
    for gi, (g, sg) in enumerate(zip(opt.param_groups, saved_groups)):
        ng = {k: deepcopy(v) for k, v in sg.items() if k not in ("params", RECORD_KEY, "global_state")}
        for name in list(ng):
            if name != "param_names":
                ng[name] = _check_group_value(opt, name, ng[name], gi)
        for name, value in opt.defaults.items():  # keys the chain publishes stay present
            ng.setdefault(name, g.get(name, value))
        ng[RECORD_KEY] = None  # filled in by state_dict()
        ng["params"] = g["params"]
        if "param_names" in g and "param_names" not in ng:
            ng["param_names"] = g["param_names"]
        new_groups.append(ng)
    return LoadPlan(param_groups=new_groups, state=state, global_state=new_global)
