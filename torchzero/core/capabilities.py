"""``Capabilities``: what ``Modular`` needs to know about a module, declared in one typed place.

A module class sets ``CAPABILITIES = Capabilities(...)``; ``Modular`` and the fused path read
only that (no probing of attributes by name). The default is a plain module: none of these.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Capabilities", "FUSED_ROLES"]

#: The parts of the fused chain ``[scale] adam [decoupled_weight_decay] lr``.
FUSED_ROLES = ("scale", "adam", "decoupled_weight_decay", "lr")


@dataclass(frozen=True)
class Capabilities:
    """What a module can do beyond transforming tensors.

    Attributes:
        guard: a step guard: it can skip the whole step, so it must come first in the chain
            (``SkipNonFinite``, ``SkipOnSpike``).
        fused_role: its part in the fused Adam chain (one of :data:`FUSED_ROLES`), or ``None``;
            such a module implements ``fused_spec(settings) -> dict | None`` (and, for
            ``"scale"``, ``record_fused_stats(norm, factors)``, so its statistics keep its layout).
        fused_options: the settings ``fused_spec`` handles; a module with any other setting is
            not fused (a new option can't be silently ignored by the fast path).
        probes_grad: keeps no state and, in its copy form, reports a gradient probe
            (``ctx.report_finite``): as the first module it runs before the non-finite check,
            which then reads its probe instead of the gradients.
    """

    guard: bool = False
    fused_role: str | None = None
    fused_options: frozenset[str] = field(default_factory=frozenset)
    probes_grad: bool = False

    def __post_init__(self) -> None:
        if self.fused_role is not None and self.fused_role not in FUSED_ROLES:
            raise ValueError(f"Capabilities: fused_role must be one of {FUSED_ROLES} or None, got {self.fused_role!r}")
