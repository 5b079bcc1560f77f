"""Quasi-Newton methods: curvature from differences of gradients."""
from .dense import BFGS, DFP, SR1, HessianUpdateStrategy
from .lbfgs import LBFGS

__all__ = ["LBFGS", "BFGS", "DFP", "SR1", "HessianUpdateStrategy"]
