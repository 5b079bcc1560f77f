"""Step size modules: learning rates, step sizes with their own key, and warmup."""
from .lr import LR
from .step_size import StepSize
from .warmup import Warmup, WarmupNormClip

__all__ = ["LR", "StepSize", "Warmup", "WarmupNormClip"]
