"""Second-order methods: Newton's method with the exact Hessian, and inexact Newton by
conjugate gradient on Hessian-vector products."""
from .newton import Newton
from .newton_cg import NewtonCG

__all__ = ["Newton", "NewtonCG"]
