"""Nonlinear conjugate gradient methods."""
from .cg import ConjugateGradient, DaiYuan, FletcherReeves, HagerZhang, HestenesStiefel, LiuStorey, PolakRibiere

__all__ = ["PolakRibiere", "FletcherReeves", "HestenesStiefel", "DaiYuan", "LiuStorey", "HagerZhang", "ConjugateGradient"]
