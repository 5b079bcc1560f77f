"""Shared machinery of the ops: operands that are a number or a module chain, and child steps."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ...core.module import Module
from ...core.settings import is_uniform
from ...core.transform import Context, Settings, States, Transform
from ...core.var import Var
from ...utils.validation import check_number

__all__ = ["OperandTransform", "is_chain", "scalars", "check_operand"]


def is_chain(value: Any) -> bool:
    """True for a module or a list/tuple (of modules, checked when it is registered as a child)."""
    return isinstance(value, (Module, list, tuple))


def scalars(value: Any) -> Any:
    """A setting (one value, or one per tensor) as a ``torch._foreach_*`` scalar argument."""
    return value if is_uniform(value) else list(value)


def check_operand(name: str, value: Any, owner: str, *, nonzero: bool = False, optional: bool = False) -> None:
    """A numeric operand: a finite real number (``None`` too if ``optional``; not ``0`` if ``nonzero``)."""
    if value is None and optional:
        return
    kinds = "None, a finite number or a module (chain)" if optional else "a finite number or a module (chain)"
    if isinstance(value, (str, bytes, bool)) or value is None:
        raise TypeError(f"{owner}: {name} must be {kinds}, got {value!r} of type {type(value).__name__}")
    check_number(name, value, owner=owner)
    if nonzero and float(value) == 0:
        raise ValueError(f"{owner}: {name} must be nonzero, got {value!r}")


class OperandTransform(Transform):
    """A transform whose operands (listed in ``OPERANDS``) are numbers or module chains.

    A number is a setting (overridable per param group); a chain is registered as a child of the
    same name and, each step, applied to a copy of the tensors the transform receives. Subclasses
    implement :meth:`apply_op`, which gets the tensors, the chain outputs by name and the settings.
    """

    OPERANDS: tuple[str, ...] = ()

    def __init__(self, operands: Mapping[str, Any], defaults: Mapping[str, Any] | None = None, *, target: str = "update"):
        numbers = {k: v for k, v in operands.items() if not is_chain(v)}
        chains = {k: v for k, v in operands.items() if is_chain(v)}
        super().__init__({**numbers, **(defaults or {})}, target=target)
        for name, chain in chains.items():
            self.set_child(name, chain)

    def apply_op(self, tensors: list[Tensor], chained: dict[str, list[Tensor]], settings: Settings) -> list[Tensor]:
        """Returns the result; ``chained`` holds the outputs of the operands that are chains."""
        raise NotImplementedError

    def operand(self, name: str, chained: dict[str, list[Tensor]], settings: Settings) -> Any:
        """The value of operand ``name``: a list of tensors (chain) or a ``_foreach`` scalar argument."""
        if name in chained:
            return chained[name]
        return scalars(settings[name])

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        return self.apply_op(tensors, {}, settings)

    def transform(self, tensors: list[Tensor], var: Var) -> list[Tensor]:
        chained = {name: self.run_child(name, [t.clone() for t in tensors], var) for name in self.OPERANDS if name in self.children}
        settings = self.settings_list(var.params)
        return list(self.apply_op(tensors, chained, settings))
