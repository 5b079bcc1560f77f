"""Step size modules."""
from .lr import LR

__all__ = ["LR"]
