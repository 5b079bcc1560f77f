"""``Graft`` (the direction of the update with the norm of another chain's output) and ``Dropout``."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor


from ...core.transform import Context, Settings, States, Transform
from ...core.var import Var
from ...functional.norms import Ord, parse_ord
from ...functional.ops import dropout_, graft_
from ...utils.validation import check_bool, check_number
from ._operands import is_chain

__all__ = ["Graft", "Dropout"]


class Graft(Transform):
    r"""Keeps the direction of the update and takes the norm of ``magnitude``'s output.

    Each step ``magnitude`` is applied to a copy of the update $u$, giving $m$; then

    $$u \leftarrow u \cdot \frac{\|m\|}{\max(\|u\|, \epsilon)}$$

    with one norm per tensor (``tensorwise=True``) or one norm of all tensors concatenated
    (``tensorwise=False``; parameters whose settings differ through param groups form separate
    global groups).

    Grafting (Agarwal et al., 2020) combines the direction of one optimizer with the per-layer
    step size of another, e.g. the direction of Shampoo or signSGD with the magnitude of Adam.

    Args:
        magnitude: a module (chain) applied to a copy of the update; the norm of its output is
            the new norm of the update.
        tensorwise: one norm per tensor; ``False``: a global norm (default: ``True``).
        ord: the norm: a number $p \ge 0$ (``inf`` = max |x|), ``"l0"``..``"l4"``, ``"linf"``,
            ``"mad"``, ``"std"``, ``"var"`` or ``"sum"`` (default: ``2``).
        eps: lower bound of $\|u\|$ in the division, ``> 0`` (default: ``1e-6``).
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        The direction of signSGD with the per-tensor magnitude of Adam's step (``Grad`` restarts
        the magnitude chain from the gradient, since the update it receives is already the sign):

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Sign(), tz.m.Graft([tz.m.Grad(), tz.m.Adam()]), tz.m.LR(1e-3))

        The update keeps its direction and takes the norm of twice itself:

        >>> tz.apply_transform(tz.m.Graft(tz.m.Mul(2.0)), [torch.tensor([3.0, 4.0])])[0]
        tensor([6., 8.])

    References:
        Agarwal, N., Anil, R., Hazan, E., Koren, T., & Zhang, C. (2020). Disentangling adaptive
        gradient methods from learning rates. https://arxiv.org/abs/2002.11803
    """

    def __init__(self, magnitude: Any, tensorwise: bool = True, ord: Ord = 2, eps: float = 1e-6, target: str = "update"):
        if not is_chain(magnitude):
            raise TypeError(f"Graft: magnitude must be a module or a list of modules, got {magnitude!r}")
        super().__init__(dict(tensorwise=tensorwise, ord=ord, eps=eps), target=target)
        self.set_child("magnitude", magnitude)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        if "tensorwise" in s:
            check_bool("tensorwise", s["tensorwise"], owner="Graft")
        if "ord" in s:
            parse_ord(s["ord"], owner="Graft")
        if "eps" in s:
            check_number("eps", s["eps"], owner="Graft", min=0.0, min_inclusive=False)

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        raise RuntimeError("Graft: apply_tensors is not used; Graft.transform applies the magnitude chain")

    def transform(self, tensors: list[Tensor], var: Var) -> list[Tensor]:
        magnitude = self.run_child("magnitude", [t.clone() for t in tensors], var)
        settings = self.settings_list(var.params)
        for (tensorwise, ord, eps), idx in settings.groups("tensorwise", "ord", "eps"):
            if len(idx) == len(tensors):
                graft_(tensors, magnitude, tensorwise, parse_ord(ord), eps)
            else:
                graft_([tensors[i] for i in idx], [magnitude[i] for i in idx], tensorwise, parse_ord(ord), eps)
        return tensors


class Dropout(Transform):
    r"""Sets each element of the update to zero with probability ``p``.

    $$u \leftarrow u \odot b, \quad b_i \sim \operatorname{Bernoulli}(1 - p)$$

    The kept elements are not rescaled by $1/(1-p)$; with ``graft=True`` the update is instead
    rescaled to the global L2 norm it had before dropout. Placed first it is gradient dropout,
    placed after an optimizer module update dropout.

    The mask is drawn from torch's global random number generator (one ``torch.rand`` call per
    device and dtype), so runs are reproducible under ``torch.manual_seed``. The generator's
    state is not part of the optimizer's ``state_dict``: to resume bitwise from a checkpoint,
    save and restore it too (``torch.get_rng_state()`` / ``torch.set_rng_state()``, and
    ``torch.cuda.get_rng_state_all()`` on GPU).

    Args:
        p: probability that an element is zeroed, in ``[0, 1)`` (default: ``0.5``).
        graft: restore the update's global L2 norm after dropout (default: ``False``).
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        Gradient dropout before Adam:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.Dropout(0.5), tz.m.Adam(), tz.m.LR(1e-3))
        >>> _ = torch.manual_seed(0)
        >>> tz.apply_transform(tz.m.Dropout(0.5), [torch.arange(1.0, 9.0)])[0]
        tensor([0., 2., 0., 0., 0., 6., 0., 8.])
        >>> _ = torch.manual_seed(0)
        >>> tz.apply_transform(tz.m.Dropout(0.5, graft=True), [torch.tensor([3.0, 4.0, 0.0, 1.0])])[0].norm()
        tensor(5.0990)
    """

    def __init__(self, p: float = 0.5, graft: bool = False, target: str = "update"):
        super().__init__(dict(p=p, graft=graft), target=target)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        if "p" in s:
            check_number("p", s["p"], owner="Dropout", min=0.0, max=1.0, max_inclusive=False)
        if "graft" in s:
            check_bool("graft", s["graft"], owner="Dropout")

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        for (p, graft), idx in settings.groups("p", "graft"):
            dropout_(tensors if len(idx) == len(tensors) else [tensors[i] for i in idx], float(p), graft)
        return tensors
