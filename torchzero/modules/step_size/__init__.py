"""Step size modules: learning rates, step sizes with their own key, warmup, and step sizes
computed from the function (Polyak) or from the last step (Barzilai-Borwein)."""
from .adaptive_step_size import BarzilaiBorwein, PolyakStepSize
from .lr import LR
from .step_size import StepSize
from .warmup import Warmup, WarmupNormClip

__all__ = ["LR", "StepSize", "Warmup", "WarmupNormClip", "PolyakStepSize", "BarzilaiBorwein"]
