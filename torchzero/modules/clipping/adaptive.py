"""Adaptive clipping: thresholds that follow the parameters (AGC) or the history of the norm
(AutoClip, ZClip), and elementwise spike clipping (SpikeClip).

AutoClip and ZClip keep statistics of a *global* norm. Parameters whose settings of the module
are the same form one group (one param group, in the common case) with one global norm and one
set of statistics. The statistics are stored in the state of every parameter of the group (the
same tensors, replaced each step and never modified in place), together with a ``step`` count; a
parameter that missed some steps gets the group's newest statistics back when it has a gradient
again. So ``opt.state_dict()`` carries them like any other state, and a parameter without a
gradient keeps its state untouched.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ...core.module import Module
from ...core.settings import as_list, is_uniform, subset
from ...core.transform import Context, Settings, States, Transform
from ...functional.adaptive_clipping import (
    agc_,
    ema_mean_var,
    ema_sq_,
    filled,
    percentile_threshold,
    push_history,
    scale_to_norm_,
    spike_clip_,
    zclip_threshold,
)
from ...functional.norms import Dim, global_norm
from ...functional.stats import summarize_norm_scaling
from ...utils.validation import MAX_BUFFER, check_beta, check_bool, check_choice, check_int, check_number, check_optional_number
from .common import check_norm_group_settings

__all__ = ["AGC", "AutoClip", "ZClip", "SpikeClip"]

ZCLIP_MODES = ("zscore", "percentile")
ZCLIP_OPTIONS = ("adaptive_scaling", "mean")


def latest_state(states: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest of the (shared) group states: the one with the largest ``"step"``; None if none."""
    best: dict[str, Any] | None = None
    for st in states:
        s = st.get("step")
        if s is not None and (best is None or s > best["step"]):
            best = st
    return best


def write_state(states: Sequence[dict[str, Any]], values: Mapping[str, Any]) -> None:
    """Makes ``values`` the whole state of every parameter of a group (tensors shared, not copied)."""
    for st in states:
        st.clear()
        st.update(values)


def _finite_or_nan(n: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isfinite(n), n, math.nan)


