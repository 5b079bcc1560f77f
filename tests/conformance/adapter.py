"""Builds the ``tz.Modular`` equivalent of a ``torch.optim`` optimizer from torch's arguments.

The chains are those of the migration guide (docs/guide/migrating.md): the optimizer's
direction, then ``LR``; L2 weight decay before the direction, decoupled weight decay after it;
``maximize`` as ``Negate`` first. :func:`modular` makes one; :func:`adapted` returns a class
that constructs like the torch optimizer (``Adapted(params, lr=..., betas=...)``), so generic
tests written for ``torch.optim`` (PyTorch's own suite, through ``run_torch_suite.py``, and
``test_torch_conformance.py``) build ``Modular`` instead.

Arguments with no torchzero equivalent raise :class:`Unsupported` with the reason (the
migration guide's "What can't be expressed" lists the same).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

import torchzero as tz

__all__ = ["Unsupported", "SUPPORTED", "chain_for", "modular", "adapted"]


class Unsupported(Exception):
    """A torch.optim argument that no torchzero chain expresses."""


class Maximize(tz.Transform):
    """Negates the update where the ``maximize`` setting is True: torch's per-group
    ``maximize`` flag as a module (``Negate`` is the module for a whole chain)."""

    def __init__(self, maximize: bool = False):
        super().__init__({"maximize": maximize})

    def apply_tensors(self, tensors, states, settings, ctx):  # type: ignore[no-untyped-def]
        flip = [t for t, s in zip(tensors, settings) if s["maximize"]]
        if flip:
            torch._foreach_neg_(flip)
        return tensors


def _defaults(cls: type) -> dict[str, Any]:
    sig = inspect.signature(cls.__init__)
    return {k: p.default for k, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}


def _float(x: Any) -> float:
    return float(x) if isinstance(x, torch.Tensor) else x


def _common(name: str, kw: dict[str, Any], fusable: bool) -> None:
    if kw.get("differentiable"):
        raise Unsupported(f"{name}(differentiable=True): torchzero's steps run under no_grad and update in place")
    if kw.get("capturable"):
        raise Unsupported(f"{name}(capturable=True): torchzero reads step counts and decisions on the host (no CUDA graphs)")
    # foreach=False (torch's for-loop implementation) computes the same as foreach=True; torchzero
    # always runs the multi-tensor form, which is what the chain gives
    if kw.get("fused") and not fusable:
        raise Unsupported(f"{name}(fused=True): torchzero has a fused form only for Adam and AdamW chains")


def _start(kw: dict[str, Any], used: dict[str, Any]) -> list:
    """``Maximize`` where some group maximizes."""
    return [Maximize(kw["maximize"])] if used["maximize"] else []


def _adam(kw: dict[str, Any], used: dict[str, Any], decoupled_default: bool) -> list:
    b1, b2 = kw["betas"]
    decoupled = decoupled_default or used["decoupled_weight_decay"]
    chain = _start(kw, used)
    if used["weight_decay"] and not decoupled:
        chain.append(tz.m.WeightDecay(kw["weight_decay"]))
    chain.append(tz.m.Adam(b1, b2, kw["eps"], amsgrad=kw["amsgrad"]))
    if used["weight_decay"] and decoupled:
        chain.append(tz.m.WeightDecay(kw["weight_decay"]))
    return chain


def _sgd(kw: dict[str, Any], used: dict[str, Any]) -> list:
    m, d = kw["momentum"], kw["dampening"]
    chain = _start(kw, used)
    if used["weight_decay"]:
        chain.append(tz.m.WeightDecay(kw["weight_decay"]))
    if used["nesterov"]:
        chain.append(tz.m.NAG(m, d))
    elif used["momentum"]:
        chain.append(tz.m.HeavyBall(m, d))
    return chain


def _rmsprop(kw: dict[str, Any], used: dict[str, Any]) -> list:
    chain = _start(kw, used)
    if used["weight_decay"]:
        chain.append(tz.m.WeightDecay(kw["weight_decay"]))
    chain.append(tz.m.RMSprop(kw["alpha"], kw["eps"], centered=kw["centered"]))
    if used["momentum"]:
        chain.append(tz.m.HeavyBall(kw["momentum"]))
    return chain


def _adagrad(kw: dict[str, Any], used: dict[str, Any]) -> list:
    chain = _start(kw, used)
    if used["weight_decay"]:
        chain.append(tz.m.WeightDecay(kw["weight_decay"]))
    chain.append(tz.m.Adagrad(kw["lr_decay"], kw["initial_accumulator_value"], kw["eps"]))
    return chain


def _rprop(kw: dict[str, Any], used: dict[str, Any]) -> list:
    if isinstance(kw["lr"], torch.Tensor) and kw["lr"].numel() != 1:
        tz.m.LR(kw["lr"])  # raises LR's error for it
    lr = _float(kw["lr"])
    nminus, nplus = kw["etas"]
    lo, hi = kw["step_sizes"]
    if not lr > 0:
        raise Unsupported("Rprop with lr <= 0: torchzero's step sizes are relative to lr")
    chain = _start(kw, used)
    chain.append(tz.m.Rprop(nplus, nminus, lb=lo / lr, ub=hi / lr, backtrack=False))
    return chain


def _adam_variant(module: Callable[[dict[str, Any]], Any], decoupled_ok: bool) -> Callable[[dict[str, Any], dict[str, Any]], list]:
    """NAdam, RAdam (L2 or decoupled weight decay), Adamax, Adadelta (L2 only): the direction
    between the weight decays, as for Adam."""

    def build(kw: dict[str, Any], used: dict[str, Any]) -> list:
        decoupled = decoupled_ok and used["decoupled_weight_decay"]
        chain = _start(kw, used)
        if used["weight_decay"] and not decoupled:
            chain.append(tz.m.WeightDecay(kw["weight_decay"]))
        chain.append(module(kw))
        if used["weight_decay"] and decoupled:
            chain.append(tz.m.WeightDecay(kw["weight_decay"]))
        return chain

    return build


def _adafactor(kw: dict[str, Any], used: dict[str, Any]) -> list:
    """Adafactor takes lr itself (no LR after it); torch's decoupled decay is scaled by lr."""
    chain = _start(kw, used)
    chain.append(tz.m.Adafactor(kw["lr"], kw["beta2_decay"], kw["eps"], kw["d"]))
    if used["weight_decay"]:
        if any(isinstance(v, torch.Tensor) for v in (kw["lr"], kw["weight_decay"])):
            raise Unsupported("Adafactor with a Tensor lr and weight_decay: the decay is WeightDecay(lr * wd), a number")
        chain.append(tz.m.WeightDecay(kw["lr"] * kw["weight_decay"]))
    return chain


