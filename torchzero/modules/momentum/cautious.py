"""``Cautious``: mask the elements of the update whose sign disagrees with the gradient."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


from torch import Tensor

from ...core.transform import Context, Settings, States, Transform
from ...functional.momentum import CAUTIOUS_MODES, cautious_
from ...utils.validation import check_bool, check_choice, check_number

__all__ = ["Cautious"]


class Cautious(Transform):
    r"""Cautious optimizers: keep only the elements of the update that agree in sign with the gradient.

    With $\phi = \mathbb{1}[u \odot g > 0]$ elementwise ($g$ is the gradient as it reaches this
    module; an element where $u$ or $g$ is 0 counts as disagreeing):

    - ``mode="zero"`` (the paper): $u \leftarrow u \odot \phi$. With ``normalize``, the kept
      elements are rescaled by the fraction kept, per tensor, as in the paper's implementation:
      $u \leftarrow u \odot \phi \,/\, \max(\operatorname{mean}(\phi), \epsilon)$.
    - ``mode="grad"``: disagreeing elements are replaced by the gradient,
      $u \leftarrow u \odot \phi + g \odot (1-\phi)$.
    - ``mode="backtrack"``: disagreeing elements are negated, $u \leftarrow u \odot (2\phi-1)$
      (the magnitude of the update with the sign of the gradient there).

    ``normalize`` only applies to ``mode="zero"`` (the other modes drop nothing);
    ``normalize=True`` with another mode raises at construction. Place it after a momentum or
    adaptive module, e.g. ``Adam`` (C-Adam) or ``HeavyBall`` (C-SGDM).

    Args:
        normalize: rescale by the fraction of elements kept (``mode="zero"`` only) (default: ``False``).
        eps: lower bound of that fraction, ``> 0`` (default: ``1e-6``).
        mode: ``"zero"`` (default), ``"grad"`` or ``"backtrack"``.

    Example:
        Cautious AdamW (C-AdamW):

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Adam(), tz.m.Cautious(normalize=True), tz.m.WeightDecay(1e-2), tz.m.LR(1e-3))
        >>> model(torch.randn(8, 4)).pow(2).mean().backward(); opt.step()

    References:
        Liang, K., Chen, L., Liu, B., & Liu, Q. (2024). Cautious optimizers: Improving training
        with one line of code. https://arxiv.org/abs/2411.16085
    """

    def __init__(self, normalize: bool = False, eps: float = 1e-6, mode: str = "zero"):
        super().__init__(dict(normalize=normalize, eps=eps, mode=mode), uses_grad=True)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        if "normalize" in s:
            check_bool("normalize", s["normalize"], owner="Cautious")
        if "eps" in s:
            check_number("eps", s["eps"], owner="Cautious", min=0.0, min_inclusive=False)
        if "mode" in s:
            check_choice("mode", s["mode"], CAUTIOUS_MODES, owner="Cautious")
            if s.get("normalize") is True and s["mode"] != "zero":
                raise ValueError(f"Cautious: normalize=True only applies to mode='zero', got mode={s['mode']!r}")

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        for (mode, normalize, eps), idx in settings.groups("mode", "normalize", "eps"):
            if len(idx) == len(tensors):
                cautious_(tensors, ctx.grads, normalize, eps, mode)
            else:
                cautious_([tensors[i] for i in idx], [ctx.grads[i] for i in idx], normalize, eps, mode)
        return tensors
