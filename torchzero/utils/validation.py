"""Argument validation shared by every module.

Each checker raises at construction time with a message that names the argument,
shows the offending value and says what is allowed, e.g.
``ValueError: ClipNorm: max_norm must be a finite number >= 0, got -1.0``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from numbers import Integral, Real
from typing import Any

import torch

__all__ = [
    "as_setting",
    "MAX_BUFFER",
    "MAX_ITERATIONS",
    "check_number",
    "check_optional_number",
    "check_beta",
    "check_bool",
    "check_choice",
    "check_int",
    "check_dim",
    "check_target",
    "TARGETS",
]

TARGETS = ("update", "grad")

#: The largest history or window a module keeps (elements per buffer): larger sizes are refused
#: at construction instead of running out of memory at the first step.
MAX_BUFFER = 2**20
#: The most inner iterations a module runs per step (Newton-Schulz steps, inner optimizer steps).
MAX_ITERATIONS = 10_000


def as_setting(value: Any, *, keep_tensor: bool = False) -> Any:
    """A setting's value with its numbers in plain Python form, as modules compute with them.

    NumPy scalars, ``fractions.Fraction``, ``decimal.Decimal`` and other ``numbers.Real`` become
    ``float`` (integral types ``int``, NumPy booleans ``bool``); a 1-element real tensor becomes a
    number, or stays the tensor it is where ``keep_tensor`` (settings a module computes with as tensors,
    such as a tensor ``lr``); a generator or other one-shot iterator becomes a tuple (read once,
    here, so validation doesn't consume it); tuples and lists are converted element by element.
    Anything else is returned unchanged, for validation to judge.
    """
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, torch.Tensor):
        if value.numel() == 1 and not value.is_complex() and value.dtype != torch.bool and not value.is_meta:
            if keep_tensor:  # the same tensor: a scheduler may fill_() it in place, as torch.optim allows
                return value
            return value.item()
        return value
    if isinstance(value, bool):
        return bool(value)
    module = type(value).__module__
    if module == "numpy" and hasattr(value, "item") and getattr(value, "shape", None) == ():
        item = value.item()
        return item if isinstance(item, (bool, int, float)) else value
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, (Real, Decimal)):
        return float(value)
    if isinstance(value, (tuple, list)):
        out = [as_setting(v, keep_tensor=keep_tensor) for v in value]
        return type(value)(out) if type(value) in (tuple, list) else value
    if isinstance(value, Iterator):
        return tuple(as_setting(v, keep_tensor=keep_tensor) for v in value)
    return value


def _where(owner: str | None) -> str:
    return f"{owner}: " if owner else ""


def _is_number(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, torch.Tensor):
        return x.numel() == 1 and not x.is_complex()
    return isinstance(x, Real)


def check_number(
    name: str,
    value: Any,
    *,
    owner: str | None = None,
    min: float | None = None,
    max: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
    allow_inf: bool = False,
) -> float:
    """Checks that ``value`` is a real number (not bool, not NaN) within the given bounds."""
    if isinstance(value, torch.Tensor) and value.numel() != 1 and not value.is_complex():
        # the right type with the wrong size: a ValueError, as torch.optim raises for it
        raise ValueError(f"{_where(owner)}Tensor {name} must be 1-element, got shape {tuple(value.shape)}")
    if not _is_number(value):
        raise TypeError(f"{_where(owner)}{name} must be a real number, got {value!r} of type {type(value).__name__}")
    v = float(value)
    lo = "-inf" if min is None else f"{'>=' if min_inclusive else '>'} {min:g}"
    hi = "" if max is None else f" and {'<=' if max_inclusive else '<'} {max:g}"
    what = f"a {'' if allow_inf else 'finite '}number" + (f" {lo}" if min is not None else "") + hi
    bad = math.isnan(v) or (not allow_inf and math.isinf(v))
    if min is not None and (v < min or (v == min and not min_inclusive)):
        bad = True
    if max is not None and (v > max or (v == max and not max_inclusive)):
        bad = True
    if bad:
        raise ValueError(f"{_where(owner)}{name} must be {what}, got {value!r}")
    return v


def check_optional_number(name: str, value: Any, **kwargs: Any) -> float | None:
    """Like :func:`check_number` but ``None`` is allowed (and returned as is)."""
    if value is None:
        return None
    return check_number(name, value, **kwargs)


def check_beta(name: str, value: Any, *, owner: str | None = None) -> float:
    """A momentum/averaging coefficient: a number in ``[0, 1)``."""
    return check_number(name, value, owner=owner, min=0.0, max=1.0, max_inclusive=False)


def check_bool(name: str, value: Any, *, owner: str | None = None) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{_where(owner)}{name} must be True or False, got {value!r} of type {type(value).__name__}")
    return value


def check_int(name: str, value: Any, *, owner: str | None = None, min: int | None = None, max: int | None = None) -> int:
    """An int (not bool) within ``[min, max]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{_where(owner)}{name} must be an int, got {value!r} of type {type(value).__name__}")
    if (min is not None and value < min) or (max is not None and value > max):
        bounds = " and ".join(x for x in (f">= {min}" if min is not None else "", f"<= {max:_}" if max is not None else "") if x)
        why = " (a larger size is not supported: it would allocate more memory than a step can use)" if max is not None and value > max else ""
        raise ValueError(f"{_where(owner)}{name} must be an int {bounds}, got {value!r}{why}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[Any], *, owner: str | None = None) -> Any:
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{_where(owner)}{name} must be one of {allowed}, got {value!r}")
    return value


def check_target(value: Any, *, owner: str | None = None) -> str:
    """``target`` is ``"update"`` or ``"grad"``."""
    return check_choice("target", value, TARGETS, owner=owner)


def check_dim(value: Any, *, owner: str | None = None, allow_global: bool = True) -> int | tuple[int, ...] | str | None:
    """``dim``: ``None``, ``"global"``, an int, or a sequence of ints. Sequences are returned as tuples."""
    if value is None:
        return None
    if isinstance(value, str):
        if allow_global and value == "global":
            return value
        allowed = "None, 'global', an int or a sequence of ints" if allow_global else "None, an int or a sequence of ints"
        raise ValueError(f"{_where(owner)}dim must be {allowed}, got {value!r}")
    if isinstance(value, bool):
        raise TypeError(f"{_where(owner)}dim must be None, 'global', an int or a sequence of ints, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, Iterable):
        dims = tuple(value)
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
            raise TypeError(f"{_where(owner)}dim must contain only ints, got {value!r}")
        return dims
    raise TypeError(
        f"{_where(owner)}dim must be None, 'global', an int or a sequence of ints, got {value!r} of type {type(value).__name__}"
    )
