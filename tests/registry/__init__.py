"""One registry of every module, which the generic tests iterate over.

Each file in this folder defines ``CASES: list[Case]`` (ways to build a module in a working
configuration) and ``BAD_ARGS: list[BadArg]`` (invalid constructions). Adding a module means
adding its entries in the file of its family; the generic tests (checkpoints, bad input, zero and
missing gradients, dtypes, ...) then cover it, and ``test_registry_covers_every_module`` fails if
a public module has no case.
"""
from __future__ import annotations

import importlib
import re
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Case:
    """A module in a working configuration.

    Attributes:
        id: readable test id, e.g. ``"ClipNorm-global"``.
        make: returns a fresh module (or list of modules); it is run as ``Modular(params, make(), LR(lr))``.
        covers: names of the ``tz.m`` classes this case exercises.
        stateful: the module keeps per-parameter state that a checkpoint must carry.
        target_grad: the case also works with ``target="grad"`` (built by ``make_grad``).
        make_grad: builds the module with ``target="grad"`` (when ``target_grad``).
        needs_closure: the module evaluates the closure itself (line searches and the like).
        lr: learning rate of the trailing ``LR`` module in generic tests; ``None`` for a module
            that takes lr itself and must be last (``ScheduleFree``): no ``LR`` follows it.
    """

    id: str
    make: Callable[[], Any]
    covers: tuple[str, ...]
    stateful: bool = True
    target_grad: bool = False
    make_grad: Callable[[], Any] | None = None
    needs_closure: bool = False
    lr: float | None = 1e-2
    tags: frozenset[str] = field(default_factory=frozenset)

    def chain(self, module: Any) -> list[Any]:
        """``module`` followed by ``LR(lr)`` (just ``module`` when ``lr`` is ``None``)."""
        import torchzero as tz

        return [module] if self.lr is None else [module, tz.m.LR(self.lr)]


@dataclass(frozen=True)
class BadArg:
    """An invalid construction: ``make()`` must raise ``exc`` with ``match`` (a regex) in the message."""

    id: str
    make: Callable[[], Any]
    exc: type[Exception] | tuple[type[Exception], ...]
    match: str

    def __post_init__(self) -> None:
        # ids name objects by their repr; an address in it differs between processes (pytest-xdist
        # workers must collect the same ids)
        object.__setattr__(self, "id", re.sub(r" at 0x[0-9a-f]+", "", self.id))


def _load() -> tuple[list[Case], list[BadArg]]:
    cases: list[Case] = []
    bad: list[BadArg] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        mod = importlib.import_module(f"{__name__}.{info.name}")
        cases.extend(getattr(mod, "CASES", []))
        bad.extend(getattr(mod, "BAD_ARGS", []))
    return cases, bad


CASES, BAD_ARGS = _load()

__all__ = ["Case", "BadArg", "CASES", "BAD_ARGS"]
