"""Scalars that are one value for all tensors or one value per tensor (private helpers)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Union

import torch

__all__ = ["Scalar", "is_one", "is_value", "smap", "collapse", "torch_scalar_dtype"]

Scalar = Union[float, Sequence[float]]
"""One number for every tensor, or a list with one number per tensor."""


def is_one(x: Any) -> bool:
    """True if ``x`` is a single value (not a per-tensor list or tuple)."""
    return not isinstance(x, (list, tuple))


def is_value(x: Any, value: float) -> bool:
    """True if ``x`` is the single value ``value`` (a per-tensor list or a tensor never is)."""
    return is_one(x) and not isinstance(x, torch.Tensor) and x == value


def smap(f: Callable[..., Any], *xs: Any) -> Any:
    """``f`` applied to single values, or elementwise when any argument is a per-tensor list."""
    if all(is_one(x) for x in xs):
        return f(*xs)
    n = max(len(x) for x in xs if not is_one(x))
    return [f(*(x if is_one(x) else x[i] for x in xs)) for i in range(n)]


def collapse(x: Any) -> Any:
    """A per-tensor list whose values are all equal as that one value; anything else as is.

    Under ``torch.compile`` the values (per-parameter step counters, symbolic there) are compared
    as floats: an integer equality would let the compiler replace one counter by another, and
    inductor (torch 2.13) can then emit code that uses a counter it never binds (``NameError:
    name 's47' is not defined``); a float equality is only a guard.
    """
    if is_one(x) or not x:
        return x
    first = x[0]
    if isinstance(first, torch.Tensor):  # step counters under torch.compile: kept one per tensor
        return list(x)
    if torch.compiler.is_compiling():
        return first if all(float(v) == float(first) for v in x) else list(x)
    return first if all(v == first for v in x) else list(x)


def torch_scalar_dtype() -> torch.dtype:
    """The dtype torch.optim keeps its per-parameter scalars in (step counts, NAdam's momentum
    product, ASGD's step size): float64 when that is the default dtype, else float32."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
