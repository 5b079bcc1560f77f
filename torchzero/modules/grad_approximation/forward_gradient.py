"""``ForwardGradient``: the gradient estimated from directional derivatives along random directions."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.var import Var
from ...functional.zeroth_order import DISTRIBUTIONS, difference_quotient, directional_derivative, random_direction
from ...utils.validation import check_choice
from ..line_search.line_search import _global_mean
from .estimator import GradientEstimator

__all__ = ["ForwardGradient", "JVP_METHODS"]

#: How ``ForwardGradient`` gets $\nabla f \cdot v$: forward-mode autodiff, or finite differences.
JVP_METHODS = ("autograd", "forward", "central")


class ForwardGradient(GradientEstimator):
    r"""The forward gradient (Baydin et al., 2022): $\hat g = \frac1S \sum_s (\nabla f \cdot v_s)\,
    v_s$ over random directions $v_s$ with $\mathbb{E}[v v^T] = I$, an unbiased estimate of
    $\nabla f$, where each directional derivative comes from one evaluation of the loss in
    forward mode and no backward pass.

    ``jvp_method``: ``"autograd"`` computes $\nabla f \cdot v$ exactly by forward-mode automatic
    differentiation (:func:`~torchzero.functional.zeroth_order.directional_derivative`: the
    parameters become dual tensors in place for the evaluation; every op of the loss needs a
    forward-mode rule, which PyTorch's built-in ones have); ``"forward"`` and ``"central"``
    use difference quotients with step ``h`` instead (one more evaluation, or two, per
    direction), for losses that forward mode can't go through.

    As every gradient estimator, it comes first and needs a closure that returns the loss
    (called with ``backward=False``), see
    :class:`~torchzero.modules.grad_approximation.GradientEstimator`. The loss ``step``
    returns is $f(x)$ (the mean of $f(x \pm hv)$ for ``"central"``).

    Args:
        n_samples: directions per step, ``>= 1`` (default: ``1``).
        distribution: ``"gaussian"``, ``"rademacher"`` or ``"sphere"`` (default: ``"gaussian"``).
        jvp_method: ``"autograd"``, ``"forward"`` or ``"central"`` (default: ``"autograd"``).
        h: the finite-difference step of ``"forward"``/``"central"``, ``> 0`` (default: ``1e-3``).
        seed: the directions' seed, or ``None`` to draw one (default: ``None``).

    Example:
        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
        >>> opt = tz.Modular([x], tz.m.ForwardGradient(n_samples=2, seed=0), tz.m.LR(0.05))
        >>> closure = lambda backward=True: (x ** 2).sum()
        >>> for _ in range(300):
        ...     loss = opt.step(closure)
        >>> float(loss) < 1e-3
        True

    References:
        Baydin, A. G., Pearlmutter, B. A., Syme, D., Wood, F., & Torr, P. (2022). Gradients
        without backpropagation. arXiv:2202.08587.
    """

    def __init__(
        self,
        n_samples: int = 1,
        distribution: str = "gaussian",
        jvp_method: str = "autograd",
        h: float = 1e-3,
        seed: int | None = None,
    ):
        super().__init__(dict(n_samples=n_samples, distribution=distribution, jvp_method=jvp_method, h=h, seed=seed))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        super().validate_settings(s)
        if "distribution" in s:
            check_choice("distribution", s["distribution"], DISTRIBUTIONS, owner="ForwardGradient")
        if "jvp_method" in s:
            check_choice("jvp_method", s["jvp_method"], JVP_METHODS, owner="ForwardGradient")

    @torch.no_grad()
    def estimate(self, var: Var, settings: Mapping[str, Any], seeds: list[int]) -> tuple[list[Tensor], float]:
        params = var.params
        method, h = settings["jvp_method"], float(settings["h"])
        estimate = [torch.zeros_like(p) for p in params]
        losses: list[float] = []
        f = self.loss_fn(var)
        x0 = [p.detach().clone() for p in params] if method != "autograd" else None
        f0 = f() if method == "forward" else None
        for seed in seeds:
            v = random_direction(params, seed, settings["distribution"])
            if method == "autograd":
                value, d = directional_derivative(lambda: var.closure(False), params, v)  # type: ignore[misc]
                value, d = _global_mean(value), _global_mean(d)
                losses.append(value)
            else:
                assert x0 is not None
                fp = fm = None
                try:
                    torch._foreach_add_(params, v, alpha=h)
                    fp = f()
                    torch._foreach_copy_(params, x0)
                    if method == "central":
                        torch._foreach_add_(params, v, alpha=-h)
                        fm = f()
                finally:
                    torch._foreach_copy_(params, x0)
                d = difference_quotient(fp, f0, fm, h, method)
                losses += [fp, fm] if method == "central" else []  # type: ignore[list-item]
            torch._foreach_add_(estimate, v, alpha=d / len(seeds))
        loss = f0 if f0 is not None else sum(losses) / len(losses)
        return estimate, loss
