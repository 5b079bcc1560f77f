"""Stateless multi-tensor kernels of the ``ops`` modules: grafting, dropout, NaN/inf replacement.

Every function modifies ``tensors`` in place and returns them. Norms reuse
:mod:`torchzero.functional.norms` (float16/bfloat16 norms are accumulated in float32), and no
function makes a host sync.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .clipping import TINY_NORM
from .norms import global_norm, tensor_norms

__all__ = ["graft_", "dropout_", "nan_to_num_"]

Scalars = float | Sequence[float]


def graft_(
    tensors: Sequence[Tensor],
    magnitude: Sequence[Tensor],
    tensorwise: bool = True,
    ord: float | str = 2.0,
    eps: float = 1e-6,
) -> list[Tensor]:
    r"""Gives ``tensors`` the norm of ``magnitude`` while keeping their direction, in place.

    $$u \leftarrow u \cdot \frac{\|m\|}{\max(\|u\|, \epsilon)}$$

    per tensor (``tensorwise=True``) or with one norm of all tensors concatenated.

    Args:
        tensors: the direction $u$, scaled in place.
        magnitude: tensors $m$ whose norm is taken, one per tensor of ``tensors``.
        tensorwise: one norm per tensor; ``False``: one global norm.
        ord: the norm, as returned by :func:`~torchzero.functional.norms.parse_ord`.
        eps: lower bound of $\|u\|$ in the division, ``> 0``.

    Returns:
        ``tensors``.

    Example:
        >>> import torch
        >>> from torchzero.functional.ops import graft_
        >>> graft_([torch.tensor([3.0, 4.0])], [torch.tensor([0.0, 10.0])])[0]
        tensor([6., 8.])
    """
    tensors = list(tensors)
    magnitude = list(magnitude)
    if len(tensors) != len(magnitude):
        raise ValueError(f"graft_: got {len(tensors)} tensors but {len(magnitude)} magnitude tensors")
    if not tensors:
        return tensors
    if tensorwise:
        u_norm = tensor_norms(tensors, ord)
        m_norm = tensor_norms(magnitude, ord)
        torch._foreach_clamp_min_(u_norm, eps)
        torch._foreach_div_(m_norm, u_norm)
        torch._foreach_mul_(tensors, m_norm)
        return tensors
    factor = global_norm(magnitude, ord) / global_norm(tensors, ord).clamp_min(eps)
    torch._foreach_mul_(tensors, factor)
    return tensors


def dropout_(tensors: Sequence[Tensor], p: float, graft: bool = False) -> list[Tensor]:
    r"""Sets each element to zero with probability ``p``, in place.

    $u \leftarrow u \odot b$, $b_i \sim \text{Bernoulli}(1-p)$ (no $1/(1-p)$ rescaling). With
    ``graft`` the result is rescaled to the global L2 norm the tensors had before (unless every
    element was dropped).

    The mask comes from torch's global random number generator of each device: one
    ``torch.rand`` call per (device, dtype) group, so results are reproducible under
    ``torch.manual_seed`` for the same tensors in the same order.

    Args:
        tensors: tensors to modify in place.
        p: drop probability, in ``[0, 1)``; ``0`` leaves the tensors unchanged and draws nothing.
        graft: restore the global L2 norm after dropping.

    Returns:
        ``tensors``.
    """
    tensors = list(tensors)
    if p == 0 or not tensors:
        return tensors
    before = global_norm(tensors, 2.0) if graft else None
    groups: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    for (device, dtype), ts in groups.items():
        sizes = [t.numel() for t in ts]
        keep = (torch.rand(sum(sizes), device=device) >= p).to(dtype)
        masks = [m.view(t.shape) for m, t in zip(keep.split(sizes), ts)]
        torch._foreach_mul_(ts, masks)
    if before is not None:
        after = global_norm(tensors, 2.0)
        factor = torch.where(after > TINY_NORM, before / after.clamp_min(TINY_NORM), 1.0)
        torch._foreach_mul_(tensors, factor)
    return tensors


def nan_to_num_(
    tensors: Sequence[Tensor],
    nan: Scalars | None = None,
    posinf: Scalars | None = None,
    neginf: Scalars | None = None,
) -> list[Tensor]:
    """``torch.nan_to_num_`` on every tensor; each value is one number, ``None`` or one per tensor.

    ``nan=None`` replaces NaN with 0; ``posinf``/``neginf=None`` with the largest/lowest finite
    value of the tensor's dtype (torch's defaults). There is no multi-tensor kernel for this, so
    it is one kernel per tensor.
    """
    tensors = list(tensors)
    n = len(tensors)

    def per(v: Scalars | None) -> list[float | None]:
        return list(v) if isinstance(v, (list, tuple)) else [v] * n  # type: ignore[list-item]

    for t, a, b, c in zip(tensors, per(nan), per(posinf), per(neginf)):
        t.nan_to_num_(nan=0.0 if a is None else a, posinf=b, neginf=c)
    return tensors
