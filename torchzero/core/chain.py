"""``Chain``: modules applied one after another. A list of modules is accepted anywhere a module is."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Union

from .module import Module
from .var import Var

__all__ = ["Chain", "Chainable", "as_module", "flatten_modules"]

Chainable = Union[Module, Iterable["Chainable"]]
"""A module, or a (nested) list of modules meaning a :class:`Chain`."""


def flatten_modules(modules: Iterable[Any], owner: str = "Chain") -> list[Module]:
    """Flattens nested lists/tuples of modules, checking that every item is a :class:`Module`."""
    out: list[Module] = []
    for m in modules:
        if isinstance(m, Module):
            out.append(m)
        elif isinstance(m, (list, tuple)):
            out.extend(flatten_modules(m, owner))
        else:
            hint = " (did you forget to instantiate it, e.g. tz.m.Adam() instead of tz.m.Adam?)" if isinstance(m, type) else ""
            raise TypeError(f"{owner}: expected a torchzero Module or a list of modules, got {m!r}{hint}")
    return out


def as_module(modules: Any, owner: str = "Chain") -> Module:
    """A module as is; a list of modules as a :class:`Chain` (a one-element list as its element)."""
    if isinstance(modules, Module):
        return modules
    flat = flatten_modules([modules], owner)
    if not flat:
        raise ValueError(f"{owner}: got an empty list of modules")
    return flat[0] if len(flat) == 1 else Chain(*flat)


class Chain(Module):
    """Applies modules in order; each one gets the ``Var`` the previous one returned.

    Args:
        *modules: modules or (nested) lists of modules.

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Chain(tz.m.ClipNorm(1.0), tz.m.Adam()), tz.m.LR(1e-3))
    """

    def __init__(self, *modules: Chainable):
        super().__init__()
        flat = flatten_modules(modules, "Chain")
        for i, m in enumerate(flat):
            self.children[str(i)] = m

    @property
    def modules(self) -> list[Module]:
        return list(self.children.values())

    def step(self, var: Var) -> Var:
        for m in self.children.values():
            var = m.step(var)
            if var.skip_update:
                break
        return var

    def __repr__(self) -> str:
        inner = ",\n".join("  " + repr(m).replace("\n", "\n  ") for m in self.children.values())
        return f"Chain(\n{inner}\n)"
