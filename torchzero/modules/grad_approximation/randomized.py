"""Randomized finite differences: the gradient from difference quotients along random
directions (``RandomizedFDM`` and its classical names ``SPSA``, ``RDSA``, ``GaussianSmoothing``)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ...core.var import Var
from ...functional.zeroth_order import DISTRIBUTIONS, randomized_gradient
from ...utils.validation import check_choice
from .estimator import GradientEstimator

__all__ = ["RandomizedFDM", "SPSA", "RDSA", "GaussianSmoothing"]


class RandomizedFDM(GradientEstimator):
    r"""The gradient estimated from difference quotients along random directions
    (:func:`~torchzero.functional.zeroth_order.randomized_gradient`):

    $$
    \hat g = \frac{1}{S} \sum_{s=1}^{S} \frac{f(x + h z_s) - f(x - h z_s)}{2h}\, z_s
    $$

    for ``formula="central"`` (``"forward"``: $(f(x + hz) - f(x))/h$, ``"backward"``:
    $(f(x) - f(x - hz))/h$), over $S$ = ``n_samples`` directions with
    $\mathbb{E}[z z^T] = I$ (``distribution``: ``"rademacher"`` $\pm 1$ entries, ``"gaussian"``,
    or ``"sphere"``, uniform on the sphere of radius $\sqrt n$). On a quadratic the central
    estimate is unbiased for any $h$; its variance is about $\lVert\nabla f\rVert^2 n / S$, so
    the estimate is noisy and is usually followed by momentum or Adam and a small step size.
    Costs $2S$ evaluations of the loss (``"central"``) or $S + 1$, and one copy of the
    parameters, from which they are put back bit for bit.

    As every gradient estimator, it comes first and needs a closure that returns the loss
    (called with ``backward=False``; no ``backward()``); the directions come from ``seed`` and
    the step count, saved with the optimizer and equal on every rank, see
    :class:`~torchzero.modules.grad_approximation.GradientEstimator`. The loss ``step`` returns
    is $f(x)$ for the one-sided formulas and the mean of $f(x \pm h z_s)$ for ``"central"``.

    Args:
        h: the finite-difference step, ``> 0`` (default: ``1e-3``).
        n_samples: directions per step $S$, ``>= 1`` (default: ``1``).
        formula: ``"central"``, ``"forward"`` or ``"backward"`` (0.3.x's ``"central2"`` and the
            like are accepted) (default: ``"central"``).
        distribution: ``"rademacher"``, ``"gaussian"`` or ``"sphere"`` (default: ``"rademacher"``).
        seed: the directions' seed, or ``None`` to draw one (default: ``None``).

    Example:
        Training without backward():

        >>> import torch, torchzero as tz
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Linear(4, 1)
        >>> X, y = torch.randn(64, 4), torch.randn(64, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.RandomizedFDM(n_samples=4, seed=0), tz.m.Adam(), tz.m.LR(1e-2))
        >>> closure = lambda backward=True: torch.nn.functional.mse_loss(model(X), y)
        >>> first = float(closure())
        >>> for _ in range(300):
        ...     loss = opt.step(closure)
        >>> float(loss) < 0.8 * first
        True
    """

    def __init__(
        self,
        h: float = 1e-3,
        n_samples: int = 1,
        formula: str = "central",
        distribution: str = "rademacher",
        seed: int | None = None,
    ):
        super().__init__(dict(h=h, n_samples=n_samples, formula=formula, distribution=distribution, seed=seed))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        super().validate_settings(s)
        if "distribution" in s:
            check_choice("distribution", s["distribution"], DISTRIBUTIONS, owner=type(self).__name__)

    def estimate(self, var: Var, settings: Mapping[str, Any], seeds: list[int]) -> tuple[list[Tensor], float]:
        return randomized_gradient(self.loss_fn(var), var.params, float(settings["h"]), settings["formula"], seeds, settings["distribution"])


class SPSA(RandomizedFDM):
    r"""Simultaneous perturbation stochastic approximation (Spall, 1992): central differences
    along Rademacher directions, $\hat g = \frac{f(x + hz) - f(x - hz)}{2h} z^{-1}$ (for
    $\pm 1$ entries $z^{-1} = z$), two evaluations per sample whatever the number of
    parameters. :class:`RandomizedFDM` with these defaults; see it for the arguments.

    Example:
        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
        >>> opt = tz.Modular([x], tz.m.SPSA(seed=0), tz.m.LR(0.05))
        >>> closure = lambda backward=True: (x ** 2).sum()
        >>> for _ in range(300):
        ...     loss = opt.step(closure)
        >>> float(loss) < 1e-3
        True

    References:
        Spall, J. C. (1992). Multivariate stochastic approximation using a simultaneous
        perturbation gradient approximation. IEEE Transactions on Automatic Control 37(3).
    """

    def __init__(
        self,
        h: float = 1e-3,
        n_samples: int = 1,
        formula: str = "central",
        distribution: str = "rademacher",
        seed: int | None = None,
    ):
        super().__init__(h, n_samples, formula, distribution, seed)


class RDSA(RandomizedFDM):
    r"""Random direction stochastic approximation (Kushner & Clark, 1978): central differences
    along Gaussian directions (``distribution="sphere"`` gives the classical directions uniform on
    a sphere). :class:`RandomizedFDM` with these defaults; see it for the arguments.

    Example:
        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
        >>> opt = tz.Modular([x], tz.m.RDSA(n_samples=2, seed=0), tz.m.LR(0.05))
        >>> closure = lambda backward=True: (x ** 2).sum()
        >>> for _ in range(300):
        ...     loss = opt.step(closure)
        >>> float(loss) < 1e-3
        True

    References:
        Kushner, H. J., & Clark, D. S. (1978). Stochastic Approximation Methods for Constrained
        and Unconstrained Systems. Springer.
    """

    def __init__(
        self,
        h: float = 1e-3,
        n_samples: int = 1,
        formula: str = "central",
        distribution: str = "gaussian",
        seed: int | None = None,
    ):
        super().__init__(h, n_samples, formula, distribution, seed)


class GaussianSmoothing(RandomizedFDM):
    r"""The gradient of the Gaussian smoothing $f_h(x) = \mathbb{E}_{z \sim N(0, I)} f(x + hz)$
    (Nesterov & Spokoiny, 2017): $\hat g = \frac1S \sum_s \frac{f(x + h z_s) - f(x)}{h} z_s$,
    an unbiased estimate of $\nabla f_h$, with many samples and a larger $h$ by default: it
    sees the landscape at scale $h$, smoothing out roughness finer than that.
    :class:`RandomizedFDM` with these defaults; see it for the arguments.

    Example:
        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
        >>> opt = tz.Modular([x], tz.m.GaussianSmoothing(seed=0), tz.m.LR(0.1))
        >>> closure = lambda backward=True: (x ** 2).sum()
        >>> for _ in range(100):
        ...     loss = opt.step(closure)
        >>> float(loss) < 1e-3
        True

    References:
        Nesterov, Y., & Spokoiny, V. (2017). Random gradient-free minimization of convex
        functions. Foundations of Computational Mathematics 17(2), 527-566.
    """

    def __init__(
        self,
        h: float = 1e-2,
        n_samples: int = 100,
        formula: str = "forward",
        distribution: str = "gaussian",
        seed: int | None = None,
    ):
        super().__init__(h, n_samples, formula, distribution, seed)
