"""Momentum: moving averages of the update, Nesterov's look-ahead, bias correction and cautious masking."""
from .cautious import Cautious
from .debias import Debias
from .ema import EMA, NAG, HeavyBall

__all__ = ["EMA", "HeavyBall", "NAG", "Debias", "Cautious"]
