"""``Adafactor``: factored second moments and relative step sizes (Shazeer & Stern, 2018), as torch.optim.Adafactor."""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ...core.settings import as_list, host_numbers
from ...core.transform import Context, Settings, States, Transform
from ...core.var import Var
from ...functional.adafactor import adafactor_step
from ...utils.validation import check_number

__all__ = ["Adafactor"]


def _factor_shapes(shape: torch.Size) -> tuple[list[int], list[int]]:
    row, col = list(shape), list(shape)
    row[-1] = 1
    col[-2] = 1
    return row, col


class Adafactor(Transform):
    r"""Adafactor as torch.optim.Adafactor computes it
    (:func:`~torchzero.functional.adafactor.adafactor_step`): for a matrix (or a batch of them,
    the last two dimensions) the second moment is the outer product of a row and a column
    average, $\hat V = RC/\overline R$, $O(m + n)$ memory instead of $O(mn)$; vectors keep a
    full average. The averaging weight is $t^{c}$ with $c$ = ``beta2_decay``, and the update is
    $g/\sqrt{\hat V}$, clipped to an RMS of at most ``d`` and scaled by the relative step size
    $\max(\epsilon_2, \mathrm{RMS}(x))\min(\text{lr}, 1/\sqrt t)$.

    ``lr`` enters the rule inside that minimum, not as a factor, so this module takes ``lr``
    itself and the chain has no ``LR``: ``tz.Modular(p, tz.m.Adafactor(lr=1e-2))`` is
    ``torch.optim.Adafactor(p, lr=1e-2)``. ``lr`` is published into the param groups, so
    ``torch.optim.lr_scheduler`` schedules it. torch's ``weight_decay=wd`` is
    ``tz.m.WeightDecay(lr * wd)`` after this module (torch's decay is decoupled and scaled by
    ``lr``); ``maximize=True`` is ``tz.m.Negate()`` first. Put it after other modules
    (``tz.m.ClipNorm``) to transform the gradient first.

    Speed and memory: matrices of at least ``2**14`` elements are computed in fewer passes
    (:func:`~torchzero.functional.adafactor.adafactor_step`; equal to torch's form up to
    rounding), and as the last module of a chain (before an ``LR``, if any) it hands each
    tensor's update over as soon as it is made, so the step holds one update at a time, as
    torch.optim.Adafactor's loop does (:meth:`~torchzero.core.Transform.apply_tensors_stream`).

    Args:
        lr: the relative step size's cap, ``>= 0`` (default: ``1e-2``).
        beta2_decay: the exponent $c$ of the averaging weight $t^{c}$, ``<= 0``
            (default: ``-0.8``).
        eps: $(\epsilon_1, \epsilon_2)$: the floor of $\sqrt{\hat V}$ (``None``: the machine
            epsilon of the parameter's dtype) and of the parameter's RMS (default:
            ``(None, 1e-3)``).
        d: the update's RMS clipping threshold, ``>= 1`` as torch requires (default: ``1``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(16, 8)
        >>> opt = tz.Modular(model.parameters(), tz.m.ClipNorm(1.0), tz.m.Adafactor(lr=1e-2))

    References:
        Shazeer, N., & Stern, M. (2018). Adafactor: Adaptive learning rates with sublinear
        memory cost. ICML.
    """

    STATE_KEYS = {"step": "step"}
    OPTIONAL_STATE_KEYS = {"row_var": "factor", "col_var": "factor", "variance": "like_param"}
    GROUP_KEYS = ("lr",)

    def __init__(self, lr: float = 1e-2, beta2_decay: float = -0.8, eps: tuple[float | None, float] = (None, 1e-3), d: float = 1.0):
        super().__init__(dict(lr=lr, beta2_decay=beta2_decay, eps=tuple(eps) if isinstance(eps, list) else eps, d=d))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "Adafactor"
        if "lr" in s:
            check_number("lr", host_numbers(s["lr"]), owner=o, min=0.0)
        if "beta2_decay" in s:
            check_number("beta2_decay", s["beta2_decay"], owner=o, max=0.0)
        if "d" in s:
            check_number("d", s["d"], owner=o, min=1.0)
        if "eps" in s:
            eps = s["eps"]
            if not isinstance(eps, tuple) or len(eps) != 2:
                raise TypeError(f"Adafactor: eps must be a pair (eps1 or None, eps2), got {eps!r:.80}")
            if eps[0] is not None:
                check_number("eps[0]", eps[0], owner=o, min=0.0)
            check_number("eps[1]", eps[1], owner=o, min=0.0)

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        if tensor.dim() > 1:
            row, col = _factor_shapes(tensor.shape)
            return {"row_var": tensor.new_zeros(row), "col_var": tensor.new_zeros(col)}
        return {"variance": torch.zeros_like(tensor, memory_format=torch.preserve_format)}

    def begin(self, tensors: list[Tensor], var: Var) -> tuple[States, Settings, Context]:
        # checked before anything changes (the step counters advance as the step begins):
        # complex parameters, and factors loaded for another shape, would fail inside the step
        params = var.params
        states = self.state.many(params)
        each = [states.get_each(k) for k in ("step", "row_var", "col_var", "variance")]
        for i, (p, t, r, c, v) in enumerate(zip(params, *each)):
            base = p._base  # Modular hands modules the real view of a complex parameter
            if p.is_complex() or (base is not None and base.is_complex()):
                raise RuntimeError(
                    "Adafactor does not support complex parameters (as torch.optim.Adafactor): its row and column "
                    "factors would mix the real and imaginary parts; use Adam for complex parameters"
                )
            if t is None and r is None and c is None and v is None:
                continue  # no state yet: made as the step begins
            if p.dim() > 1:
                row, col = _factor_shapes(p.shape)
                if not (isinstance(r, Tensor) and isinstance(c, Tensor) and list(r.shape) == row and list(c.shape) == col):
                    raise ValueError(
                        f"Adafactor: parameter {i} of this step (shape {tuple(p.shape)}) needs row_var {tuple(row)} and "
                        f"col_var {tuple(col)} in its state, got {None if r is None else tuple(r.shape)} and "
                        f"{None if c is None else tuple(c.shape)}; was the state loaded for another model?"
                    )
            elif not isinstance(v, Tensor):
                raise ValueError(f"Adafactor: the state of parameter {i} of this step (shape {tuple(p.shape)}) lacks its variance")
        return super().begin(tensors, var)

    def apply_tensors_stream(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> Iterator[Tensor]:
        """One tensor's update at a time, the input only read: at the end of a chain, each
        parameter moves before the next update is made, as torch.optim.Adafactor's loop does."""
        n = len(tensors)
        steps = as_list(ctx.step, n)
        lrs, decays, epss, ds = (as_list(settings[k], n) for k in ("lr", "beta2_decay", "eps", "d"))
        rows, cols, variances = (states.get_each(k) for k in ("row_var", "col_var", "variance"))
        for g, p, r, c, v, t, lr, decay, (eps1, eps2), d in zip(tensors, ctx.params, rows, cols, variances, steps, lrs, decays, epss, ds):
            yield adafactor_step(g, p, r, c, v, float(t), float(host_numbers(lr)), float(decay), eps1, float(eps2), float(d))

    def apply_tensors_copy(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> Sequence[Tensor]:
        """:meth:`apply_tensors` reads the update only: handed the gradients themselves, it spares a copy."""
        return list(self.apply_tensors_stream(tensors, states, settings, ctx))

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> Sequence[Tensor]:
        return list(self.apply_tensors_stream(tensors, states, settings, ctx))
