"""``Capabilities``: what ``Modular`` needs to know about a module, declared in one typed place.

A module class sets ``CAPABILITIES = Capabilities(...)``; ``Modular`` and the fused path read
only that (no probing of attributes by name). The default is a plain module: none of these.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Capabilities", "FUSED_ROLES"]

#: The parts of the fused chains ``[scale] adam [decoupled_weight_decay] lr`` and
#: ``muon [decoupled_weight_decay] lr``.
FUSED_ROLES = ("scale", "adam", "muon", "decoupled_weight_decay", "lr")


@dataclass(frozen=True)
class Capabilities:
    r"""What a module can do beyond transforming tensors.

    Attributes:
        guard: a step guard: it can skip the whole step, so it must come first in the chain
            (``SkipNonFinite``, ``SkipOnSpike``).
        fused_role: its part in a fused chain (one of :data:`FUSED_ROLES`), or ``None``;
            such a module implements ``fused_spec(settings) -> dict | None`` (and, for
            ``"scale"``, ``record_fused_stats(norm, factors)``, so its statistics keep its layout).
        fused_options: the settings ``fused_spec`` handles; a module with any other setting is
            not fused (a new option can't be silently ignored by the fast path).
        probes_grad: keeps no state and, in its copy form, reports a gradient probe
            (``ctx.report_finite``): as the first module it runs before the non-finite check,
            which then reads its probe instead of the gradients.
        estimates_grad: forms the gradient itself from evaluations of the closure (the
            zeroth-order estimators, ``tz.m.SPSA`` and the like): ``Modular`` makes no
            ``closure()`` call of its own before the chain, steps every parameter that requires
            a gradient (``.grad`` is not read), and applies the non-finite policy to the
            estimate and the loss the module reports. It must be the first module; on a skipped
            step its ``global_state`` is put back as it was.
        residuals: reads the closure as returning a residual vector $r$ (least squares):
            ``Modular`` wraps the closure so that every module sees the loss
            $\lVert r\rVert^2$ and its gradient $2 J^T r$
            (:class:`~torchzero.core.residuals.ResidualClosure`), and this module can ask the
            wrapper for $r$ and its Jacobian $J$.
        uses_jacobian: (with ``residuals``) reads $J$ at each accepted point: the wrapper then
            forms the gradient from $J$ and keeps both for the step.
        eval_point: keeps the parameters, while training, at another point than the one to
            evaluate (Schedule-Free): it implements ``set_training(training, params)``, which
            ``Modular.train()``/``Modular.eval()`` call to move the parameters between the two,
            and a ``training`` property; ``Modular.step`` refuses to run in eval mode. Its
            update is final: at the top level it must be the last module.
    """

    guard: bool = False
    fused_role: str | None = None
    fused_options: frozenset[str] = field(default_factory=frozenset)
    probes_grad: bool = False
    estimates_grad: bool = False
    residuals: bool = False
    uses_jacobian: bool = False
    eval_point: bool = False

    def __post_init__(self) -> None:
        if self.fused_role is not None and self.fused_role not in FUSED_ROLES:
            raise ValueError(f"Capabilities: fused_role must be one of {FUSED_ROLES} or None, got {self.fused_role!r}")
