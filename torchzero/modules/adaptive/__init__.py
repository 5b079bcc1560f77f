"""Adaptive (per-coordinate step size) modules."""
from .adadelta import Adadelta
from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam
from .ademamix import AdEMAMix
from .adamax import Adamax
from .asgd import ASGD
from .adan import Adan
from .lion import Lion
from .muon import Muon
from .nadam import NAdam
from .orthogonalize import Orthogonalize
from .radam import RAdam
from .prodigy import Prodigy
from .psgd import PSGDKron
from .rmsprop import RMSprop
from .rprop import Rprop
from .shampoo import Shampoo
from .soap import SOAP

__all__ = ["Adam", "NAdam", "RAdam", "Adamax", "Adadelta", "Adafactor", "ASGD", "RMSprop", "Adagrad", "Lion", "Adan", "Rprop", "Orthogonalize", "Muon", "AdEMAMix", "SOAP", "Shampoo", "PSGDKron", "Prodigy"]
