"""The few decisions torchzero makes on the host, and what ``torch.compile`` makes of them.

Deciding to skip a whole step (``Modular(nonfinite="skip"|"raise")``, the step guards
``SkipNonFinite`` and ``SkipOnSpike``) needs a value on the host: one ``bool(tensor)`` per step.
A compiled graph cannot contain that, so under ``torch.compile`` :func:`host_bool` first inserts
a graph break that says why and what to do instead: with ``fullgraph=True`` compilation stops
with that message; without it, the step is compiled in pieces around the decision.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["host_bool"]


def host_bool(flag: Tensor, why: str) -> bool:
    """``bool(flag)`` (a host sync); under ``torch.compile`` first a graph break with message ``why``.

    In eager mode this is ``bool(flag)`` plus one ``torch.compiler.is_compiling()`` call.
    """
    if torch.compiler.is_compiling():
        torch._dynamo.graph_break(msg=why)
    return bool(flag)
