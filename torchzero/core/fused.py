"""The fused fast path: common chain shapes run through torch's fused optimizer kernels
(``Muon [WeightDecay] LR``, as torch.optim.Muon's loop: :mod:`.fused_muon`).

A chain of the shape ``[scale-only clip] Adam [decoupled WeightDecay] LR`` is recognised at
construction (:func:`plan`) by the modules' declared fused role and, on each step where every
setting allows it (:meth:`FusedAdam.step`), runs as one ``torch._fused_adam_`` /
``torch._fused_adamw_`` call per (device, dtype) with a global clip factor folded into the
kernel's ``grad_scale``. Anything else goes through the general chain. Both paths keep the
same per-parameter state, so a run may switch between them at any step, and tests check that
they agree.

Modules opt in by declaring ``CAPABILITIES = Capabilities(fused_role=..., fused_options=...)``
(the role ``"scale"``, ``"adam"``, ``"decoupled_weight_decay"`` or ``"lr"``; the settings their
``fused_spec`` handles: a module with any other setting is not fused, so a new option can't be
silently ignored by the fast path) and a method ``fused_spec(settings) -> dict | None``
that returns the numbers the kernel needs for a param group, or ``None`` when the current
settings can't be fused.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter, is_
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..functional.clipping import norm_factor
from ..functional.norms import global_norm, has_dtensor, is_dtensor
from ..functional import cpu_kernels
from .module import Module
from .state import StateList, values_of
from .state_check import check_states
from .steps import step_values

if TYPE_CHECKING:
    from .fused_muon import FusedMuon

__all__ = ["FusedAdam", "Prepared", "plan"]


def plan(modules: Sequence[Module]) -> FusedAdam | FusedMuon | None:
    """A fused plan for ``modules`` (the flattened top-level chain), or ``None``."""
    roles = [m.CAPABILITIES.fused_role for m in modules]
    if roles and roles[0] == "muon":
        from .fused_muon import plan_muon  # (it imports this module's helpers)

        return plan_muon(modules)
    i = 0
    scale = None
    if i < len(roles) and roles[i] == "scale":
        scale, i = modules[i], i + 1
    if i >= len(roles) or roles[i] != "adam":
        return None
    adam, i = modules[i], i + 1
    wd = None
    if i < len(roles) and roles[i] == "decoupled_weight_decay":
        wd, i = modules[i], i + 1
    if i != len(roles) - 1 or roles[i] != "lr":
        return None
    if any(m.children for m in modules):
        return None
    chain = [m for m in (scale, adam, wd, modules[i]) if m is not None]
    if any(not set(m.defaults) <= m.CAPABILITIES.fused_options for m in chain):
        return None  # a setting the fused form doesn't know: it can't promise the same result
    return FusedAdam(scale, adam, wd, modules[i])


def fused_settings(modules: Sequence[Module], p: Tensor) -> dict[str, Any] | None:
    """The numbers a fused form needs for ``p``'s param group: every module's ``fused_spec`` of
    its settings, merged; ``None`` if one of them has no fused form for these settings."""
    spec: dict[str, Any] = {}
    for m in modules:
        s = m.fused_spec(m.settings(p))  # type: ignore[attr-defined]
        if s is None:
            return None
        spec.update(s)
    return spec


class _Scratch:
    """Buffers reused across steps, handed out in order within a step (not part of any state)."""

    def __init__(self) -> None:
        self._bufs: dict[tuple, list[Tensor]] = {}
        self._used: dict[tuple, int] = {}

    def reset(self) -> None:
        self._used.clear()

    def get(self, like: Tensor, sharded: bool = False) -> Tensor:
        """A buffer shaped like ``like``; ``sharded``: ``like`` is a DTensor and so is the buffer
        (same mesh and placements)."""
        key: tuple = (tuple(like.shape), like.dtype, like.device)
        if sharded:
            key += (like.device_mesh, like.placements)  # type: ignore[attr-defined]
        i = self._used.get(key, 0)
        bufs = self._bufs.setdefault(key, [])
        if i == len(bufs):
            if sharded:
                bufs.append(torch.empty_like(like, memory_format=torch.contiguous_format))
            else:
                bufs.append(torch.empty(like.shape, dtype=like.dtype, device=like.device))
        self._used[key] = i + 1
        return bufs[i]


class _StepTensors:
    """The step count as a device tensor for the fused kernels, which read it (Adam's state
    keeps Python ints). Going from step t to t + 1 adds 1 in place on the device instead of
    copying a new value from the host each step (a host-to-device copy can stall a GPU)."""

    def __init__(self) -> None:
        self._t: dict[torch.device, tuple[int, Tensor]] = {}

    def get(self, step: int, device: torch.device) -> Tensor:
        last = self._t.get(device)
        if last is not None and last[0] == step:
            return last[1]
        if last is not None and last[0] == step - 1:
            t = last[1].add_(1)
        else:
            t = torch.full((), float(step), dtype=torch.float32, device=device)
        self._t[device] = (step, t)
        return t


_FUSED_DEVICES = ("cpu", "cuda", "mps", "xpu")  # where torch has fused Adam kernels


def _fusable(params: list[Tensor], grads: list[Tensor]) -> bool:
    """Real floating-point parameters with gradients of their dtype, on devices with fused kernels."""
    devices = set()
    for p, g in zip(params, grads):  # a plain loop: this runs for every tensor on every step
        dtype = p.dtype
        if not dtype.is_floating_point or g.dtype != dtype:
            return False
        devices.add(p.device)
    return all(d.type in _FUSED_DEVICES for d in devices)


_STATE_KEYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
_shape = attrgetter("shape")


def _state_lists(pss: Sequence[Any], path: str) -> list[list[Any]]:
    """For each of :data:`_STATE_KEYS` that some parameter has, its value per parameter
    (``None`` where a parameter has none yet: before its first step); ``pss`` are the
    parameters' flat state dicts (empty ones for parameters without state)."""
    out = []
    for k in _STATE_KEYS:
        values = list(map(dict.get, pss, repeat(f"{path}.{k}")))  # one C-level pass over the flat dicts
        if any(v is not None for v in values):
            out.append(values)
    return out


