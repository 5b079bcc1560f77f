"""An exact line search for quadratic objectives, as a LineSearch subclass (a test helper)."""
from __future__ import annotations

from typing import Any

from torchzero.modules.line_search import LineSearch, Trials


class QuadraticExact(LineSearch):
    """phi(a) is a parabola on a quadratic: its curvature from the slopes at 0 and 1 gives the
    exact minimizer a = -phi'(0) / (phi'(1) - phi'(0))."""

    def search(self, trials: Trials, settings: dict[str, Any]) -> float:
        _, slope1 = trials.value_and_slope(1.0)
        curvature = slope1 - trials.g0
        return -trials.g0 / curvature if curvature > 0 else 0.0
