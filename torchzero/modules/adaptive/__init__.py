"""Adaptive (per-coordinate step size) modules."""
from .adagrad import Adagrad
from .adam import Adam
from .adan import Adan
from .lion import Lion
from .orthogonalize import Orthogonalize
from .rmsprop import RMSprop
from .rprop import Rprop

__all__ = ["Adam", "RMSprop", "Adagrad", "Lion", "Adan", "Rprop", "Orthogonalize"]
