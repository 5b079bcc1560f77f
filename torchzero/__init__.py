"""torchzero: composable optimizers for PyTorch.

An optimizer is a chain of small modules; each transforms the update (or, with
``target="grad"``, the gradient) before the parameters move::

    import torchzero as tz
    opt = tz.Modular(model.parameters(), tz.m.ClipNorm(1.0), tz.m.Adam(), tz.m.LR(1e-3))
"""
from . import modules as m
from .core import Chain, Modular, Module, TensorwiseTransform, Transform, Var, apply_transform
from .minimize import LeastSquaresResult, MinimizeResult, least_squares, minimize

__version__ = "0.4.0"

__all__ = [
    "Modular",
    "Module",
    "Transform",
    "TensorwiseTransform",
    "Chain",
    "Var",
    "apply_transform",
    "minimize",
    "MinimizeResult",
    "least_squares",
    "LeastSquaresResult",
    "m",
    "__version__",
]
