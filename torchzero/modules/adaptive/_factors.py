"""Checks shared by the Kronecker-factored modules (SOAP, Shampoo): a loaded factor must be the
square matrix the module's settings make for that dim, refused before the step changes anything."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from torch import Tensor

__all__ = ["check_square_factors"]


def check_square_factors(owner: str, param: Tensor, state: Mapping[str, Any], expected: Iterable[tuple[str, int]], settings: str) -> None:
    """Raises ``RuntimeError`` if ``state[key]`` is not an ``(n, n)`` tensor for any ``(key, n)``
    of ``expected``; ``settings`` names the settings that decide the shapes."""
    for key, n in expected:
        f = state.get(key)
        if not isinstance(f, Tensor) or tuple(f.shape) != (n, n):
            got = "missing" if f is None else (tuple(f.shape) if isinstance(f, Tensor) else type(f).__name__)
            raise RuntimeError(
                f"{owner}: the state {key!r} of a parameter of shape {tuple(param.shape)} should be a ({n}, {n}) tensor, "
                f"got {got}; nothing was changed. Was the state saved with other settings ({settings}) or for another model?"
            )
