"""Value and norm clipping, normalization and centralization: modules and in-place functions."""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.capabilities import Capabilities
from ...core.settings import is_uniform, subset
from ...core.transform import Context, Settings, States, Transform
from ...functional.clipping import centralize_, clip_value_, scale_by_norm_
from ...functional.norms import Dim, Ord, parse_ord, tensor_norm_vector
from ...functional.stats import summarize_norm_scaling
from ...utils.validation import check_number, check_optional_number
from .common import check_nonneg, check_norm_group_settings, check_norm_settings

__all__ = [
    "ClipValue",
    "ClipNorm",
    "Normalize",
    "Centralize",
    "clip_grad_value_",
    "clip_grad_norm_",
    "normalize_grads_",
]

_NORM_KEYS = ("ord", "dim", "inverse_dims", "min_size")


class ClipValue(Transform):
    r"""Clips every element of the update to $[-\text{value}, \text{value}]$.

    $$u \leftarrow \operatorname{clamp}(u, -\text{value}, \text{value})$$

    Args:
        value: the bound, a finite number ``>= 0``.
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        Gradient value clipping before Adam (like ``torch.nn.utils.clip_grad_value_``):

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.ClipValue(1.0), tz.m.Adam(), tz.m.LR(1e-3))

        Clipping Adam's update instead:

        >>> opt = tz.Modular(model.parameters(), tz.m.Adam(), tz.m.ClipValue(1.0), tz.m.LR(1e-3))
    """

    def __init__(self, value: float, target: str = "update"):
        super().__init__({"value": value}, target=target)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        check_nonneg("value", s, "ClipValue")

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        return self._clip(tensors, settings, None)

    def apply_tensors_copy(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        return self._clip(tensors, settings, [])

    def _clip(self, tensors: list[Tensor], settings: Settings, out: list[Tensor] | None) -> list[Tensor]:
        value = settings["value"]
        if self.full_stats:
            max_abs = tensor_norm_vector(tensors, math.inf)
            bound = torch.as_tensor(value if is_uniform(value) else list(value), dtype=max_abs.dtype)
            self.record_stats(max_abs=max_abs.max(), clip_frac=(max_abs > bound).float().mean())
        clip_value_(tensors, value, out=out)
        return tensors if out is None else out


class _NormScale(Transform):
    """ClipNorm and Normalize: scale each norm group by a factor computed from its norm."""

    MODE = "clip"
    TARGET_KEY = "max_norm"
    # fused_options: with dim="global" there is one group of all elements, so inverse_dims has
    # no dims to invert and min_size doesn't apply; fused_spec declines any other dim
    CAPABILITIES = Capabilities(
        fused_role="scale",
        fused_options=frozenset({"max_norm", "norm_value", "ord", "dim", "inverse_dims", "min_size"}),
        probes_grad=True,
    )

    def fused_spec(self, s: Mapping[str, Any]) -> dict[str, Any] | None:
        """A global norm scale can be folded into a fused kernel; per-tensor norms can't."""
        if s["dim"] != "global":
            return None
        return dict(scale_value=s[self.TARGET_KEY], scale_ord=parse_ord(s["ord"]), scale_mode=self.MODE, scale_target=self.target)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        name = type(self).__name__
        check_nonneg(self.TARGET_KEY, s, name)
        check_norm_settings(s, name)

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        return self._scale(tensors, settings, ctx, copy=False)

    def apply_tensors_copy(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        return self._scale(tensors, settings, ctx, copy=True)

    def _scale(self, tensors: list[Tensor], settings: Settings, ctx: Context, copy: bool) -> list[Tensor]:
        target = settings[self.TARGET_KEY]
        stats: dict[str, list[Tensor]] = {}
        is_global = True
        result = list(tensors)
        norms: list[Tensor] | None = []  # every tensor's norm(s) before scaling: the probe
        for (ord, dim, inverse_dims, min_size), idx in settings.groups(*_NORM_KEYS):
            sub = tensors if len(idx) == len(tensors) else [tensors[i] for i in idx]
            out: list[Tensor] | None = [] if copy else None
            p = parse_ord(ord)
            n = scale_by_norm_(sub, subset(target, idx), p, dim, inverse_dims, min_size, self.MODE, stats=stats, out=out)
            if out is not None:
                for i, o in zip(idx, out):
                    result[i] = o
            if norms is not None and isinstance(p, float) and p > 0:  # NaN and inf propagate into these norms
                norms.extend([n] if isinstance(n, Tensor) else n)
            else:
                norms = None
            is_global = is_global and dim == "global"
        if stats:  # nothing measured when every tensor is below min_size
            self.record_stats(**stats, is_global=is_global)
        if copy:
            ctx.report_finite(None if norms is None else _probe(norms))
        return result

    def record_fused_stats(self, norm: Tensor, factors: list[Tensor]) -> None:
        """Records the statistics of a step the fused chain ran for this module (the global
        ``norm`` and the factor of each param group), as :meth:`apply_tensors` records them."""
        self.record_stats(norm=[norm], factor=factors, is_global=True)

    def summarize_stats(self, raw: dict[str, Any]) -> dict[str, Any]:
        """``norm``/``factor``/``clipped`` for a global norm, else ``norm_max``, ``norm_mean``,
        ``factor_min``, ``factor_max`` and ``clip_frac`` (over tensors or slices)."""
        return summarize_norm_scaling(raw, raw["is_global"])


class ClipNorm(_NormScale):
    r"""Clips the norm of the update to at most ``max_norm``.

    For each norm group $g$ (see ``dim``): $u_g \leftarrow u_g \cdot \min(1, \mathtt{max\_norm} / \|u_g\|)$.
    A group whose norm is $\le 10^{-12}$ is left unchanged.

    Args:
        max_norm: the largest allowed norm, a finite number ``>= 0``.
        ord: the norm: a number $p$ as in ``torch.linalg.vector_norm`` (``inf`` = max |x|,
            ``0`` = count of nonzeros), ``"l0"``..``"l4"``, ``"linf"``,
            ``"mad"`` (mean |x|), ``"std"``, ``"var"`` or ``"sum"`` (default: ``2``).
        dim: ``None`` (default): one norm per tensor; an int or ints: norms over those dims of
            each tensor that has them; ``"global"``: one norm of all tensors concatenated, like
            ``torch.nn.utils.clip_grad_norm_``.
        inverse_dims: reduce over the dims NOT selected by ``dim`` (default: ``False``).
        min_size: tensors (or slices) with fewer elements than this are left unchanged
            (default: ``1``).
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        Global gradient norm clipping, as ``torch.nn.utils.clip_grad_norm_(params, 1.0)``:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.ClipNorm(1.0, dim="global"), tz.m.Adam(), tz.m.LR(1e-3))

        Per-tensor clipping of Adam's update:

        >>> opt = tz.Modular(model.parameters(), tz.m.Adam(), tz.m.ClipNorm(0.1), tz.m.LR(1e-3))
    """

    def __init__(
        self,
        max_norm: float,
        ord: Ord = 2,
        dim: Dim = None,
        inverse_dims: bool = False,
        min_size: int = 1,
        target: str = "update",
    ):
        super().__init__(
            dict(max_norm=max_norm, ord=ord, dim=dim, inverse_dims=inverse_dims, min_size=min_size), target=target
        )


class Normalize(_NormScale):
    r"""Sets the norm of the update to ``norm_value``.

    For each norm group $g$: $u_g \leftarrow u_g \cdot \mathtt{norm\_value} / \|u_g\|$; a group whose
    norm is $\le 10^{-12}$ is left unchanged (never NaN, even for an all-zero update).

    Args:
        norm_value: the norm to set, a finite number ``>= 0`` (default: ``1``).
        ord: the norm, as in :class:`ClipNorm` (default: ``2``).
        dim: the norm groups, as in :class:`ClipNorm` (default: ``None``, per tensor).
        inverse_dims: reduce over the dims not selected by ``dim`` (default: ``False``).
        min_size: tensors or slices with fewer elements are left unchanged (default: ``1``).
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        Normalized gradient descent:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Normalize(1.0, dim="global"), tz.m.LR(1e-2))
    """

    MODE = "normalize"
    TARGET_KEY = "norm_value"

    def __init__(
        self,
        norm_value: float = 1,
        ord: Ord = 2,
        dim: Dim = None,
        inverse_dims: bool = False,
        min_size: int = 1,
        target: str = "update",
    ):
        super().__init__(
            dict(norm_value=norm_value, ord=ord, dim=dim, inverse_dims=inverse_dims, min_size=min_size), target=target
        )


def _probe(values: list[Tensor]) -> Tensor:
    """One 0-dim float64 tensor, finite iff every element of ``values`` is."""
    scalars = [v for v in values if v.ndim == 0]
    parts = [v.sum(dtype=torch.float64) for v in values if v.ndim]
    if scalars:  # per-tensor norms: one stack (torch.stack promotes mixed dtypes)
        parts.append(torch.stack(scalars).sum(dtype=torch.float64))
    return torch.stack(parts).sum() if parts else torch.zeros((), dtype=torch.float64)


class Centralize(Transform):
    r"""Subtracts the mean: $u_g \leftarrow u_g - \operatorname{mean}(u_g)$ for each group $g$.

    Gradient centralization (Yong et al., 2020) subtracts, for each output unit of an
    ``(out, in, ...)`` weight, the mean over all other dims: that is
    ``Centralize(dim=0, inverse_dims=True)``. ``Centralize(dim=0)`` instead subtracts the mean
    over dim 0 (across output units). 0-dim tensors are left unchanged.

    Args:
        dim: ``None`` (default): the mean of each whole tensor; ints: the mean over those dims;
            ``"global"``: the mean of all elements of all tensors.
        inverse_dims: take the mean over the dims NOT selected by ``dim`` (default: ``False``).
        min_size: slices with fewer elements are left unchanged (default: ``2``).
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        Gradient centralization as in the paper, then SGD with momentum:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 2)
        >>> opt = tz.Modular(model.parameters(), tz.m.Centralize(dim=0, inverse_dims=True, target="grad"), tz.m.Adam(), tz.m.LR(1e-3))

    References:
        Yong, H., Huang, J., Hua, X., & Zhang, L. (2020). Gradient centralization: A new
        optimization technique for deep neural networks. https://arxiv.org/abs/2004.01461
    """

    CAPABILITIES = Capabilities(probes_grad=True)

    def __init__(self, dim: Dim = None, inverse_dims: bool = False, min_size: int = 2, target: str = "update"):
        super().__init__(dict(dim=dim, inverse_dims=inverse_dims, min_size=min_size), target=target)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        check_norm_group_settings(s, "Centralize")

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        for (dim, inverse_dims, min_size), idx in settings.groups("dim", "inverse_dims", "min_size"):
            centralize_([tensors[i] for i in idx], dim, inverse_dims, min_size)
        return tensors

    def apply_tensors_copy(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        result = list(tensors)
        probes: list[Tensor | None] = []
        for (dim, inverse_dims, min_size), idx in settings.groups("dim", "inverse_dims", "min_size"):
            out: list[Tensor] = []
            probes.append(centralize_([tensors[i] for i in idx], dim, inverse_dims, min_size, out=out))
            for i, o in zip(idx, out):
                result[i] = o
        ctx.report_finite(None if any(p is None for p in probes) else _probe(probes))  # type: ignore[arg-type]
        return result


# ---------------------------------------------------------------------------------------- functions
def _grads(params: Iterable[Tensor] | Tensor) -> list[Tensor]:
    if isinstance(params, Tensor):
        params = [params]
    return [p.grad for p in params if p.grad is not None]


def clip_grad_value_(params: Iterable[Tensor] | Tensor, value: float) -> None:
    r"""Clips the gradients of ``params`` in place to $[-\text{value}, \text{value}]$.

    Parameters whose ``.grad`` is None are skipped.

    Args:
        params: parameters (or one tensor) whose gradients to clip.
        value: the bound, a finite number ``>= 0``.

    Example:
        >>> import torch, torchzero as tz
        >>> w = torch.nn.Parameter(torch.zeros(3)); w.grad = torch.tensor([-3.0, 0.5, 2.0])
        >>> tz.m.clip_grad_value_([w], 1.0)
        >>> w.grad
        tensor([-1.0000,  0.5000,  1.0000])
    """
    value = check_number("value", value, owner="clip_grad_value_", min=0.0)
    clip_value_(_grads(params), value)


def clip_grad_norm_(
    params: Iterable[Tensor] | Tensor,
    max_norm: float | None,
    ord: Ord = 2,
    dim: Dim = None,
    inverse_dims: bool = False,
    min_size: int = 2,
    min_norm: float | None = None,
) -> Tensor | list[Tensor]:
    r"""Clips the norm of the gradients of ``params`` in place.

    For each norm group $g$: $g \leftarrow g \cdot \min(1, \mathtt{max\_norm}/\|g\|)$ and, with
    ``min_norm``, $g \leftarrow g \cdot \max(1, \mathtt{min\_norm}/\|g\|)$.

    Note:
        Unlike ``torch.nn.utils.clip_grad_norm_``, which clips the one norm of all gradients
        together, the default here is **per tensor** (``dim=None``) with ``min_size=2``
        (tensors with a single element are not clipped). Pass ``dim="global"`` for torch's
        behaviour.

    Args:
        params: parameters (or one tensor) whose gradients to clip; ``grad=None`` ones are skipped.
        max_norm: the largest allowed norm (``None``: no upper clip).
        ord: the norm, as in :class:`ClipNorm` (default: ``2``).
        dim: norm groups, as in :class:`ClipNorm` (default: ``None``, per tensor).
        inverse_dims: reduce over the dims not selected by ``dim`` (default: ``False``).
        min_size: slices with fewer elements are left unchanged (default: ``2``).
        min_norm: scale groups whose norm is below this up to it (default: ``None``).

    Returns:
        The norms measured before clipping: a 0-dim tensor for ``dim="global"``, else a list with
        one tensor per gradient: a 0-dim norm where the whole tensor is one group, the
        per-slice norms (reduced dims kept) otherwise; a gradient left unchanged by
        ``min_size`` reports the norm of all its elements.

    Example:
        >>> import torch, torchzero as tz
        >>> w = torch.nn.Parameter(torch.zeros(2)); w.grad = torch.tensor([3.0, 4.0])
        >>> tz.m.clip_grad_norm_([w], 1.0, dim="global")
        tensor(5.)
        >>> w.grad
        tensor([0.6000, 0.8000])
    """
    o = "clip_grad_norm_"
    max_norm = check_optional_number("max_norm", max_norm, owner=o, min=0.0)
    min_norm = check_optional_number("min_norm", min_norm, owner=o, min=0.0)
    check_norm_group_settings(dict(dim=dim, inverse_dims=inverse_dims, min_size=min_size), o)
    p = parse_ord(ord, owner=o)
    return scale_by_norm_(_grads(params), max_norm, p, dim, inverse_dims, min_size, "clip", min_norm=min_norm)


def normalize_grads_(
    params: Iterable[Tensor] | Tensor,
    norm_value: float,
    ord: Ord = 2,
    dim: Dim = None,
    inverse_dims: bool = False,
    min_size: int = 1,
) -> Tensor | list[Tensor]:
    r"""Sets the norm of the gradients of ``params`` to ``norm_value`` in place.

    For each norm group $g$: $g \leftarrow g \cdot \mathtt{norm\_value}/\|g\|$ (groups with norm
    $\le 10^{-12}$ are left unchanged).

    Args:
        params: parameters (or one tensor) whose gradients to normalize; ``grad=None`` ones are skipped.
        norm_value: the norm to set, a finite number ``>= 0``.
        ord: the norm, as in :class:`ClipNorm` (default: ``2``).
        dim: norm groups, as in :class:`ClipNorm` (default: ``None``, per tensor).
        inverse_dims: reduce over the dims not selected by ``dim`` (default: ``False``).
        min_size: slices with fewer elements are left unchanged (default: ``1``).

    Returns:
        The norms measured before scaling, as :func:`clip_grad_norm_` returns them.

    Example:
        >>> import torch, torchzero as tz
        >>> w = torch.nn.Parameter(torch.zeros(2)); w.grad = torch.tensor([3.0, 4.0])
        >>> _ = tz.m.normalize_grads_([w], 10.0)
        >>> w.grad
        tensor([6., 8.])
    """
    o = "normalize_grads_"
    norm_value = check_number("norm_value", norm_value, owner=o, min=0.0)
    check_norm_group_settings(dict(dim=dim, inverse_dims=inverse_dims, min_size=min_size), o)
    p = parse_ord(ord, owner=o)
    return scale_by_norm_(_grads(params), norm_value, p, dim, inverse_dims, min_size, "normalize")