def _asgd(kw: dict[str, Any], used: dict[str, Any]) -> list:
    """ASGD takes lr itself (its step-size schedule); L2 weight decay before it."""
    chain = _start(kw, used)
    if used["weight_decay"]:
        chain.append(tz.m.WeightDecay(kw["weight_decay"]))
    chain.append(tz.m.ASGD(kw["lr"], kw["lambd"], kw["alpha"], kw["t0"]))
    return chain


def _muon(kw: dict[str, Any], used: dict[str, Any]) -> list:
    """Muon's direction, then its decoupled weight decay (torch's default 0.1)."""
    chain: list = [tz.m.Muon(kw["momentum"], kw["nesterov"], kw["ns_coefficients"], kw["eps"], kw["ns_steps"], kw["adjust_lr_fn"])]
    if used["weight_decay"]:
        chain.append(tz.m.WeightDecay(kw["weight_decay"]))
    return chain


#: Optimizers whose module takes lr itself: no trailing LR.
_OWN_LR = (torch.optim.Adafactor, torch.optim.ASGD)

_BUILDERS: dict[type, Callable[[dict[str, Any], dict[str, Any]], list]] = {
    torch.optim.Adafactor: _adafactor,
    torch.optim.ASGD: _asgd,
    torch.optim.Muon: _muon,
    torch.optim.NAdam: _adam_variant(lambda kw: tz.m.NAdam(kw["betas"], kw["eps"], kw["momentum_decay"]), True),
    torch.optim.RAdam: _adam_variant(lambda kw: tz.m.RAdam(kw["betas"], kw["eps"]), True),
    torch.optim.Adamax: _adam_variant(lambda kw: tz.m.Adamax(kw["betas"], kw["eps"]), False),
    torch.optim.Adadelta: _adam_variant(lambda kw: tz.m.Adadelta(kw["rho"], kw["eps"]), False),
    torch.optim.Adam: lambda kw, used: _adam(kw, used, False),
    torch.optim.AdamW: lambda kw, used: _adam(kw, used, True),
    torch.optim.SGD: _sgd,
    torch.optim.RMSprop: _rmsprop,
    torch.optim.Adagrad: _adagrad,
    torch.optim.Rprop: _rprop,
}
#: The torch.optim optimizers this adapter translates.
SUPPORTED = tuple(_BUILDERS)


