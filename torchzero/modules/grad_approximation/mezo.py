"""``MeZO``: memory-efficient zeroth-order gradient estimates (directions made again from seeds)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ...core.var import Var
from ...functional.zeroth_order import mezo_gradient
from ...utils.validation import check_choice
from .estimator import GradientEstimator

__all__ = ["MeZO"]


class MeZO(GradientEstimator):
    r"""MeZO (Malladi et al., 2023): the central estimate
    $\hat g = \frac1S \sum_s \frac{f(x + h z_s) - f(x - h z_s)}{2h} z_s$ made without storing $z$
    or a copy of the parameters (:func:`~torchzero.functional.zeroth_order.mezo_gradient`): the
    parameters move in place to $x + hz$, $x - hz$ and back, each part of $z$ made again from
    its seed, one parameter at a time. Two forward passes per sample, no backward pass and no
    activations kept: the memory is the model's at inference, plus the estimate (the size of
    the gradient) and one parameter's part of $z$; see the MeZO gallery example for a
    measurement. For fine-tuning large models, follow it with ``tz.m.LR`` (the paper's ZO-SGD)
    or a momentum.

    The parameters are put back by adding $hz$, exact up to rounding (a relative $h \cdot
    2^{-24}$ in float32), not bit for bit as the other estimators put them back from a copy; so
    a step skipped by the non-finite policy may leave them that far from where they were.

    As every gradient estimator, it comes first and needs a closure that returns the loss
    (called with ``backward=False``), see
    :class:`~torchzero.modules.grad_approximation.GradientEstimator`. The loss ``step`` returns
    is the mean of $f(x \pm h z_s)$.

    Args:
        h: the perturbation scale $\epsilon$ of the paper, ``> 0`` (default: ``1e-3``).
        n_samples: directions per step, ``>= 1`` (default: ``1``).
        distribution: ``"rademacher"`` or ``"gaussian"`` (the paper's) (default: ``"rademacher"``).
        seed: the directions' seed, or ``None`` to draw one (default: ``None``).

    Example:
        >>> import torch, torchzero as tz
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Linear(4, 1)
        >>> X, y = torch.randn(64, 4), torch.randn(64, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.MeZO(seed=0), tz.m.LR(1e-2))
        >>> closure = lambda backward=True: torch.nn.functional.mse_loss(model(X), y)
        >>> first = float(closure())
        >>> for _ in range(300):
        ...     loss = opt.step(closure)
        >>> float(loss) < 0.8 * first
        True

    References:
        Malladi, S. et al. (2023). Fine-Tuning Language Models with Just Forward Passes.
        NeurIPS (Algorithm 1).
    """

    def __init__(self, h: float = 1e-3, n_samples: int = 1, distribution: str = "rademacher", seed: int | None = None):
        super().__init__(dict(h=h, n_samples=n_samples, distribution=distribution, seed=seed))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        super().validate_settings(s)
        if "distribution" in s:
            check_choice("distribution", s["distribution"], ("rademacher", "gaussian"), owner="MeZO")

    def estimate(self, var: Var, settings: Mapping[str, Any], seeds: list[int]) -> tuple[list[Tensor], float]:
        return mezo_gradient(self.loss_fn(var), var.params, float(settings["h"]), seeds, settings["distribution"])
