"""Trust-region methods: the step minimizes a quadratic model of the loss within a radius that
grows or shrinks with how well the model predicted the loss."""
from .dense import CubicRegularization, DenseTrustRegion, Dogleg, LevenbergMarquardt, TrustCG
from .newton_cg_steihaug import NewtonCGSteihaug
from .trust_region import TrustRegion

__all__ = ["TrustRegion", "NewtonCGSteihaug", "DenseTrustRegion", "Dogleg", "LevenbergMarquardt", "TrustCG", "CubicRegularization"]
