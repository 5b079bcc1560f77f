"""Momentum: moving averages of the update, Nesterov's look-ahead, bias correction cautious masking and Schedule-Free averaging."""
from .cautious import Cautious
from .debias import Debias
from .ema import EMA, NAG, HeavyBall
from .mars import MARSCorrection
from .schedule_free import ScheduleFree

__all__ = ["EMA", "HeavyBall", "NAG", "Debias", "Cautious", "ScheduleFree", "MARSCorrection"]
