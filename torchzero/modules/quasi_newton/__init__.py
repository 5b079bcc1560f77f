"""Quasi-Newton methods: curvature from differences of gradients."""
from .dense import BFGS, DFP, SR1, HessianUpdateStrategy
from .lbfgs import LBFGS
from .lsr1 import LSR1

__all__ = ["LBFGS", "LSR1", "BFGS", "DFP", "SR1", "HessianUpdateStrategy"]
