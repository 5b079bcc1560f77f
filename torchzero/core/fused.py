"""The fused fast path: common chain shapes run through torch's fused optimizer kernels.

A chain of the shape ``[scale-only clip] Adam [decoupled WeightDecay] LR`` is recognised at
construction (:func:`plan`) by the modules' ``FUSED_ROLE`` and, on each step where every
setting allows it (:meth:`FusedAdam.step`), runs as one ``torch._fused_adam_`` /
``torch._fused_adamw_`` call per (device, dtype) with a global clip factor folded into the
kernel's ``grad_scale``. Anything else goes through the general chain. Both paths keep the
same per-parameter state, so a run may switch between them at any step, and tests check that
they agree.

Modules opt in with a class attribute ``FUSED_ROLE`` (``"scale"``, ``"adam"``,
``"decoupled_weight_decay"`` or ``"lr"``) and a method ``fused_spec(settings) -> dict | None``
that returns the numbers the kernel needs for a param group, or ``None`` when the current
settings can't be fused.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..functional.clipping import norm_factor
from ..functional.norms import global_norm
from .module import Module

__all__ = ["FusedAdam", "plan"]


def plan(modules: Sequence[Module]) -> FusedAdam | None:
    """A fused plan for ``modules`` (the flattened top-level chain), or ``None``."""
    roles = [getattr(m, "FUSED_ROLE", None) for m in modules]
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
    return FusedAdam(scale, adam, wd, modules[i])


class _Scratch:
    """Buffers reused across steps, handed out in order within a step (not part of any state)."""

    def __init__(self) -> None:
        self._bufs: dict[tuple, list[Tensor]] = {}
        self._used: dict[tuple, int] = {}

    def reset(self) -> None:
        self._used.clear()

    def get(self, shape: torch.Size, dtype: torch.dtype, device: torch.device) -> Tensor:
        key = (tuple(shape), dtype, device)
        i = self._used.get(key, 0)
        bufs = self._bufs.setdefault(key, [])
        if i == len(bufs):
            bufs.append(torch.empty(shape, dtype=dtype, device=device))
        self._used[key] = i + 1
        return bufs[i]


def _has_fused_adam(device: torch.device) -> bool:
    return device.type in ("cpu", "cuda", "mps", "xpu")


class FusedAdam:
    """Runs ``[scale] Adam [WeightDecay] LR`` with torch's fused Adam/AdamW kernels."""

    def __init__(self, scale: Module | None, adam: Module, wd: Module | None, lr: Module):
        self.scale, self.adam, self.wd, self.lr = scale, adam, wd, lr
        self.modules = [m for m in (scale, adam, wd, lr) if m is not None]
        self._scratch = _Scratch()

    def _specs(self, group: dict[str, Any], p: Tensor) -> dict[str, Any] | None:
        spec: dict[str, Any] = {}
        for m in self.modules:
            s = m.fused_spec(m.settings(p))  # type: ignore[attr-defined]
            if s is None:
                return None
            spec.update(s)
        return spec

    def step(self, groups: list[tuple[dict[str, Any], list[Tensor], list[Tensor]]], l2_norm: Tensor | None = None) -> bool:
        """Performs the step for ``(group, params, grads)`` triples; ``False`` if it can't.

        ``l2_norm``: the global L2 norm of the gradients if already computed (reused by an L2 clip).
        """
        if any(m._overrides_any for m in self.modules):  # per-parameter overrides: general path
            return False
        specs = []
        for group, params, grads in groups:
            spec = self._specs(group, params[0])
            if spec is None or (spec.get("weight_decay") and not spec["alpha"]):
                return False
            for p, g in zip(params, grads):
                if p.is_complex() or not p.is_floating_point() or g.dtype != p.dtype or not _has_fused_adam(p.device):
                    return False
            specs.append(spec)

        grad_scale: Tensor | None = None
        self._scratch.reset()
        if self.scale is not None:
            all_grads = [g for _, _, gs in groups for g in gs]
            spec0 = specs[0]
            if any(s["scale_target"] != spec0["scale_target"] or s["scale_ord"] != spec0["scale_ord"] for s in specs):
                return False
            n = l2_norm if (l2_norm is not None and spec0["scale_ord"] == 2) else global_norm(all_grads, spec0["scale_ord"])
        factors = []
        for (group, params, grads), spec in zip(groups, specs):
            if self.scale is not None:
                factor = norm_factor(n, spec["scale_value"], spec["scale_mode"])
                factors.append(factor)
                if spec["scale_target"] == "update":
                    # p.grad must keep the raw gradient, but the kernel writes the scaled gradient
                    # back into its input: give it a copy (a buffer reused across steps).
                    grads = self._copy(grads)
                if any(g.dtype == torch.float64 for g in grads):
                    # the kernel's grad_scale is float32: scale float64 gradients exactly instead
                    torch._foreach_mul_(grads, factor)
                    grad_scale = None
                else:
                    grad_scale = factor.reciprocal().to(torch.float32)
            self._adam(params, grads, spec, grad_scale)
        if self.scale is not None:
            self.scale.record_stats(norm=[n], factor=factors, is_global=True)
        return True

    def _copy(self, grads: list[Tensor]) -> list[Tensor]:
        bufs = []
        for g in grads:
            b = self._scratch.get(g.shape, g.dtype, g.device)
            bufs.append(b)
        torch._foreach_copy_(bufs, grads)
        return bufs

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_scratch"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._scratch = _Scratch()

    def _adam(self, params: list[Tensor], grads: list[Tensor], spec: dict[str, Any], grad_scale: Tensor | None) -> None:
        amsgrad = spec["amsgrad"]
        states = [self.adam.state[p] for p in params]
        steps: dict[int, Tensor] = {}
        step_tensors = []
        for p, st in zip(params, states):
            if "exp_avg" not in st:
                st["step"] = 0
                st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if amsgrad and "max_exp_avg_sq" not in st:
                st["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            st["step"] += 1
            t = steps.get(st["step"])
            if t is None:
                t = steps[st["step"]] = torch.tensor(float(st["step"]), dtype=torch.float32, device=p.device)
            step_tensors.append(t)
        lr = spec["lr"] * spec["alpha"]
        # chain: p -= lr * (alpha * adam + wd * p)  ==  AdamW with lr' = lr * alpha, wd' = wd / alpha
        wd = spec.get("weight_decay", 0.0)
        if wd:
            wd = wd / spec["alpha"]
        kernel = torch._fused_adamw_ if wd else torch._fused_adam_
        lists = [params, grads, [st["exp_avg"] for st in states], [st["exp_avg_sq"] for st in states],
                 [st["max_exp_avg_sq"] for st in states] if amsgrad else [], step_tensors]
        grouped = torch.optim.Optimizer._group_tensors_by_device_and_dtype(lists)  # type: ignore[arg-type]
        for (device, _), ((d_p, d_g, d_m, d_v, d_vmax, d_steps), _) in grouped.items():
            gs = None if grad_scale is None else grad_scale.to(device)
            kernel(
                d_p, d_g, d_m, d_v, d_vmax if amsgrad else [], d_steps,
                amsgrad=amsgrad, lr=lr, beta1=spec["beta1"], beta2=spec["beta2"], weight_decay=wd,
                eps=spec["eps"], maximize=False, grad_scale=gs, found_inf=None,
            )
