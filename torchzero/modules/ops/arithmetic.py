"""Elementwise arithmetic on the update: ``Mul``, ``Div``, ``Add``, ``Sub``, ``Clip`` (operands may be
numbers or module chains) and ``Negate``, ``Abs``, ``Sign``, ``NanToNum``."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.settings import is_uniform
from ...core.transform import Context, Settings, States, Transform
from ...functional.ops import nan_to_num_
from ...utils.validation import check_number, check_optional_number
from ._operands import OperandTransform, check_operand, scalars

__all__ = ["Mul", "Div", "Add", "Sub", "Clip", "Negate", "Abs", "Sign", "NanToNum"]

Operand = Any
"""A number, or a module / list of modules applied to a copy of the update."""


class Mul(OperandTransform):
    r"""Multiplies the update by ``other``: $u \leftarrow u \cdot o$.

    Args:
        other: a finite number, or a module (chain) applied to a copy of the update each step;
            its output $o$ multiplies the update elementwise.
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        Scale Adam's update by a half, and multiply the update by its own magnitude:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Adam(), tz.m.Mul(0.5), tz.m.LR(1e-3))
        >>> opt = tz.Modular(model.parameters(), tz.m.Mul(tz.m.Abs()), tz.m.LR(1e-3))
        >>> tz.apply_transform(tz.m.Mul(tz.m.Abs()), [torch.tensor([-2.0, 3.0])])[0]
        tensor([-4.,  9.])
    """

    OPERANDS = ("other",)

    def __init__(self, other: Operand, target: str = "update"):
        super().__init__({"other": other}, target=target)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        if "other" in s:
            check_operand("other", s["other"], "Mul")

    def apply_op(self, tensors: list[Tensor], chained: dict[str, list[Tensor]], settings: Settings) -> list[Tensor]:
        torch._foreach_mul_(tensors, self.operand("other", chained, settings))
        return tensors


class Div(OperandTransform):
    r"""Divides the update by ``other``: $u \leftarrow u / o$.

    Args:
        other: a finite nonzero number, or a module (chain) applied to a copy of the update each
            step; the update is divided elementwise by its output (zeros in it give inf/NaN).
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        Divide by $1 + |u|$ elementwise (a soft clip):

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Div([tz.m.Abs(), tz.m.Add(1.0)]), tz.m.LR(1e-2))
        >>> tz.apply_transform(tz.m.Div([tz.m.Abs(), tz.m.Add(1.0)]), [torch.tensor([-3.0, 1.0])])[0]
        tensor([-0.7500,  0.5000])
    """

    OPERANDS = ("other",)

    def __init__(self, other: Operand, target: str = "update"):
        super().__init__({"other": other}, target=target)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        if "other" in s:
            check_operand("other", s["other"], "Div", nonzero=True)

    def apply_op(self, tensors: list[Tensor], chained: dict[str, list[Tensor]], settings: Settings) -> list[Tensor]:
        torch._foreach_div_(tensors, self.operand("other", chained, settings))
        return tensors


class _AddSub(OperandTransform):
    OPERANDS = ("other",)
    SIGN = 1.0

    def __init__(self, other: Operand, alpha: float = 1, target: str = "update"):
        super().__init__({"other": other}, {"alpha": alpha}, target=target)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        name = type(self).__name__
        if "other" in s:
            check_operand("other", s["other"], name)
        if "alpha" in s:
            check_number("alpha", s["alpha"], owner=name)

    def apply_op(self, tensors: list[Tensor], chained: dict[str, list[Tensor]], settings: Settings) -> list[Tensor]:
        (alpha,) = settings.values("alpha")
        if "other" in chained:
            other = chained["other"]
            if is_uniform(alpha):
                torch._foreach_add_(tensors, other, alpha=self.SIGN * alpha)
            else:
                torch._foreach_mul_(other, [self.SIGN * a for a in alpha])
                torch._foreach_add_(tensors, other)
            return tensors
        (other,) = settings.values("other")
        if is_uniform(other) and is_uniform(alpha):
            torch._foreach_add_(tensors, self.SIGN * float(other) * alpha)
        else:
            n = len(tensors)
            os = other if not is_uniform(other) else [other] * n
            al = alpha if not is_uniform(alpha) else [alpha] * n
            torch._foreach_add_(tensors, [self.SIGN * float(o) * a for o, a in zip(os, al)])
        return tensors


class Add(_AddSub):
    r"""Adds ``alpha * other`` to the update: $u \leftarrow u + \alpha\, o$.

    Args:
        other: a finite number, or a module (chain) applied to a copy of the update each step
            whose output $o$ is added.
        alpha: multiplier of ``other``, a finite number (default: ``1``).
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        ``Add(Mul(0.5))`` adds half of the update to itself:

        >>> import torch, torchzero as tz
        >>> tz.apply_transform(tz.m.Add(tz.m.Mul(0.5)), [torch.tensor([2.0, -4.0])])[0]
        tensor([ 3., -6.])
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Adam(), tz.m.Add(1e-4), tz.m.LR(1e-3))
    """


class Sub(_AddSub):
    r"""Subtracts ``alpha * other`` from the update: $u \leftarrow u - \alpha\, o$.

    Args:
        other: a finite number, or a module (chain) applied to a copy of the update each step
            whose output $o$ is subtracted.
        alpha: multiplier of ``other``, a finite number (default: ``1``).
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        Subtract a quarter of the sign of the update:

        >>> import torch, torchzero as tz
        >>> tz.apply_transform(tz.m.Sub(tz.m.Sign(), alpha=0.25), [torch.tensor([2.0, -4.0])])[0]
        tensor([ 1.7500, -3.7500])
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Sub(tz.m.Sign(), alpha=0.25), tz.m.LR(1e-3))
    """

    SIGN = -1.0


class Clip(OperandTransform):
    r"""Clamps every element of the update: $u \leftarrow \min(\max(u, \text{min}), \text{max})$.

    Each bound may be ``None`` (unbounded), a finite number, or a module (chain) applied to a
    copy of the update each step, whose output bounds the update elementwise. As with
    ``torch.clamp``, where the lower bound exceeds the upper one the result is the upper bound.

    Args:
        min: the lower bound (default: ``None``).
        max: the upper bound (default: ``None``).
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        Clamp to $[-1, 1]$; bound the update from below by half of itself (a chain as the bound):

        >>> import torch, torchzero as tz
        >>> tz.apply_transform(tz.m.Clip(-1, 1), [torch.tensor([-3.0, 0.5, 2.0])])[0]
        tensor([-1.0000,  0.5000,  1.0000])
        >>> tz.apply_transform(tz.m.Clip(min=tz.m.Mul(0.5)), [torch.tensor([-3.0, 0.5, 2.0])])[0]
        tensor([-1.5000,  0.5000,  2.0000])
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Adam(), tz.m.Clip(-0.1, 0.1), tz.m.LR(1e-3))
    """

    OPERANDS = ("min", "max")

    def __init__(self, min: Operand = None, max: Operand = None, target: str = "update"):
        super().__init__({"min": min, "max": max}, target=target)
        lo, hi = self.defaults.get("min"), self.defaults.get("max")
        if lo is not None and hi is not None and float(lo) > float(hi):
            raise ValueError(f"Clip: min must be <= max, got min={lo!r} and max={hi!r}")

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        for name in ("min", "max"):
            if name in s:
                check_operand(name, s[name], "Clip", optional=True)

    def apply_op(self, tensors: list[Tensor], chained: dict[str, list[Tensor]], settings: Settings) -> list[Tensor]:
        for name, scalar_op, tensor_op in (
            ("min", torch._foreach_clamp_min_, torch._foreach_maximum_),
            ("max", torch._foreach_clamp_max_, torch._foreach_minimum_),
        ):
            if name in chained:
                tensor_op(tensors, chained[name])
                continue
            if name not in self.defaults:
                continue
            (value,) = settings.values(name)
            if is_uniform(value):
                if value is not None:
                    scalar_op(tensors, value)
            else:
                idx = [i for i, v in enumerate(value) if v is not None]
                if idx:
                    scalar_op([tensors[i] for i in idx], [value[i] for i in idx])
        return tensors


class Negate(Transform):
    r"""Negates the update: $u \leftarrow -u$.

    Args:
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        Gradient ascent:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Negate(), tz.m.LR(1e-2))
    """

    def __init__(self, target: str = "update"):
        super().__init__(target=target)

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        torch._foreach_neg_(tensors)
        return tensors


class Abs(Transform):
    r"""Takes the absolute value of the update: $u \leftarrow |u|$.

    Args:
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        >>> import torch, torchzero as tz
        >>> tz.apply_transform(tz.m.Abs(), [torch.tensor([-2.0, 3.0])])[0]
        tensor([2., 3.])
    """

    def __init__(self, target: str = "update"):
        super().__init__(target=target)

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        torch._foreach_abs_(tensors)
        return tensors


class Sign(Transform):
    r"""Takes the sign of the update: $u \leftarrow \operatorname{sign}(u)$ (0 stays 0).

    Followed by ``LR`` this is signSGD (Bernstein et al., 2018).

    Args:
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        signSGD:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Sign(), tz.m.LR(1e-3))

    References:
        Bernstein, J., Wang, Y.-X., Azizzadenesheli, K., & Anandkumar, A. (2018). signSGD:
        Compressed optimisation for non-convex problems. https://arxiv.org/abs/1802.04434
    """

    def __init__(self, target: str = "update"):
        super().__init__(target=target)

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        torch._foreach_sign_(tensors)
        return tensors


class NanToNum(Transform):
    r"""Replaces NaN, $+\infty$ and $-\infty$ in the update with finite numbers (``torch.nan_to_num``).

    Args:
        nan: the value NaNs become; ``None`` means ``0`` (default: ``None``).
        posinf: the value $+\infty$ becomes; ``None`` means the largest finite value of the
            update's dtype (default: ``None``).
        neginf: the value $-\infty$ becomes; ``None`` means the lowest finite value of the
            update's dtype (default: ``None``).
        target: ``"update"`` (default) or ``"grad"``.

    torch has no multi-tensor ``nan_to_num``, so this runs one kernel per tensor.

    Example:
        >>> import torch, torchzero as tz
        >>> u = torch.tensor([float("nan"), float("inf"), -float("inf"), 1.0])
        >>> tz.apply_transform(tz.m.NanToNum(posinf=1.0, neginf=-1.0), [u])[0]
        tensor([ 0.,  1., -1.,  1.])
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.NanToNum(target="grad"), tz.m.Adam(), tz.m.LR(1e-3))
    """

    def __init__(self, nan: float | None = None, posinf: float | None = None, neginf: float | None = None, target: str = "update"):
        super().__init__(dict(nan=nan, posinf=posinf, neginf=neginf), target=target)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        for name in ("nan", "posinf", "neginf"):
            if name in s:
                check_optional_number(name, s[name], owner="NanToNum")

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        nan, posinf, neginf = settings.values("nan", "posinf", "neginf")
        return nan_to_num_(tensors, scalars(nan), scalars(posinf), scalars(neginf))
