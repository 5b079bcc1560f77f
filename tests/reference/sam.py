"""References for SAM and ASAM, transcribed from the authors' published algorithms:

- SAM (Foret et al., github.com/google-research/sam, ``get_sam_gradient``): normalize the
  gradient by its global L2 norm (no floor), step to ``w + rho * g / ||g||``, take the gradient
  there and hand it to the base optimizer (one device: the perturbation from the full batch);
- ASAM (Kwon et al., github.com/SamsungLabs/ASAM, ``ASAM.ascent_step``): ``T_w = |w| + eta`` for
  parameters whose name contains "weight", 1 for the others; ``e = rho * T_w^2 g / (||T_w g|| +
  1e-16)``; the descent step undoes ``e`` and runs the base optimizer.

Plain loops over named parameters, independent of ``torchzero``.
"""
from __future__ import annotations

from collections.abc import Callable

import torch


def sam_step(model: torch.nn.Module, loss_fn: Callable[[], torch.Tensor], base: torch.optim.Optimizer, rho: float) -> float:
    """One SAM step; returns the loss at w."""
    params = [p for p in model.parameters() if p.requires_grad]
    base.zero_grad()
    loss = loss_fn()
    loss.backward()
    with torch.no_grad():
        norm = torch.sqrt(sum((p.grad * p.grad).sum() for p in params))
        offsets = [rho * p.grad / norm for p in params]
        for p, e in zip(params, offsets):
            p.add_(e)
    base.zero_grad()
    loss_fn().backward()
    with torch.no_grad():
        for p, e in zip(params, offsets):
            p.sub_(e)
    base.step()
    return float(loss)


def asam_step(model: torch.nn.Module, loss_fn: Callable[[], torch.Tensor], base: torch.optim.Optimizer, rho: float, eta: float) -> float:
    """One ASAM step; returns the loss at w."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    base.zero_grad()
    loss = loss_fn()
    loss.backward()
    with torch.no_grad():
        scales = {n: (p.abs() + eta if "weight" in n else torch.ones_like(p)) for n, p in named}
        norm = torch.sqrt(sum(((scales[n] * p.grad) ** 2).sum() for n, p in named)) + 1e-16
        offsets = {n: rho * scales[n] ** 2 * p.grad / norm for n, p in named}
        for n, p in named:
            p.add_(offsets[n])
    base.zero_grad()
    loss_fn().backward()
    with torch.no_grad():
        for n, p in named:
            p.sub_(offsets[n])
    base.step()
    return float(loss)
