"""The fused form of ``Muon [WeightDecay] LR``: torch.optim.Muon's loop, one parameter at a time.

The chain computes each update whole (Newton-Schulz's result converted to the parameter's
dtype, scaled by the shape factor, the decay added) before the parameters move. The fused form
(:func:`~torchzero.functional.orthogonalize.muon_step_`) adds the iteration's bfloat16 result
to the parameter directly, with the shape factor and the learning rate as one ``alpha`` and
the decay as one ``mul_``, and drops each temporary before the next parameter: fewer passes
over the weights, and the memory of one update at a time. It is ``torch.optim.Muon``'s step
bit for bit; it and the chain agree up to rounding and keep the same state, so a run may
switch between them at any step (settings the fused form can't take, such as a tensor
learning rate or per-parameter overrides, run the chain).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..functional.norms import has_dtensor
from ..functional.orthogonalize import muon_step_
from .fused import fused_settings
from .module import Module
from .state import values_of
from .state_check import check_states

__all__ = ["FusedMuon", "plan_muon"]


def plan_muon(modules: Sequence[Module]) -> FusedMuon | None:
    """A fused plan for ``modules`` (the flattened top-level chain) if they are
    ``Muon [WeightDecay] LR`` with settings the fused form knows, else ``None``."""
    roles = [m.CAPABILITIES.fused_role for m in modules]
    if roles not in (["muon", "lr"], ["muon", "decoupled_weight_decay", "lr"]):
        return None
    if any(m.children for m in modules) or any(not set(m.defaults) <= m.CAPABILITIES.fused_options for m in modules):
        return None
    return FusedMuon(modules[0], modules[1] if len(modules) == 3 else None, modules[-1])


class Prepared:
    """A step :meth:`FusedMuon.prepare` found fusable: its ``(group, params, grads)`` and the
    settings of each group."""

    def __init__(self, groups: list[tuple[dict[str, Any], list[Tensor], list[Tensor]]], specs: list[dict[str, Any]]):
        self.groups, self.specs = groups, specs


class FusedMuon:
    """Runs ``Muon [WeightDecay] LR`` as :func:`~torchzero.functional.orthogonalize.muon_step_`."""

    scale = None  # no clip in front (Modular's non-finite check reads the gradients)

    def __init__(self, muon: Module, wd: Module | None, lr: Module):
        self.muon, self.wd, self.lr = muon, wd, lr
        self.modules = [m for m in (muon, wd, lr) if m is not None]

    def _specs(self, group: dict[str, Any], p: Tensor) -> dict[str, Any] | None:
        spec = fused_settings(self.modules, p)
        return None if spec is None or isinstance(spec["lr"], Tensor) else spec  # alpha= takes a number

    @staticmethod
    def norm_ord(prepared: Prepared) -> float | None:
        return None

    def prepare(self, groups: list[tuple[dict[str, Any], list[Tensor], list[Tensor]]]) -> Prepared | None:
        """Whether this step can run fused; ``None`` if it can't. Changes nothing.

        It declines under ``torch.compile`` (the compiler fuses the chain), with per-parameter
        overrides, for sharded (FSDP2) tensors, which the chain gathers whole, and for
        gradients of another dtype than their parameter.

        Raises:
            RuntimeError: a momentum buffer doesn't fit its parameter (see :mod:`.state_check`).
        """
        if torch.compiler.is_compiling() or any(m.has_overrides for m in self.modules):
            return None
        specs = []
        for group, params, grads in groups:
            spec = self._specs(group, params[0])
            if spec is None or has_dtensor(params) or has_dtensor(grads):
                return None
            if any(not p.dtype.is_floating_point or g.dtype != p.dtype for p, g in zip(params, grads)):
                return None
            mstate = self.muon.state
            check_states(self.muon, mstate._path, params, mstate.many(params), ("momentum_buffer",), mstate.describe)
            specs.append(spec)
        return Prepared(groups, specs)

    def run(self, prepared: Prepared, l2_norm: Tensor | None = None) -> None:
        """The fused step of :meth:`prepare`'s groups."""
        muon = self.muon
        for (_, params, grads), spec in zip(prepared.groups, prepared.specs):
            states = muon.state.many(params)
            muon.start_states(grads, states, muon.settings_list(params))  # type: ignore[attr-defined]
            muon_step_(
                params, grads, values_of(states, "momentum_buffer"), float(spec["lr"]), spec.get("weight_decay", 0.0),
                spec["momentum"], spec["nesterov"], spec["ns_steps"], spec["ns_coefficients"], spec["eps"],
                spec["ns_dtype"], spec["adjust_lr_fn"],
            )