_NO_STATE: dict[str, Any] = {}


def _own_fits(params: list[Tensor], lists: list[list[Any]]) -> bool:
    """Whether every state tensor is there, shaped like its parameter and, with the parameters,
    eligible for torchzero's kernel (one dtype, contiguous, plain CPU tensors): a cheap test of
    whole lists, as the kernel reads ``numel(param)`` elements of each."""
    if not lists:
        return True
    shapes = list(map(_shape, params))
    for values in lists:
        if any(map(is_, values, repeat(None))) or list(map(_shape, values)) != shapes:
            return False
    existing = [t for values in lists for t in values]
    return existing[0].dtype == params[0].dtype and cpu_kernels.eligible(*existing)


def _dense(t: Tensor) -> bool:
    return t.is_contiguous() or (t.ndim == 4 and t.is_contiguous(memory_format=torch.channels_last)) or (
        t.ndim == 5 and t.is_contiguous(memory_format=torch.channels_last_3d)
    )


def _torch_fits(params: list[Tensor], grads: list[Tensor], lists: list[list[Any]]) -> bool:
    """What torch's fused kernels assume without checking: each parameter dense, its gradient
    and state of its shape, dtype and device and laid out exactly like it (same strides).
    State created by torchzero is (it copies the parameter's memory format); a state loaded or
    written from elsewhere might not be."""
    for i, (p, g) in enumerate(zip(params, grads)):  # a plain loop: this runs for every tensor on every step
        stride = p.stride()
        if not _dense(p) or g.stride() != stride:
            return False
        shape, dtype, device = p.shape, p.dtype, p.device
        for values in lists:
            t = values[i]
            if t is not None and (
                type(t) is not Tensor or t.shape != shape or t.dtype != dtype or t.device != device or t.stride() != stride
            ):
                return False
    return True


@dataclass
class Prepared:
    """A step :meth:`FusedAdam.prepare` found fusable: per group its settings and whether it
    runs on torchzero's CPU kernel."""

    groups: list[tuple[dict[str, Any], list[Tensor], list[Tensor]]]
    specs: list[dict[str, Any]]
    owns: list[bool]


