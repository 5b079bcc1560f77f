"""Gradient estimators: modules that form the gradient from values of the loss (finite
differences, SPSA, MeZO) or from forward-mode directional derivatives, in place of a backward
pass. Each comes first in its chain; the modules after it work on the estimate."""
from .estimator import GradientEstimator
from .fdm import FDM
from .forward_gradient import ForwardGradient
from .mezo import MeZO
from .randomized import RDSA, SPSA, GaussianSmoothing, RandomizedFDM

__all__ = ["GradientEstimator", "FDM", "RandomizedFDM", "SPSA", "RDSA", "GaussianSmoothing", "MeZO", "ForwardGradient"]
