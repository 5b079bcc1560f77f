"""Quasi-Newton methods: curvature from differences of gradients."""
from .lbfgs import LBFGS

__all__ = ["LBFGS"]
