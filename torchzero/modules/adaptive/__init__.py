"""Adaptive (per-coordinate step size) modules."""
from .adam import Adam

__all__ = ["Adam"]
