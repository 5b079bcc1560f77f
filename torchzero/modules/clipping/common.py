"""Argument checks shared by the clipping modules and functions."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...functional.norms import parse_ord
from ...utils.validation import check_bool, check_dim, check_int, check_number

__all__ = ["check_norm_settings", "check_norm_group_settings", "check_nonneg"]


def check_norm_group_settings(s: Mapping[str, Any], owner: str, allow_global: bool = True) -> None:
    """``dim``, ``inverse_dims`` and ``min_size``, if present."""
    if "dim" in s:
        check_dim(s["dim"], owner=owner, allow_global=allow_global)
    if "inverse_dims" in s:
        check_bool("inverse_dims", s["inverse_dims"], owner=owner)
    if "min_size" in s:
        check_int("min_size", s["min_size"], owner=owner, min=0)


def check_norm_settings(s: Mapping[str, Any], owner: str) -> None:
    """``ord`` and the norm-group arguments, if present."""
    if "ord" in s:
        parse_ord(s["ord"], owner=owner)
    check_norm_group_settings(s, owner)


def check_nonneg(name: str, s: Mapping[str, Any], owner: str) -> None:
    """``s[name]``, if present, is a finite number ``>= 0``."""
    if name in s:
        check_number(name, s[name], owner=owner, min=0.0)

