"""Weight decay: added to the update (coupled or decoupled by position) or applied to the parameters."""
from .weight_decay import DirectWeightDecay, WeightDecay

__all__ = ["WeightDecay", "DirectWeightDecay"]
