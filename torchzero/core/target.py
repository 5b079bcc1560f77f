"""The one place that routes a transform to its target: the update or the gradient."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .var import Var

__all__ = ["apply_to_target"]


def apply_to_target(
    var: Var,
    target: str,
    fn: Callable[[list[Tensor]], Sequence[Tensor]],
    fn_copy: Callable[[list[Tensor]], Sequence[Tensor]] | None = None,
) -> Var:
    """Applies ``fn`` (tensors -> tensors, may work in place) to ``var``'s update or gradient.

    - ``"update"``: ``fn`` gets the update (formed as a copy of the gradient if no module formed
      it yet), ``p.grad`` is never modified. If no module formed the update yet and ``fn_copy``
      is given (tensors -> new tensors, the inputs only read), ``fn_copy`` gets the gradient
      itself and its output becomes the update: no copy of the gradient is made first.
    - ``"grad"``: ``fn`` gets the gradients; later modules see the transformed gradient, an update
      formed later is formed from it, and ``p.grad`` holds it (in place) after the step.
    """
    if target == "update":
        if var.update is None and fn_copy is not None:
            var.update = list(fn_copy(var.get_grad()))
        else:
            var.update = list(fn(var.get_update()))
        return var
    grads = var.get_grad()
    out = list(fn(grads))
    changed = [i for i, (o, g) in enumerate(zip(out, grads)) if o is not g]
    if changed:
        torch._foreach_copy_([grads[i] for i in changed], [out[i] for i in changed])
    var.grad = grads
    return var