class FusedAdam:
    """Runs ``[scale] Adam [WeightDecay] LR`` with torch's fused Adam/AdamW kernels."""

    def __init__(self, scale: Module | None, adam: Module, wd: Module | None, lr: Module):
        self.scale, self.adam, self.wd, self.lr = scale, adam, wd, lr
        self.modules = [m for m in (scale, adam, wd, lr) if m is not None]
        self._scratch = _Scratch()
        self._steps = _StepTensors()

    def _specs(self, group: dict[str, Any], p: Tensor) -> dict[str, Any] | None:
        return fused_settings(self.modules, p)

    def step(self, groups: list[tuple[dict[str, Any], list[Tensor], list[Tensor]]], l2_norm: Tensor | None = None) -> bool:
        """Performs the step for ``(group, params, grads)`` triples; ``False`` if it can't
        (:meth:`prepare` then :meth:`run`)."""
        prepared = self.prepare(groups)
        if prepared is None:
            return False
        self.run(prepared, l2_norm)
        return True

    def prepare(self, groups: list[tuple[dict[str, Any], list[Tensor], list[Tensor]]]) -> Prepared | None:
        """Whether this step can run fused, and what it needs; ``None`` if it can't. Changes
        nothing, so the caller can still skip the step or take the general path.

        Under ``torch.compile`` it declines: the compiler fuses the general path, while torch's
        fused kernels are opaque to it (torch.optim's own fused optimizers don't compile either).

        Raises:
            RuntimeError: an Adam state tensor doesn't fit its parameter (see :mod:`.state_check`).
        """
        if torch.compiler.is_compiling():
            return None
        if any(m.has_overrides for m in self.modules):  # per-parameter overrides: general path
            return None
        specs, owns = [], []
        for group, params, grads in groups:
            spec = self._specs(group, params[0])
            if spec is None or (spec.get("weight_decay") and not spec["alpha"]):
                return None
            if not _fusable(params, grads):
                return None
            # read without creating entries: preparing changes nothing, even in opt.state
            mstate = self.adam.state
            store, key = mstate._store, mstate._key
            lists = _state_lists([store.get(key(p)) or _NO_STATE for p in params], mstate._path)
            own = self._own_kernel(params, grads, spec) and _own_fits(params, lists)
            if not own and not _torch_fits(params, grads, lists):
                # a state that doesn't fit its parameter is an error (named here, before anything
                # changed); one only laid out otherwise (other strides) takes the general path
                check_states(self.adam, mstate._path, params, mstate.many(params), _STATE_KEYS, mstate.describe)
                return None
            specs.append(spec)
            owns.append(own)
        if self.scale is not None:
            spec0 = specs[0]
            if any(s["scale_target"] != spec0["scale_target"] or s["scale_ord"] != spec0["scale_ord"] for s in specs):
                return None
        return Prepared(groups, specs, owns)

    @staticmethod
    def norm_ord(prepared: Prepared) -> float | None:
        """The order of the global norm the fused clip measures (``None``: no clip)."""
        return prepared.specs[0].get("scale_ord")

    def run(self, prepared: Prepared, l2_norm: Tensor | None = None) -> None:
        """The fused step of :meth:`prepare`'s groups. ``l2_norm``: the global L2 norm of the
        gradients if the caller computed it already (an L2 clip reuses it)."""
        groups, specs, owns = prepared.groups, prepared.specs, prepared.owns
        states = [self.adam.state.many(params) for _, params, _ in groups]
        factor: Tensor | None = None
        self._scratch.reset()
        if self.scale is not None:
            all_grads = [g for _, _, gs in groups for g in gs]
            ord_ = specs[0]["scale_ord"]
            n = l2_norm if (l2_norm is not None and ord_ == 2) else global_norm(all_grads, ord_)
        factors = []
        for (group, params, grads), spec, sts, own in zip(groups, specs, states, owns):
            grad_scale: Tensor | None = None  # torch's kernel only
            if self.scale is not None:
                factor = norm_factor(n, spec["scale_value"], spec["scale_mode"])
                factors.append(factor)
            if self.scale is not None and not own:
                if spec["scale_target"] == "update":
                    # p.grad must keep the raw gradient, but torch's kernel writes the scaled
                    # gradient back into its input: give it a copy (a buffer reused across steps).
                    grads = self._copy(grads)
                if any(g.dtype == torch.float64 for g in grads):
                    # the kernel's grad_scale is float32: scale float64 gradients exactly instead
                    torch._foreach_mul_(grads, factor)
                else:
                    grad_scale = factor.reciprocal().to(torch.float32)
            self._adam(params, grads, sts, spec, grad_scale, factor if own else None, own)
        if self.scale is not None:
            self.scale.record_fused_stats(n, factors)  # type: ignore[attr-defined]

    def _copy(self, grads: list[Tensor]) -> list[Tensor]:
        if not has_dtensor(grads):
            bufs = [self._scratch.get(g) for g in grads]
            torch._foreach_copy_(bufs, grads)
            return bufs
        # DTensors (FSDP2): buffers sharded like the gradients, copied shard by shard
        # (DTensor has no rule for _foreach_copy_)
        bufs = [self._scratch.get(g, is_dtensor(g)) for g in grads]
        torch._foreach_copy_([b.to_local() if is_dtensor(b) else b for b in bufs], [g.to_local() if is_dtensor(g) else g for g in grads])
        return bufs

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_scratch", "_steps")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._scratch = _Scratch()
        self._steps = _StepTensors()

    @staticmethod
    def _own_kernel(params: list[Tensor], grads: list[Tensor], spec: dict[str, Any]) -> bool:
        """Whether this group runs on torchzero's CPU kernel (:mod:`torchzero.functional.cpu_kernels`),
        which reads the gradient without writing it: the update target (the gradient target
        wants the scaled gradient written back, which torch's kernel does), plain contiguous
        float32/float64 CPU tensors (and, checked by the caller, their state tensors)."""
        return spec.get("scale_target", "update") == "update" and cpu_kernels.usable(*params, *grads)

    def _adam(
        self,
        params: list[Tensor],
        grads: list[Tensor],
        states: StateList,
        spec: dict[str, Any],
        grad_scale: Tensor | None,
        factor: Tensor | None,
        own: bool,
    ) -> None:
        amsgrad = spec["amsgrad"]
        step_tensors = []
        adam = self.adam
        # the module's own state setup (initializer, step counters, max_exp_avg_sq)
        adam.start_states(params, states, adam.settings_list(params))  # type: ignore[attr-defined]
        if amsgrad:
            adam.add_max_exp_avg_sq(states)  # type: ignore[attr-defined]
        counts = step_values(states["step"], owner=adam)
        steps = [int(counts)] * len(params) if isinstance(counts, float) else [int(t) for t in counts]
        if own:
            self._own_adam(params, grads, states, steps, spec, factor)
            return
        if all(t == steps[0] for t in steps) and len({p.device for p in params}) == 1:
            step_tensors = [self._steps.get(steps[0], params[0].device)] * len(params)
        else:  # parameters that missed gradients lag behind: one fresh tensor per distinct count
            fresh: dict[tuple[int, torch.device], Tensor] = {}
            for p, t in zip(params, steps):
                key = (t, p.device)
                if key not in fresh:
                    fresh[key] = torch.full((), float(t), dtype=torch.float32, device=p.device)
                step_tensors.append(fresh[key])
        lr = spec["lr"] * spec["alpha"]
        # chain: p -= lr * (alpha * adam + wd * p)  ==  AdamW with lr' = lr * alpha, wd' = wd / alpha
        wd = spec.get("weight_decay", 0.0)
        if wd:
            wd = wd / spec["alpha"]
        kernel = torch._fused_adamw_ if wd else torch._fused_adam_
        lists = [params, grads, values_of(states, "exp_avg"), values_of(states, "exp_avg_sq"),
                 values_of(states, "max_exp_avg_sq") if amsgrad else [], step_tensors]
        grouped = torch.optim.Optimizer._group_tensors_by_device_and_dtype(lists)  # type: ignore[arg-type]
        for (device, _), ((d_p, d_g, d_m, d_v, d_vmax, d_steps), _) in grouped.items():
            gs = None if grad_scale is None else grad_scale.to(device)
            kernel(
                d_p, d_g, d_m, d_v, d_vmax if amsgrad else [], d_steps,
                amsgrad=amsgrad, lr=lr, beta1=spec["beta1"], beta2=spec["beta2"], weight_decay=wd,
                eps=spec["eps"], maximize=False, grad_scale=gs, found_inf=None,
            )

    def _own_adam(
        self, params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]], steps: list[int], spec: dict[str, Any], factor: Tensor | None
    ) -> None:
        """The group's step on torchzero's CPU kernel: one pass, the gradient only read."""
        b1, b2 = spec["beta1"], spec["beta2"]
        gmul = 1.0 if factor is None else float(factor)
        lr, alpha, eps, wd = spec["lr"], spec["alpha"], spec["eps"], spec.get("weight_decay", 0.0)
        index = {t: i for i, t in enumerate(dict.fromkeys(steps))}  # one row of scalars per step count
        rows = [
            dict(gmul=gmul, lerp_weight=1 - b1, beta2=b2, one_minus_beta2=1 - b2, bc2=(1 - b2**t) ** 0.5, eps=eps,
                 scale=alpha / (1 - b1**t), weight_decay=wd, lr=lr)
            for t in index
        ]
        cpu_kernels.adam_(
            params,
            grads,
            values_of(states, "exp_avg"),
            values_of(states, "exp_avg_sq"),
            values_of(states, "max_exp_avg_sq") if spec["amsgrad"] else None,
            rows,
            [index[t] for t in steps],
        )
