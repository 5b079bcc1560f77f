"""Line searches: modules that scale the update by a step length found by evaluating the closure."""
from .adaptive_backtracking import AdaptiveBacktracking
from .backtracking import Backtracking
from .line_search import LineSearch, Trials
from .strong_wolfe import StrongWolfe

__all__ = ["LineSearch", "Trials", "Backtracking", "AdaptiveBacktracking", "StrongWolfe"]
