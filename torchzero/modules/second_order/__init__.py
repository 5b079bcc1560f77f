"""Second-order methods: Newton's method with the exact Hessian, inexact Newton by conjugate
gradient on Hessian-vector products, and AdaHessian and Sophia, which scale each coordinate by
Hutchinson's estimate of the Hessian's diagonal."""
from .hutchinson import AdaHessian, SophiaH
from .newton import Newton
from .newton_cg import NewtonCG

__all__ = ["Newton", "NewtonCG", "AdaHessian", "SophiaH"]
