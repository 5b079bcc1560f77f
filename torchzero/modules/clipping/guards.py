"""Step guards: skip the whole optimizer step when the gradient is non-finite or a norm spike.

A guard must be the FIRST module of the chain. On a bad step it sets ``var.skip_update``, which
stops the chain, so no later module runs: the parameters and the state of every other module are
left exactly as they were (only the guard's own counters change). A module placed before the
guard would already have updated its state; the guard raises a ``ValueError`` when it sees that
a module before it has formed the update. (It cannot see a ``target="grad"`` module placed before
it, which does not form the update: do not do that.) Deciding to skip needs the decision on the
host, so each guard makes one host sync per step, the only one in these modules.

The guards count bad steps in ``global_state`` (saved by ``Modular.state_dict()`` under
``"global_state"``): ``"consecutive"`` (bad steps in a row) and ``"skipped"`` (all bad steps).
After more than ``max_consecutive`` bad steps in a row they raise a ``RuntimeError`` that says
what happened.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.capabilities import Capabilities
from ...core.module import Module
from ...core.settings import as_list
from ...core.sync import host_bool
from ...core.var import Var
from ...functional.adaptive_clipping import MIN_REL_STD, all_finite, filled, norm_zscore, push_history
from ...functional.norms import global_norm
from ...utils.validation import MAX_BUFFER, check_int, check_number
from .adaptive import latest_state, write_state

__all__ = ["SkipNonFinite", "SkipOnSpike"]


def _compile_hint(name: str) -> str:
    """The graph-break message of guard ``name`` under ``torch.compile``."""
    return (
        f"torchzero: {name} decides on the host whether to skip the step (one host sync), which "
        f"torch.compile(fullgraph=True) cannot capture. Compile without fullgraph=True (the step then compiles in "
        f"pieces around the decision), or leave {name} out of the optimizer whose step you compile with "
        f"fullgraph=True. See docs/guide/compile.md."
    )


def _check_optional_int(name: str, value: Any, owner: str, min: int) -> None:
    if value is not None:
        check_int(name, value, owner=owner, min=min)


class _StepGuard(Module):
    """Shared by the guards: placement check, counters and the error after too many bad steps."""

    #: Modular checks at construction that guards come first in the chain.
    CAPABILITIES = Capabilities(guard=True)

    def _check_first(self, var: Var) -> None:
        if var.update is not None:
            name = type(self).__name__
            raise ValueError(
                f"{name} must be the first module of the chain: a module before it has already formed the update "
                f"(and updated its state), so a skipped step would not leave the optimizer unchanged. "
                f"Put it first, e.g. tz.Modular(params, tz.m.{name}(), tz.m.Adam(), tz.m.LR(1e-3))"
            )

    def _limit(self, params: list[Tensor]) -> int | None:
        limit = self.settings_list(params)["max_consecutive"]
        values = [v for v in as_list(limit, len(params)) if v is not None]
        return min(values) if values else None

    def _good_step(self) -> None:
        self.global_state["consecutive"] = 0
        self.global_state.setdefault("skipped", 0)

    def _bad_step(self, var: Var, limit: int | None, explain: Any) -> Var:
        gs = self.global_state
        gs["consecutive"] = gs.get("consecutive", 0) + 1
        gs["skipped"] = gs.get("skipped", 0) + 1
        if limit is not None and gs["consecutive"] > limit:
            raise RuntimeError(
                f"{type(self).__name__}: {gs['consecutive']} consecutive optimizer steps were bad, more than "
                f"max_consecutive={limit}; {explain()} ({gs['skipped']} steps skipped in all). The parameters and the "
                f"optimizer state are those of the last good step."
            )
        var.skip_update = True
        return var


class SkipNonFinite(_StepGuard):
    r"""Skips the whole step when a gradient element or the loss is NaN or infinite.

    Must be the first module of the chain (see the module docs): then on a bad step no other
    module runs, so the parameters and the state of every module are left exactly as they were.
    The loss is checked when it is known (``opt.step(closure)``). After more than
    ``max_consecutive`` bad steps in a row a ``RuntimeError`` says what was non-finite.

    The check costs one max-abs kernel per dtype and one host sync per step (to decide whether
    to skip). ``opt.stats()`` reports ``skipped`` (1.0 on a skipped step).

    Note:
        :class:`~torchzero.Modular` itself skips such steps by default (``nonfinite="skip"``),
        before any module runs, so this guard then never sees them. Use the guard with
        ``Modular(..., nonfinite="propagate")`` when you want what it adds: the error after
        ``max_consecutive`` bad steps in a row, and its counts in the checkpoint.

    Args:
        max_consecutive: the largest number of bad steps in a row that are skipped silently,
            an int ``>= 0`` (``0``: raise on the first one), or ``None`` to never raise
            (default: ``10``).

    Example:
        >>> import torch, torchzero as tz
        >>> w = torch.nn.Parameter(torch.ones(2))
        >>> opt = tz.Modular([w], tz.m.SkipNonFinite(), tz.m.Adam(), tz.m.LR(0.1), nonfinite="propagate")
        >>> w.grad = torch.tensor([1.0, float("nan")])
        >>> opt.step()  # skipped: w and Adam's state are untouched
        >>> w
        Parameter containing:
        tensor([1., 1.], requires_grad=True)
        >>> opt.chain.modules[0].global_state["skipped"]
        1
    """

    _COMPILE_HINT = _compile_hint("SkipNonFinite")

    def __init__(self, max_consecutive: int | None = 10):
        super().__init__({"max_consecutive": max_consecutive})

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        if "max_consecutive" in s:
            _check_optional_int("max_consecutive", s["max_consecutive"], "SkipNonFinite", 0)

    def step(self, var: Var) -> Var:
        self._check_first(var)
        if not var.params:
            return var
        grads = var.get_grad()
        ok = all_finite(grads)
        loss = var.loss
        if isinstance(loss, Tensor):
            ok = ok & torch.isfinite(loss.detach()).all().to(ok.device)
        elif isinstance(loss, (int, float)) and not math.isfinite(loss):
            ok = torch.zeros((), dtype=torch.bool)
        self.record_stats(skipped=(~ok).float())
        if host_bool(ok, self._COMPILE_HINT):  # the one host sync: the decision to skip
            self._good_step()
            return var

        def explain() -> str:
            bad = sum(1 for g in grads if g.numel() and not bool(torch.isfinite(g).all()))
            parts = [f"this step {bad} of {len(grads)} gradient tensors have NaN or infinite elements"]
            if loss is not None:
                parts.append(f"the loss is {float(loss)}")
            return ", ".join(parts) + ". Lower the learning rate, check the data and the loss, or raise max_consecutive"

        return self._bad_step(var, self._limit(var.params), explain)


class SkipOnSpike(_StepGuard):
    r"""Skips the whole step when the global gradient norm is a spike.

    With $g$ the norm of all gradients concatenated, and $\mu$, $\sigma$ the mean and the
    (unbiased) standard deviation of the last ``window`` norms of steps that were NOT skipped,
    a step is a spike when

    $$
    z = \frac{g - \mu}{\max(\sigma,\ r\mu)} > \text{sigma}
    $$

    ($r$ = ``min_rel_std``), or when $g$ is not finite. The floor on $\sigma$ matters when the
    norms stop varying, as in full-batch training near a minimum: there $\sigma \approx 0$, and
    without it a rise of 1% would be a spike, skipped, met again by the same gradient, and so on
    until ``max_consecutive`` raises. With the defaults a norm must exceed $1.6\mu$ to be a spike
    when the spread has collapsed. For the same reason a norm equal to the one skipped on the
    step before is not a spike: the parameters didn't move, so the gradient is the same (a full
    batch), and skipping it again could never end. Nothing is detected until ``warmup`` norms have been
    collected. Skipped spikes never enter the window, so one spike does not hide the next.

    Must be the first module of the chain (see the module docs): on a spike no other module
    runs, so the parameters and the state of every module are left exactly as they were.
    Because skipped norms are not collected, a lasting change of the norm's scale (say, a
    learning-rate warm-up that ends) makes every step a spike; ``max_consecutive`` turns that
    into an error instead of a silent stall (``guard.reset()`` restarts the statistics).

    Parameters with different settings form separate groups, each with its own global norm and
    window; a spike in any group skips the step. The windows are kept in the state of each
    parameter of the group (the same tensors), so they are in ``opt.state_dict()``.
    ``opt.stats()`` reports ``norm``, ``skipped`` and, after warm-up, ``zscore``.

    Args:
        sigma: the threshold in standard deviations, ``> 0`` (default: ``6``).
        window: the number of recent norms the statistics use, an int in ``[2, 2**20]`` (default: ``128``).
        warmup: norms collected before spikes are detected, an int ``>= 2`` (default: ``32``).
        max_consecutive: the largest number of spikes in a row that are skipped silently, an
            int ``>= 0``, or ``None`` to never raise (default: ``10``).
        min_rel_std: the floor $r$ on the standard deviation, as a fraction of the mean, in
            ``[0, 10]`` (default: ``0.1``).

    Example:
        Guards go first (non-finite steps are skipped by ``Modular`` before it runs):

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.SkipOnSpike(sigma=6), tz.m.Adam(), tz.m.LR(1e-3))
    """

    _COMPILE_HINT = _compile_hint("SkipOnSpike")

    def __init__(
        self, sigma: float = 6, window: int = 128, warmup: int = 32, max_consecutive: int | None = 10, min_rel_std: float = MIN_REL_STD
    ):
        super().__init__(dict(sigma=sigma, window=window, warmup=warmup, max_consecutive=max_consecutive, min_rel_std=min_rel_std))
        #: the norms of the step just skipped, by group: the same norm again means the same
        #: gradient (full-batch training), which skipping can't change, so it is not a spike
        self._skipped_norms: dict[tuple[int, ...], Tensor] = {}

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "SkipOnSpike"
        if "sigma" in s:
            check_number("sigma", s["sigma"], owner=o, min=0.0, min_inclusive=False)
        if "window" in s:
            check_int("window", s["window"], owner=o, min=2, max=MAX_BUFFER)
        if "min_rel_std" in s:
            check_number("min_rel_std", s["min_rel_std"], owner=o, min=0.0, max=10.0)
        if "warmup" in s:
            check_int("warmup", s["warmup"], owner=o, min=2)
        if "max_consecutive" in s:
            _check_optional_int("max_consecutive", s["max_consecutive"], o, 0)

    def step(self, var: Var) -> Var:
        self._check_first(var)
        params = var.params
        if not params:
            return var
        grads = var.get_grad()
        settings = self.settings_list(params)
        pending = []
        flags = []
        zscores = []
        group_idx = []
        for (sigma, window, warmup, rel), idx in settings.groups("sigma", "window", "warmup", "min_rel_std"):
            sts = [self.state[params[i]] for i in idx]
            prev = latest_state(sts)
            count = prev["count"] if prev else 0
            buf = prev["norm_window"] if prev else None
            n = global_norm([grads[i] for i in idx], 2.0)
            if buf is not None:
                n = n.to(buf.dtype)
            spike = ~torch.isfinite(n)
            if buf is not None and count >= warmup:
                z = norm_zscore(n, filled(buf, count), rel)
                repeat = self._skipped_norms.get(tuple(idx))
                high = z > sigma
                if repeat is not None:  # the very norm skipped last step: the gradient didn't change
                    high = high & (n != repeat)
                spike = spike | high
                zscores.append(z)
            flags.append(spike)
            pending.append((sts, prev, n, buf, count, window, sigma, rel))
            group_idx.append(idx)
        skip = flags[0] if len(flags) == 1 else torch.stack(flags).any()
        self.record_stats(norm=pending[0][2], zscores=zscores, skipped=skip)
        skipped_norms = {tuple(idx): p[2] for idx, p in zip(group_idx, pending)}
        if not host_bool(skip, self._COMPILE_HINT):  # the one host sync: the decision to skip
            self._skipped_norms = {}
            for sts, prev, n, buf, count, window, _, _ in pending:
                buf, count = push_history(buf, n, count, window)
                write_state(sts, {"step": prev["step"] + 1 if prev else 1, "count": count, "norm_window": buf})
            self._good_step()
            return var

        def explain() -> str:
            out = []
            for _sts, _prev, n, buf, count, _window, sigma, rel in pending:
                if buf is None:
                    out.append(f"the gradient norm is {n.item():.4g}")
                    continue
                w = filled(buf, count)
                mean, std = w.mean().item(), (w.std().item() if w.numel() > 1 else float("nan"))
                out.append(
                    f"the gradient norm is {n.item():.4g}, while the last {w.numel()} accepted norms have mean {mean:.4g} "
                    f"and std {std:.4g} (threshold: mean + {sigma:g} * max(std, {rel:g} * mean))"
                )
            return "; ".join(out) + (
                ". If the norm has legitimately changed scale, raise sigma or max_consecutive, or call reset() on the guard"
            )

        self._skipped_norms = skipped_norms
        return self._bad_step(var, self._limit(params), explain)

    def summarize_stats(self, raw: dict[str, Any]) -> dict[str, Any]:
        """``norm`` (the global gradient norm, of the first group when there are several),
        ``skipped`` (1.0 if the step was skipped) and, after warm-up, ``zscore`` (the largest
        over groups)."""
        out = {"norm": raw["norm"].float(), "skipped": raw["skipped"].float()}
        if raw["zscores"]:
            out["zscore"] = torch.stack([z.float() for z in raw["zscores"]]).max()
        return out
