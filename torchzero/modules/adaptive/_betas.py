"""Validation shared by the modules that take torch.optim's ``betas`` pair."""
from __future__ import annotations

from typing import Any

from ...utils.validation import check_beta

__all__ = ["check_betas"]


def check_betas(value: Any, owner: str) -> tuple[float, float]:
    """``betas`` as torch.optim takes it: a pair of numbers in ``[0, 1)``."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{owner}: betas must be a pair (beta1, beta2), got {value!r:.80}")
    return check_beta("betas[0]", value[0], owner=owner), check_beta("betas[1]", value[1], owner=owner)
