"""``SAM`` and ``ASAM``: sharpness-aware minimization, the gradient taken at the worst nearby point."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.module import Module
from ...core.settings import PerTensor
from ...core.var import Var
from ...functional.sam import sam_perturbation
from ...utils.validation import check_bool, check_number

__all__ = ["SAM", "ASAM"]


def _per_tensor(value: Any, n: int) -> list[Any]:
    return list(value) if isinstance(value, PerTensor) else [value] * n


class SAM(Module):
    r"""Sharpness-aware minimization: the gradient is taken at the point of the neighbourhood
    where the loss is highest (to first order), and passed on as the gradient of the step
    (:func:`~torchzero.functional.sam.sam_perturbation`):

    $$
    \hat\epsilon = \rho\, T\, \frac{\operatorname{sign}(Tg)\,|Tg|^{q-1}}{\max(\|Tg\|_q^{\,q-1}, \epsilon)},
    \qquad g_{\text{SAM}} = \nabla L(w + \hat\epsilon),
    $$

    with $g = \nabla L(w)$, $1/p + 1/q = 1$, the norm over all parameters, and $T = 1$ (SAM) or
    $T = |w| + \eta$ (``asam=True``, :class:`ASAM`). For $p = 2$, $\hat\epsilon = \rho\, T^2 g
    / \lVert Tg\rVert_2$.

    Each step costs two gradient evaluations: ``Modular`` evaluates $g$ at $w$ with the
    closure, then this module moves the parameters to $w + \hat\epsilon$, calls
    ``closure(backward=True)``, and puts the parameters back bit for bit (from a copy). The
    modules after it see $g_{\text{SAM}}$ as the gradient (``p.grad`` holds it too), and a module
    that evaluates the closure again (a line search) evaluates the SAM objective
    $L(w + \hat\epsilon(w))$, two evaluations each. The loss ``step`` returns is $L(w)$.

    It must come before any module that forms the update (a clip of the gradient,
    ``target="grad"``, may come first). Under DDP the gradients are averaged in ``backward``,
    so the perturbation comes from the global gradient (the SAM paper's reference computes it
    per device unless ``sync_perturbations`` is set) and is the same on every rank. ``rho``,
    ``asam`` and ``eta`` may differ between param groups (``{"params": biases, "asam": False}``
    gives biases $T = 1$, as the ASAM reference does); ``p`` and ``eps`` are one value for all.

    Args:
        rho: the radius $\rho \ge 0$ (default: ``0.05``).
        p: the norm of the neighbourhood, in $(1, \infty]$ (default: ``2``).
        eps: the floor of the denominator, ``>= 0`` (default: ``1e-10``).
        asam: adaptive SAM, $T = |w| + \eta$ (default: ``False``); see :class:`ASAM`.
        eta: ASAM's $\eta \ge 0$ (default: ``0.01``, as in Kwon et al.; unused without ``asam``).

    Example:
        SAM with SGD momentum:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> x, y = torch.randn(16, 4), torch.randn(16, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.SAM(0.05), tz.m.HeavyBall(0.9), tz.m.LR(0.1))
        >>> def closure(backward=True):
        ...     loss = torch.nn.functional.mse_loss(model(x), y)
        ...     if backward:
        ...         opt.zero_grad()
        ...         loss.backward()
        ...     return loss
        >>> loss = opt.step(closure)

    References:
        Foret, P., Kleiner, A., Mobahi, H., & Neyshabur, B. (2021). Sharpness-aware minimization
        for efficiently improving generalization. ICLR. https://arxiv.org/abs/2010.01412
    """

    def __init__(self, rho: float = 0.05, p: float = 2, eps: float = 1e-10, asam: bool = False, eta: float = 0.01):
        super().__init__(dict(rho=rho, p=p, eps=eps, asam=asam, eta=eta))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = type(self).__name__
        if "rho" in s:
            check_number("rho", s["rho"], owner=o, min=0.0)
        if "p" in s:  # p = 1 would make the dual exponent q = p/(p-1) infinite
            check_number("p", s["p"], owner=o, min=1.0, min_inclusive=False, allow_inf=True)
        if "eps" in s:
            check_number("eps", s["eps"], owner=o, min=0.0)
        if "asam" in s:
            check_bool("asam", s["asam"], owner=o)
        if "eta" in s:
            check_number("eta", s["eta"], owner=o, min=0.0)

    # ------------------------------------------------------------------ the step
    def _perturbation(self, params: list[Tensor], grads: list[Tensor]) -> list[Tensor]:
        settings = self.settings_list(params)
        one = settings.coupled(("p", "eps"), type(self).__name__)
        n = len(params)
        rho, asam, eta = (_per_tensor(settings[k], n) for k in ("rho", "asam", "eta"))
        return sam_perturbation(grads, params, [float(r) for r in rho], float(one["p"]), float(one["eps"]), asam, [float(e) for e in eta])

    def _at_perturbed(self, params: list[Tensor], grads: list[Tensor], closure: Callable[..., Any], backward: bool) -> Any:
        """Moves to $w + \\hat\\epsilon$, calls the closure, restores $w$ bit for bit."""
        with torch.no_grad():
            e = self._perturbation(params, grads)
            saved = [p.detach().clone() for p in params]
            torch._foreach_add_(params, e)
        try:
            with torch.enable_grad():
                return closure(backward)
        finally:
            with torch.no_grad():
                torch._foreach_copy_(params, saved)

    def step(self, var: Var) -> Var:
        if not var.params:
            return var
        owner = type(self).__name__
        if var.closure is None:
            raise RuntimeError(
                f"{owner} evaluates the gradient at a perturbed point: pass a closure to opt.step(closure), written as "
                "`def closure(backward=True): ...` that zeroes the gradients and calls loss.backward() when backward is True"
            )
        if var.update is not None:
            raise RuntimeError(
                f"{owner} replaces the gradient of the step, so it must come before the modules that form the update; "
                "put it first (a clip of the gradient with target='grad' may come before it); nothing was changed"
            )
        params, closure = var.params, var.closure
        grads = [g.clone() for g in var.get_grad()]  # the closure below overwrites p.grad
        self._at_perturbed(params, grads, closure, True)
        var.grad = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]

        def sam_closure(backward: bool = True) -> Any:
            """The SAM objective $L(w + \\hat\\epsilon(w))$ (and, with ``backward``, its gradient
            in ``p.grad``); leaves ``p.grad`` as it was without ``backward``."""
            before = None if backward else [p.grad for p in params]
            with torch.enable_grad():
                closure(True)
            g = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
            loss = self._at_perturbed(params, g, closure, backward)
            if before is not None:
                for p, b in zip(params, before):
                    p.grad = b
            return loss

        var.closure = sam_closure
        return var


class ASAM(SAM):
    r"""Adaptive SAM: :class:`SAM` with ``asam=True``, whose neighbourhood scales with the
    weights, $T = |w| + \eta$ elementwise, so that rescaling a layer (as ReLU networks allow)
    doesn't change the sharpness it measures: $\hat\epsilon = \rho\, T^2 g / \lVert Tg\rVert_2$ for $p = 2$.
    Its radius is larger than SAM's (default ``0.5``).

    The ASAM reference applies $T$ to weights only and $T = 1$ to biases: give biases
    ``{"params": biases, "asam": False}`` in the param groups for the same.

    Args:
        rho: the radius $\rho \ge 0$ (default: ``0.5``).
        p: the norm, in $(1, \infty]$ (default: ``2``).
        eps: the floor of the denominator, ``>= 0`` (default: ``1e-10``).
        eta: $\eta \ge 0$ (default: ``0.01``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(
        ...     [{"params": [model.weight]}, {"params": [model.bias], "asam": False}],
        ...     tz.m.ASAM(0.5), tz.m.HeavyBall(0.9), tz.m.LR(0.1),
        ... )

    References:
        Kwon, J., Kim, J., Park, H., & Choi, I. K. (2021). ASAM: Adaptive sharpness-aware
        minimization for scale-invariant learning of deep neural networks. ICML.
        https://arxiv.org/abs/2102.11600
    """

    def __init__(self, rho: float = 0.5, p: float = 2, eps: float = 1e-10, eta: float = 0.01):
        super().__init__(rho=rho, p=p, eps=eps, asam=True, eta=eta)
