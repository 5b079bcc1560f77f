"""Least squares: closures that return residuals, minimized as the sum of their squares, by
Gauss-Newton (with a line search or as the model of a trust region: Levenberg-Marquardt) or by
any other method."""
from .gauss_newton import GaussNewton
from .sum_of_squares import SumOfSquares

__all__ = ["GaussNewton", "SumOfSquares"]
