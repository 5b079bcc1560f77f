"""Elementwise operations on the update, whose operands may be numbers or module chains.

``Mul``, ``Div``, ``Add``, ``Sub`` and ``Clip`` take a number or a chain as operand (a chain is
applied to a copy of the update each step); ``Negate``, ``Abs``, ``Sign``, ``NanToNum`` transform
the update elementwise; ``Identity`` does nothing; ``Grad`` restarts the update from the gradient;
``Graft`` keeps the update's direction with the norm of another chain's output; ``Dropout`` zeroes
random elements.
"""
from .arithmetic import Abs, Add, Clip, Div, Mul, NanToNum, Negate, Sign, Sub
from .graft import Dropout, Graft
from .utility import Grad, Identity

__all__ = [
    "Mul",
    "Div",
    "Add",
    "Sub",
    "Negate",
    "Abs",
    "Sign",
    "Clip",
    "NanToNum",
    "Identity",
    "Grad",
    "Graft",
    "Dropout",
]