class AGC(Transform):
    r"""Unit-wise adaptive gradient clipping (AGC, Brock et al., 2021).

    Clips each unit of the update relative to the norm of the matching unit of the parameter:

    $$
    G_i \leftarrow
    \begin{cases}
    \lambda \dfrac{\max(\|W_i\|, \epsilon)}{\|G_i\|}\, G_i & \text{if } \dfrac{\|G_i\|}{\max(\|W_i\|, \epsilon)} > \lambda \\
    G_i & \text{otherwise}
    \end{cases}
    $$

    with Frobenius (L2) norms, $\lambda$ = ``clipping``, $G$ the update (or, with
    ``target="grad"``, the gradient) and $W$ the parameter. The default units are the paper's:
    the rows of an ``(out, in, ...)`` PyTorch weight (the norm over all dims but the first: one
    unit per output neuron or conv filter); a 1-D or 0-D parameter (bias, gain) is one unit.

    ``dim`` and ``inverse_dims`` choose the dims a unit's norm is taken over, as in
    :class:`ClipNorm`, except that a tensor with no dims left (a 1-D tensor with the default
    ``dim=0, inverse_dims=True``) is one unit instead of being left unchanged: ``dim=None``
    makes each whole tensor one unit; ``dim="global"`` makes all tensors one unit.

    Excluding parameters: set ``clipping=None`` for them, with :meth:`set_param_groups` or a
    ``"clipping"`` key in their param group. The paper does not clip the final linear layer.

    ``opt.stats()`` reports, over units, ``norm_max``, ``norm_mean``, ``factor_min``,
    ``factor_max`` and ``clip_frac`` (``norm``, ``factor``, ``clipped`` with ``dim="global"``).

    Args:
        clipping: $\lambda$, the largest allowed ratio of update norm to parameter norm, ``> 0``,
            or ``None`` to leave the parameter unchanged (default: ``0.01``).
        eps: $\epsilon$, the smallest parameter norm used, ``> 0``; it lets zero-initialised
            parameters (biases) move (default: ``1e-3``).
        dim: the dims the norm of a unit is taken over (default: ``0``, with ``inverse_dims``:
            all dims but the first).
        inverse_dims: reduce over the dims NOT selected by ``dim`` (default: ``True``).
        target: ``"update"`` (default) or ``"grad"``. The check uses the norm of that tensor.

    Example:
        AGC of the gradient as in NF-ResNets, the final layer excluded, then plain gradient descent:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        >>> agc = tz.m.AGC(0.01, target="grad").set_param_groups([{"params": model[2].parameters(), "clipping": None}])
        >>> opt = tz.Modular(model.parameters(), agc, tz.m.LR(0.1))

        What it does to one weight: row 0 has $\|W_0\| = 5$, so its update may have norm
        $0.05$; row 1 is zero, so $\epsilon$ allows $10^{-5}$:

        >>> w = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
        >>> tz.apply_transform(tz.m.AGC(0.01), [torch.tensor([[0.3, 0.4], [1.0, 0.0]])], params=[w])[0]
        tensor([[3.0000e-02, 4.0000e-02],
                [1.0000e-05, 0.0000e+00]])

    References:
        Brock, A., De, S., Smith, S. L., & Simonyan, K. (2021). High-performance large-scale
        image recognition without normalization. https://arxiv.org/abs/2102.06171
    """

    def __init__(
        self,
        clipping: float | None = 0.01,
        eps: float = 1e-3,
        dim: Dim = 0,
        inverse_dims: bool = True,
        target: str = "update",
    ):
        super().__init__(dict(clipping=clipping, eps=eps, dim=dim, inverse_dims=inverse_dims), target=target)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        if "clipping" in s:
            check_optional_number("clipping", s["clipping"], owner="AGC", min=0.0, min_inclusive=False)
        if "eps" in s:
            check_number("eps", s["eps"], owner="AGC", min=0.0, min_inclusive=False)
        check_norm_group_settings(s, "AGC")

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        clipping, eps = settings.values("clipping", "eps")
        if is_uniform(clipping) and clipping is None:
            return tensors
        stats: dict[str, list[torch.Tensor]] = {}
        is_global = True
        for (dim, inverse_dims), idx in settings.groups("dim", "inverse_dims"):
            if not is_uniform(clipping):
                idx = [i for i in idx if clipping[i] is not None]
            if not idx:
                continue
            agc_([tensors[i] for i in idx], [ctx.params[i] for i in idx], subset(clipping, idx), subset(eps, idx), dim, inverse_dims, stats=stats)
            is_global = is_global and dim == "global"
        if stats:
            self.record_stats(**stats, is_global=is_global)
        return tensors

    def summarize_stats(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Over units: ``norm_max``, ``norm_mean`` (of the update), ``factor_min``, ``factor_max``
        and ``clip_frac`` (fraction of units clipped); ``norm``/``factor``/``clipped`` with
        ``dim="global"``."""
        return summarize_norm_scaling(raw, raw["is_global"])


class AutoClip(Transform):
    r"""AutoClip (Seetharaman et al., 2020): clips the global norm at a percentile of its history.

    Each step, with $g_t$ the norm of all tensors of the group concatenated:

    $$
    \eta_t = \operatorname{percentile}_p\left(\{g_{t-h+1}, \dots, g_t\}\right), \qquad
    u \leftarrow u \cdot \min\left(1, \frac{\eta_t}{g_t}\right)
    $$

    The history includes the current norm, so the first step is never clipped. The percentile is
    linearly interpolated, as ``numpy.percentile`` (the paper's implementation) computes it.

    Differences from the paper, for bounded memory and no host sync: the paper takes the
    percentile of *all* norms seen since the start of training; here only the last ``history``
    norms are kept, in a ring buffer that lives on the device (identical to the paper for the
    first ``history`` steps, a sliding window after). A non-finite norm is kept as NaN and is
    not counted (``torch.nanquantile``). The factor is exactly $\eta_t / g_t$
    (``torch.nn.utils.clip_grad_norm_``, which the paper calls, divides by $g_t + 10^{-6}$).

    Parameters with different settings form separate groups, each with its own global norm and
    history. ``opt.stats()`` reports ``norm``, ``threshold``, ``factor`` and ``clipped``.

    Args:
        percentile: $p$, in ``[0, 100]`` (default: ``10``, the paper's recommendation).
        history: the number of most recent norms kept, an int in ``[1, 2**20]`` (default: ``1000``).
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.AutoClip(10, target="grad"), tz.m.Adam(), tz.m.LR(1e-3))

        The third norm (50) is clipped to the 10th percentile of (5, 10, 50):

        >>> clip, w = tz.m.AutoClip(10), torch.zeros(1)
        >>> [tz.apply_transform(clip, [torch.tensor([g])], params=[w])[0].item() for g in (5.0, 10.0, 50.0)]
        [5.0, 5.5, 6.0]

    References:
        Seetharaman, P., Wichern, G., Pardo, B., & Le Roux, J. (2020). AutoClip: Adaptive gradient
        clipping for source separation networks. https://arxiv.org/abs/2007.14469
    """

    def __init__(self, percentile: float = 10, history: int = 1000, target: str = "update"):
        super().__init__(dict(percentile=percentile, history=history), target=target)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        if "percentile" in s:
            check_number("percentile", s["percentile"], owner="AutoClip", min=0.0, max=100.0)
        if "history" in s:
            check_int("history", s["history"], owner="AutoClip", min=1, max=MAX_BUFFER)

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        stats: dict[str, list[torch.Tensor]] = {"norm": [], "factor": [], "threshold": []}
        for (percentile, history), idx in settings.groups("percentile", "history"):
            ts = tensors if len(idx) == len(tensors) else [tensors[i] for i in idx]
            sts = [states[i] for i in idx]
            prev = latest_state(sts)
            buf = prev["norm_history"] if prev else None
            n = global_norm(ts, 2.0)
            if buf is not None:
                n = n.to(buf.dtype)
            buf, count = push_history(buf, _finite_or_nan(n), prev["count"] if prev else 0, history)
            threshold = percentile_threshold(filled(buf, count), percentile)
            factor = scale_to_norm_(ts, n, threshold)
            write_state(sts, {"step": prev["step"] + 1 if prev else 1, "count": count, "norm_history": buf})
            stats["norm"].append(n)
            stats["factor"].append(factor)
            stats["threshold"].append(threshold)
        self.record_stats(**stats)
        return tensors

    def summarize_stats(self, raw: dict[str, Any]) -> dict[str, Any]:
        """``norm`` (before), ``factor``, ``clipped`` (1.0 if clipped) and ``threshold`` (the
        percentile); of the first group when parameters form several."""
        return {**summarize_norm_scaling(raw, True), "threshold": raw["threshold"][0].float()}


class ZClip(Transform):
    r"""ZClip (Kumar et al., 2025): clips global-norm outliers detected by a z-score of EMA statistics.

    With $g_t$ the norm of all tensors of the group concatenated:

    1. Warm-up, the first ``warmup_steps`` steps: the norms are collected and the update is
       clipped at ``max_grad_norm`` (if not None). At the end of warm-up $\mu$ and $\sigma^2$
       are set to the mean and (population) variance of the collected norms.
    2. Then $z_t = (g_t - \mu)/(\sigma + \epsilon)$. With ``mode="zscore"`` a spike is
       $z_t > z_{thr}$ and is clipped to $\tau = c\,(\mu + z_{thr}^2\sigma/z_t)$
       (``clip_option="adaptive_scaling"``, $c$ = ``clip_factor``) or to $\tau = \mu$
       (``"mean"``). With ``mode="percentile"``, $\tau = \mu + z_{thr}\sigma$ and a spike is
       $g_t > \tau$.
    3. The effective threshold is $\tau$ on a spike, else $g_t$ (no clipping), and at most
       ``max_grad_norm`` when that is not None: $u \leftarrow u\,\min(1, \text{threshold}/g_t)$.
    4. The statistics follow the clipped norm $g^*_t = \min(g_t, \tau)$ on a spike, else $g_t$:
       $\mu \leftarrow \alpha\mu + (1-\alpha)g^*_t$, then
       $\sigma^2 \leftarrow \alpha\sigma^2 + (1-\alpha)(g^*_t - \mu)^2$ (with the new $\mu$).
       The ``max_grad_norm`` cap does not enter them (as in the authors' code).

    ``skip_update_on_spike=True`` leaves the statistics unchanged on a spike step (the update
    is still clipped), which is what the argument does in the authors' implementation. To skip
    the whole optimizer step on a spike, put :class:`SkipOnSpike` first in the chain instead.
    Non-finite norms never enter the statistics. Everything stays on the device: no host sync.

    Parameters with different settings form separate groups, each with its own global norm and
    statistics. ``opt.stats()`` reports ``norm``, ``factor``, ``clipped`` and, after warm-up,
    ``zscore``, ``spike``, ``threshold``, ``mean`` and ``std``.

    Args:
        alpha: EMA coefficient of the statistics, in ``[0, 1)`` (default: ``0.97``).
        z_thresh: $z_{thr}$, ``> 0`` (default: ``2.5``).
        max_grad_norm: a fixed cap on the norm, applied during warm-up and after, ``>= 0``, or
            ``None`` for no cap (default: ``1.0``).
        eps: $\epsilon$ in the z-score, ``>= 0`` (default: ``1e-6``).
        warmup_steps: number of warm-up steps, ``>= 1`` (default: ``25``).
        mode: ``"zscore"`` (default) or ``"percentile"``.
        clip_option: with ``mode="zscore"``, ``"adaptive_scaling"`` (default) or ``"mean"``.
        clip_factor: $c$, ``> 0`` (default: ``1.0``); values below 1 clip harder.
        skip_update_on_spike: keep the statistics unchanged on spike steps (default: ``False``).
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        ZClip on the gradient, as in the paper, before Adam:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.ZClip(max_grad_norm=None, target="grad"), tz.m.Adam(), tz.m.LR(1e-3))

    References:
        Kumar, A., Owen, L., Chowdhury, N. R., & Güra, F. (2025). ZClip: Adaptive spike
        mitigation for LLM pre-training. https://arxiv.org/abs/2504.02507
    """

    def __init__(
        self,
        alpha: float = 0.97,
        z_thresh: float = 2.5,
        max_grad_norm: float | None = 1.0,
        eps: float = 1e-6,
        warmup_steps: int = 25,
        mode: str = "zscore",
        clip_option: str = "adaptive_scaling",
        clip_factor: float = 1.0,
        skip_update_on_spike: bool = False,
        target: str = "update",
    ):
        defaults = dict(
            alpha=alpha,
            z_thresh=z_thresh,
            max_grad_norm=max_grad_norm,
            eps=eps,
            warmup_steps=warmup_steps,
            mode=mode,
            clip_option=clip_option,
            clip_factor=clip_factor,
            skip_update_on_spike=skip_update_on_spike,
        )
        super().__init__(defaults, target=target)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "ZClip"
        if "alpha" in s:
            check_beta("alpha", s["alpha"], owner=o)
        if "z_thresh" in s:
            check_number("z_thresh", s["z_thresh"], owner=o, min=0.0, min_inclusive=False)
        if "max_grad_norm" in s:
            check_optional_number("max_grad_norm", s["max_grad_norm"], owner=o, min=0.0)
        if "eps" in s:
            check_number("eps", s["eps"], owner=o, min=0.0)
        if "warmup_steps" in s:
            check_int("warmup_steps", s["warmup_steps"], owner=o, min=1)
        if "mode" in s:
            check_choice("mode", s["mode"], ZCLIP_MODES, owner=o)
        if "clip_option" in s:
            check_choice("clip_option", s["clip_option"], ZCLIP_OPTIONS, owner=o)
        if "clip_factor" in s:
            check_number("clip_factor", s["clip_factor"], owner=o, min=0.0, min_inclusive=False)
        if "skip_update_on_spike" in s:
            check_bool("skip_update_on_spike", s["skip_update_on_spike"], owner=o)

    _KEYS = ("alpha", "z_thresh", "max_grad_norm", "eps", "warmup_steps", "mode", "clip_option", "clip_factor", "skip_update_on_spike")

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        stats: dict[str, list[torch.Tensor]] = {}
        for values, idx in settings.groups(*self._KEYS):
            ts = tensors if len(idx) == len(tensors) else [tensors[i] for i in idx]
            for k, v in self._clip_group(ts, [states[i] for i in idx], *values).items():
                stats.setdefault(k, []).append(v)
        self.record_stats(**stats)
        return tensors

    def summarize_stats(self, raw: dict[str, Any]) -> dict[str, Any]:
        """``norm`` (before), ``factor``, ``clipped``; after warm-up also ``zscore``, ``spike``
        (1.0 on a spike), ``threshold`` (the effective one) and the statistics ``mean`` and
        ``std`` used this step. Of the first group when parameters form several."""
        out = summarize_norm_scaling(raw, True)
        for k in ("zscore", "spike", "threshold", "mean", "std"):
            if k in raw:
                out[k] = raw[k][0].float()
        return out

    @staticmethod
    def _clip_group(
        ts: list[Tensor], sts: list[Any], alpha: float, z_thresh: float, max_grad_norm: float | None, eps: float,
        warmup_steps: int, mode: str, clip_option: str, clip_factor: float, skip_on_spike: bool,
    ) -> dict[str, torch.Tensor]:
        """Clips one group in place and updates its state; returns what it measured."""
        prev = latest_state(sts)
        step = prev["step"] if prev else 0
        n = global_norm(ts, 2.0)
        if prev is None or "mean" not in prev:  # warm-up: collect norms, clip at max_grad_norm
            buf = prev["warmup_norms"] if prev else None
            buf, count = push_history(buf, _finite_or_nan(n), prev["count"] if prev else 0, warmup_steps)
            factor = scale_to_norm_(ts, n, max_grad_norm) if max_grad_norm is not None else torch.ones_like(n)
            if count < warmup_steps:
                write_state(sts, {"step": step + 1, "count": count, "warmup_norms": buf})
            else:
                norms = filled(buf, count)
                mean = torch.nanmean(norms)
                write_state(sts, {"step": step + 1, "mean": mean, "var": torch.nanmean((norms - mean) ** 2)})
            return {"norm": n, "factor": factor}

        mean, var = prev["mean"], prev["var"]
        n = n.to(mean.dtype)
        threshold, z, spike = zclip_threshold(n, mean, var, z_thresh, eps, mode, clip_option, clip_factor)
        effective = torch.where(spike, threshold, n)
        if max_grad_norm is not None:
            effective = effective.clamp_max(max_grad_norm)
        factor = scale_to_norm_(ts, n, effective)
        clipped = torch.where(spike, torch.minimum(threshold, n), n)
        new_mean, new_var = ema_mean_var(mean, var, clipped, alpha)
        keep = ~torch.isfinite(n)
        if skip_on_spike:
            keep = keep | spike
        write_state(sts, {"step": step + 1, "mean": torch.where(keep, mean, new_mean), "var": torch.where(keep, var, new_var)})
        return {"norm": n, "factor": factor, "zscore": z, "spike": spike, "threshold": effective, "mean": mean, "std": var.sqrt()}


class SpikeClip(Transform):
    r"""Elementwise spike clipping of SPAM (Huang et al., 2025).

    An element whose square exceeds $\theta$ times a running mean of squares is a spike and is
    clipped to that bound, keeping its sign:

    $$
    g_i \leftarrow \operatorname{sign}(g_i)\sqrt{\theta\, v_i} \quad \text{where } g_i^2 > \theta\, v_i
    $$

    As in SPAM, $v$ is the second moment *before* this step (it does not include the current
    $g$) and is not bias-corrected. By default $v$ is this module's own EMA of the squares of
    the clipped tensors, $v \leftarrow \beta v + (1-\beta) g^2$ after clipping (SPAM's Adam
    second moment, seen from here). With ``source=adam`` it is instead ``exp_avg_sq`` of that
    :class:`Adam` module, which must come *later* in the chain (so that, when this module runs,
    it still holds the previous step's value, exactly as in SPAM), and this module keeps no
    second moment of its own. No clipping happens during the first ``warmup`` steps of a
    parameter (SPAM waits 20 steps after each momentum reset), nor for a parameter the source
    has no ``exp_avg_sq`` for yet. With ``Modular(..., full_stats=True)``, ``opt.stats()``
    reports ``clip_frac``, the fraction of elements clipped (counting costs a pass over the data).

    Args:
        theta: $\theta$, ``> 0`` (default: ``5000``, the paper's).
        beta: EMA coefficient of the own second moment, in ``[0, 1)`` (default: ``0.999``,
            Adam's $\beta_2$); unused with ``source``.
        warmup: steps of a parameter during which nothing is clipped, ``>= 0`` (default: ``20``).
        source: a module whose ``state[p]["exp_avg_sq"]`` to use as $v$ (default: ``None``: own EMA).
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        Spike-aware clipping with its own second moment, before Adam:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.SpikeClip(), tz.m.Adam(), tz.m.LR(1e-3))

        SPAM's clipping, using the second moment of the Adam that follows:

        >>> adam = tz.m.Adam()
        >>> opt = tz.Modular(model.parameters(), tz.m.SpikeClip(source=adam), adam, tz.m.LR(1e-3))

    References:
        Huang, T., Zhu, Z., Jin, G., Liu, L., Wang, Z., & Liu, S. (2025). SPAM: Spike-aware Adam
        with momentum reset for stable LLM training. https://arxiv.org/abs/2501.06842
    """

    # a Python count (not a step counter tensor): the warmup test branches on it, which
    # torch.compile can't do on a tensor
    STATE_KEYS = {"step": "count"}

    def __init__(
        self,
        theta: float = 5000,
        beta: float = 0.999,
        warmup: int = 20,
        source: Module | None = None,
        target: str = "update",
    ):
        if source is not None and not isinstance(source, Module):
            raise TypeError(f"SpikeClip: source must be a torchzero Module (e.g. the tz.m.Adam of the chain) or None, got {source!r} of type {type(source).__name__}")
        super().__init__(dict(theta=theta, beta=beta, warmup=warmup), target=target)
        self.source = source

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        if "theta" in s:
            check_number("theta", s["theta"], owner="SpikeClip", min=0.0, min_inclusive=False)
        if "beta" in s:
            check_beta("beta", s["beta"], owner="SpikeClip")
        if "warmup" in s:
            check_int("warmup", s["warmup"], owner="SpikeClip", min=0)

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        if self.source is not None:  # the source module keeps the second moment
            return {"step": 0}
        return {"step": 0, "exp_avg_sq": torch.zeros_like(tensor, memory_format=torch.preserve_format)}

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        theta, beta, warmup = settings.values("theta", "beta", "warmup")
        if self.source is None:
            v = states["exp_avg_sq"]
        else:
            if "pow" in self.source.defaults:  # Adam with pow != 2 keeps an EMA of |u|^pow, not of squares
                pow_ = self.source.settings_list(ctx.params)["pow"]
                bad = [x for x in ([pow_] if is_uniform(pow_) else pow_) if x != 2]
                if bad:
                    raise ValueError(f"SpikeClip: source must keep a second moment of squares, but it has pow={bad[0]!r}; use pow=2 or no source")
            source_state = self.source.state
            v = [(source_state.get(p) or {}).get("exp_avg_sq") for p in ctx.params]
        for st in states:
            st["step"] += 1
        warm = as_list(warmup, len(states))
        idx = [i for i, (st, w, vi) in enumerate(zip(states, warm, v)) if st["step"] > w and vi is not None]
        if idx:
            if len(idx) != len(tensors):
                tensors_, v_, theta = [tensors[i] for i in idx], [v[i] for i in idx], subset(theta, idx)
            else:
                tensors_, v_ = tensors, v
            n_clipped = spike_clip_(tensors_, v_, theta, count=self.full_stats)
            if n_clipped is not None:  # counting costs a pass over the data: only with full_stats
                self.record_stats(clip_frac=n_clipped / max(sum(t.numel() for t in tensors), 1))
        if self.source is None:
            ema_sq_(v, tensors, beta)
        return tensors

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.source is None else f"{s}, source={type(self.source).__name__}"
