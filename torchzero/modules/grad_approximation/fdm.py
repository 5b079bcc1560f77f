"""``FDM``: the gradient by finite differences along every coordinate."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ...core.var import Var
from ...functional.zeroth_order import fd_gradient
from .estimator import GradientEstimator

__all__ = ["FDM", "MAX_FDM"]

#: The most elements ``FDM`` works on (each costs one or two evaluations of the loss).
MAX_FDM = 100_000


class FDM(GradientEstimator):
    r"""The gradient by finite differences, one coordinate at a time
    (:func:`~torchzero.functional.zeroth_order.fd_gradient`):

    $$
    g_j = \frac{f(x + h e_j) - f(x)}{h}, \quad \frac{f(x) - f(x - h e_j)}{h}
    \quad\text{or}\quad \frac{f(x + h e_j) - f(x - h e_j)}{2h}
    $$

    (``formula`` ``"forward"``, ``"backward"``, ``"central"``; errors $O(h)$, $O(h)$,
    $O(h^2)$), with $h$ the step actually representable at $x_j$. $n$ evaluations of the loss
    (plus one at $x$), or $2n$ for ``"central"``: for problems of up to a few thousand
    parameters, or to check a gradient. The parameters are put back bit for bit.

    As every gradient estimator, it comes first in the chain and needs a closure that returns
    the loss (called with ``backward=False``; no ``backward()``), see
    :class:`~torchzero.modules.grad_approximation.GradientEstimator`. The loss ``step`` returns
    is $f(x)$ for the one-sided formulas and the mean of the central values for ``"central"``
    (an $O(h^2)$ estimate, at no extra evaluation).

    Args:
        h: the finite-difference step, ``> 0`` (default: ``1e-3``).
        formula: ``"forward"``, ``"backward"`` or ``"central"``; torchzero 0.3.x's
            ``"forward2"``/``"backward2"``/``"central2"`` are accepted (default: ``"central"``).

    Example:
        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([3.0, -4.0], dtype=torch.float64))
        >>> opt = tz.Modular([x], tz.m.FDM(), tz.m.LR(0.25))
        >>> closure = lambda backward=True: (x ** 2).sum()
        >>> for _ in range(20):
        ...     loss = opt.step(closure)
        >>> x.detach().abs().max() < 1e-5
        tensor(True)
    """

    def __init__(self, h: float = 1e-3, formula: str = "central"):
        super().__init__(dict(h=h, formula=formula))

    def seeds(self, settings: Mapping[str, Any], n: int) -> list[int]:
        return []  # nothing random

    def estimate(self, var: Var, settings: Mapping[str, Any], seeds: list[int]) -> tuple[list[Tensor], float]:
        n = sum(p.numel() for p in var.params)
        if n > MAX_FDM:
            raise ValueError(
                f"FDM evaluates the loss once or twice per element, and these parameters have {n:,} elements (at most "
                f"{MAX_FDM:,}); use a randomized estimator (tz.m.SPSA(), tz.m.MeZO()) or backpropagation"
            )
        return fd_gradient(self.loss_fn(var), var.params, float(settings["h"]), settings["formula"])
