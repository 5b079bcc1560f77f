"""Termination criteria: modules that end the optimization (``opt.terminated``)."""
from .termination import (
    TerminateAfterNSteps,
    TerminateAll,
    TerminateAny,
    TerminateByGradientNorm,
    TerminateByUpdateNorm,
    TerminateOnLossReached,
    TerminateOnNoImprovement,
    TerminationCriteriaBase,
)

__all__ = [
    "TerminateAfterNSteps",
    "TerminateByGradientNorm",
    "TerminateByUpdateNorm",
    "TerminateOnNoImprovement",
    "TerminateOnLossReached",
    "TerminateAny",
    "TerminateAll",
    "TerminationCriteriaBase",
]
