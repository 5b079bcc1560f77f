"""Control flow: which modules run, on which parameters and when.

``GradientAccumulation`` accumulates updates over several steps; ``Split`` sends different
parameters through different chains; ``Alternate`` cycles through modules over steps;
``Multistep`` takes several inner steps per step; ``Wrap`` turns any ``torch.optim.Optimizer``
into a module.
"""
from .accumulate import GradientAccumulation
from .alternate import Alternate, Multistep
from .split import Split
from .wrap import Wrap

__all__ = ["GradientAccumulation", "Split", "Alternate", "Multistep", "Wrap"]
