"""The core: ``Var``, ``Module``, ``Transform``, ``Chain``, ``Modular`` and ``apply_transform``."""
from .apply import apply_transform
from .capabilities import Capabilities
from .chain import Chain, Chainable
from .modular import Modular
from .module import Module
from .settings import PerTensor, Settings
from .transform import Context, TensorwiseTransform, Transform
from .var import Var

__all__ = ["Var", "Module", "Transform", "TensorwiseTransform", "Chain", "Chainable", "Modular", "apply_transform", "Capabilities", "Context", "Settings", "PerTensor"]