#: Options that add a module to the chain when any param group uses them; groups that don't
#: use them get the module's neutral setting from their own keys (``weight_decay=0``).
_CHAIN_SHAPING = ("maximize", "weight_decay", "momentum", "nesterov", "decoupled_weight_decay")
#: Options every group must agree on: they choose between modules.
_MUST_AGREE = ("nesterov", "decoupled_weight_decay")


def chain_for(torch_cls: type, kwargs: dict[str, Any], groups: list[dict[str, Any]] = ()) -> tuple[list, dict[str, Any]]:  # type: ignore[assignment]
    """``(modules, Modular keyword arguments)`` equivalent to ``torch_cls(params, **kwargs)``
    where ``groups`` are the param-group dicts in ``params`` (their keys shape the chain too).

    Raises:
        Unsupported: an argument has no torchzero equivalent.
        TypeError: an argument torch doesn't take either.
    """
    if torch_cls not in _BUILDERS:
        raise Unsupported(f"{torch_cls.__name__}: no chain in the adapter (use tz.m.Wrap({torch_cls.__name__}))")
    defaults = _defaults(torch_cls)
    unknown = set(kwargs) - set(defaults)
    if unknown:
        raise TypeError(f"{torch_cls.__name__}.__init__() got unexpected keyword arguments {sorted(unknown)}")
    kw = {**defaults, **kwargs}
    kw.setdefault("decoupled_weight_decay", torch_cls is torch.optim.AdamW)
    fusable = torch_cls in (torch.optim.Adam, torch.optim.AdamW)
    every = [kw] + [{**kw, **{k: v for k, v in g.items() if k != "params"}} for g in groups]
    for options in every:
        _common(torch_cls.__name__, options, fusable)
    # Muon's nesterov is a setting of the Muon module, not a choice between modules
    for key in () if torch_cls is torch.optim.Muon else _MUST_AGREE:
        if len({bool(o.get(key, False)) for o in every}) > 1:
            raise Unsupported(f"{torch_cls.__name__}: param groups that disagree on {key!r} (it chooses between modules)")
    used = {k: any(bool(_float(o.get(k, False))) for o in every) for k in _CHAIN_SHAPING}
    modules = _BUILDERS[torch_cls](kw, used) + ([] if torch_cls in _OWN_LR else [tz.m.LR(kw["lr"])])
    options: dict[str, Any] = {"nonfinite": "propagate"}  # torch.optim applies NaN steps as they are
    if fusable and kw.get("fused") is False:
        options["fused"] = False
    # fused=True asks for speed; the chain takes its fused form whenever it has one (the default)
    return modules, options


def _groups(params: Any) -> tuple[Any, list[dict[str, Any]]]:
    """``params`` as a list (a generator is read once) and the param-group dicts in it."""
    if isinstance(params, (torch.Tensor, dict)) or not hasattr(params, "__iter__"):
        return params, []
    params = list(params)
    return params, [g for g in params if isinstance(g, dict)]


def modular(torch_cls: type, params: Any, **kwargs: Any) -> tz.Modular:
    """``tz.Modular`` equivalent to ``torch_cls(params, **kwargs)``."""
    params, groups = _groups(params)
    modules, options = chain_for(torch_cls, kwargs, groups)
    return tz.Modular(params, *modules, **options)


def adapted(torch_cls: type) -> type:
    """A ``tz.Modular`` subclass that constructs like ``torch_cls`` (same name, same arguments)."""

    class Adapted(tz.Modular):
        def __init__(self, params: Any, *args: Any, **kwargs: Any) -> None:
            names = [n for n in inspect.signature(torch_cls.__init__).parameters if n not in ("self", "params")]
            kwargs = {**dict(zip(names, args)), **kwargs}
            params, groups = _groups(params)
            modules, options = chain_for(torch_cls, kwargs, groups)
            super().__init__(params, *modules, **options)

    Adapted.__name__ = Adapted.__qualname__ = torch_cls.__name__
    return Adapted
