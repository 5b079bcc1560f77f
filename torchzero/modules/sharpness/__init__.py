"""Sharpness-aware minimization: the gradient taken at the worst nearby point (SAM, ASAM)."""
from .sam import ASAM, SAM

__all__ = ["SAM", "ASAM"]
