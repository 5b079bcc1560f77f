"""``SumOfSquares``: a closure that returns residuals, minimized as the sum of their squares."""
from __future__ import annotations

from ...core.capabilities import Capabilities
from ...core.module import Module
from ...core.var import Var

__all__ = ["SumOfSquares"]


class SumOfSquares(Module):
    r"""Declares that the closure returns residuals $r$ and that the loss is $f = \lVert r\rVert_2^2$:
    ``Modular`` wraps the closure so that every module of the chain sees that loss and its
    gradient $2 J^T r$ (one backward pass), and ``step`` returns $f$
    (:class:`~torchzero.core.residuals.ResidualClosure`). The module itself leaves the update as
    it is; put it anywhere in the chain, usually first. Use it to minimize a least-squares
    problem with any method (L-BFGS, Adam); :class:`~torchzero.modules.least_squares.GaussNewton`
    declares the same by itself.

    Example:
        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))
        >>> opt = tz.Modular([x], tz.m.SumOfSquares(), tz.m.LBFGS(), tz.m.StrongWolfe())
        >>> closure = lambda backward=True: torch.stack([10 * (x[1] - x[0] ** 2), 1 - x[0]])
        >>> for _ in range(40):
        ...     loss = opt.step(closure)
        >>> x.detach()
        tensor([1., 1.], dtype=torch.float64)
    """

    CAPABILITIES = Capabilities(residuals=True)

    def __init__(self) -> None:
        super().__init__({})

    def step(self, var: Var) -> Var:
        return var
