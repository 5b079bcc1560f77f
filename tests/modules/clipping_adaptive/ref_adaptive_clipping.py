"""Reference implementations of AGC, AutoClip, ZClip, SPAM's spike clipping and the spike guard,
written from the papers' algorithms, one tensor (or one unit) at a time, with the statistics as
Python floats (float64). Independent of torchzero: imports only ``torch``, ``math`` and
``statistics``. Every ``step`` returns NEW tensors and never modifies its inputs.

Also: :func:`spike_stream`, a synthetic gradient stream with injected spikes.

Readings of the papers used here (each is stated in the torchzero docstrings too):

- AGC (Brock et al. 2021, arXiv 2102.06171, eq. 3): units are rows of an ``(out, in, ...)``
  weight; 1-D and 0-D tensors are one unit. ``G_i <- clipping * max(|W_i|, eps) / |G_i| * G_i``
  when ``|G_i| / max(|W_i|, eps) > clipping``.
- AutoClip (Seetharaman et al. 2020, arXiv 2007.14469): threshold = the p-th percentile (linear
  interpolation, as ``numpy.percentile``) of all norms so far including the current one; with
  ``history`` the last ``history`` norms. Factor ``threshold / norm`` when the norm is above it.
- ZClip (Kumar et al. 2025, arXiv 2504.02507, Algorithm 1 and the authors' code): see ``RefZClip``.
- SPAM (Huang et al. 2025, arXiv 2501.06842, Algorithm 1): ``g_i^2 > theta * v_i`` ->
  ``g_i = sign(g_i) sqrt(theta v_i)`` with ``v`` the previous second moment; ``v`` then follows
  the clipped gradient.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import torch
from torch import Tensor

D = torch.float64
TINY = 1e-12  # torchzero leaves a tensor unchanged when its norm is at most this


def global_norm(ts: Sequence[Tensor]) -> float:
    return math.sqrt(sum(float((t.double() ** 2).sum()) for t in ts))


def scale(ts: Sequence[Tensor], factor: float) -> list[Tensor]:
    return [t * factor for t in ts]


def clip_factor_to(norm: float, threshold: float | None) -> float:
    """``min(1, threshold / norm)``; 1 when the norm is ~0 or there is no threshold."""
    if threshold is None or not norm > TINY:
        return 1.0
    return min(1.0, threshold / norm)


# ---------------------------------------------------------------------------------------- AGC
def ref_agc(grads: Sequence[Tensor], params: Sequence[Tensor], clipping: float, eps: float, units: str = "rows") -> list[Tensor]:
    """``units``: ``"rows"`` (the paper's), ``"tensor"`` (each tensor one unit) or ``"global"``."""
    if units == "global":
        g, w = global_norm(grads), global_norm(params)
        allowed = clipping * max(w, eps)
        return scale(grads, allowed / g if g > allowed else 1.0)
    out = []
    for G, W in zip(grads, params):
        G = G.clone()
        if units == "rows" and G.ndim >= 2:
            for i in range(G.shape[0]):
                g, w = float(G[i].double().norm()), float(W[i].double().norm())
                allowed = clipping * max(w, eps)
                if g / max(w, eps) > clipping:
                    G[i] = G[i] * (allowed / g)
        else:
            g, w = float(G.double().norm()), float(W.double().norm())
            allowed = clipping * max(w, eps)
            if g / max(w, eps) > clipping:
                G = G * (allowed / g)
        out.append(G)
    return out


# ----------------------------------------------------------------------------------- AutoClip
def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolation percentile (``numpy.percentile``'s default)."""
    xs = sorted(values)
    pos = p / 100 * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


class RefAutoClip:
    def __init__(self, percentile: float = 10, history: int | None = None):
        self.p = percentile
        self.history = history
        self.norms: list[float] = []
        self.thresholds: list[float] = []

    def step(self, ts: Sequence[Tensor]) -> list[Tensor]:
        n = global_norm(ts)
        self.norms.append(n)
        window = self.norms if self.history is None else self.norms[-self.history :]
        thr = percentile(window, self.p)
        self.thresholds.append(thr)
        return scale(ts, clip_factor_to(n, thr))


# -------------------------------------------------------------------------------------- ZClip
class RefZClip:
    """ZClip, written from Algorithm 1 of the paper and the argument semantics of the authors' code.

    - warm-up (``warmup_steps`` steps): collect raw norms; clip at ``max_grad_norm`` if given; at
      the end, ``mean`` = average, ``var`` = population variance of the collected norms.
    - then ``z = (g - mean) / (std + eps)``; spike (zscore) ``z > z_thresh`` -> threshold
      ``clip_factor * (mean + z_thresh**2 * std / z)`` or ``mean``; (percentile) threshold
      ``mean + z_thresh * std``, spike ``g > threshold``.
    - effective = threshold on a spike else g, capped at ``max_grad_norm``; scale by
      ``min(1, effective / g)``.
    - statistics follow ``g* = min(g, threshold)`` on a spike, else ``g`` (not capped by
      ``max_grad_norm``), unless ``skip_update_on_spike`` and a spike:
      ``mean = a mean + (1-a) g*``; ``var = a var + (1-a) (g* - mean_new)^2``.
    """

    def __init__(self, alpha=0.97, z_thresh=2.5, max_grad_norm=1.0, eps=1e-6, warmup_steps=25, mode="zscore", clip_option="adaptive_scaling", clip_factor=1.0, skip_update_on_spike=False):  # noqa: E501
        self.alpha, self.z_thresh, self.max_grad_norm, self.eps = alpha, z_thresh, max_grad_norm, eps
        self.warmup_steps, self.mode, self.clip_option, self.clip_factor = warmup_steps, mode, clip_option, clip_factor
        self.skip = skip_update_on_spike
        self.buffer: list[float] = []
        self.mean: float | None = None
        self.var: float | None = None
        self.spikes: list[bool] = []
        self.effective: list[float | None] = []

    def step(self, ts: Sequence[Tensor]) -> list[Tensor]:
        g = global_norm(ts)
        if self.mean is None:
            self.buffer.append(g)
            if len(self.buffer) >= self.warmup_steps:
                self.mean = sum(self.buffer) / len(self.buffer)
                self.var = sum((x - self.mean) ** 2 for x in self.buffer) / len(self.buffer)
            self.spikes.append(False)
            self.effective.append(self.max_grad_norm)
            return scale(ts, clip_factor_to(g, self.max_grad_norm))
        std = math.sqrt(self.var)
        z = (g - self.mean) / (std + self.eps)
        threshold = None
        if self.mode == "percentile":
            t = self.mean + self.z_thresh * std
            if g > t:
                threshold = t
        elif z > self.z_thresh:
            if self.clip_option == "adaptive_scaling":
                threshold = self.clip_factor * (self.mean + self.z_thresh**2 * std / z)
            else:
                threshold = self.mean
        spike = threshold is not None
        effective = threshold if spike else g
        if self.max_grad_norm is not None:
            effective = min(effective, self.max_grad_norm)
        self.spikes.append(spike)
        self.effective.append(effective)
        out = scale(ts, clip_factor_to(g, effective))
        if not (spike and self.skip):
            gs = min(g, threshold) if spike else g
            self.mean = self.alpha * self.mean + (1 - self.alpha) * gs
            self.var = self.alpha * self.var + (1 - self.alpha) * (gs - self.mean) ** 2
        return out


# --------------------------------------------------------------------------------- SpikeClip
class RefSpikeClip:
    """SPAM's spike-aware clipping with its own second moment ``v`` (Algorithm 1, lines 7-9)."""

    def __init__(self, theta=5000.0, beta=0.999, warmup=20):
        self.theta, self.beta, self.warmup = theta, beta, warmup
        self.v: list[Tensor] | None = None
        self.t = 0
        self.clipped: list[int] = []  # number of clipped elements each step

    def step(self, ts: Sequence[Tensor]) -> list[Tensor]:
        self.t += 1
        if self.v is None:
            self.v = [torch.zeros_like(t) for t in ts]
        out, n_clipped = [], 0
        for g, v in zip(ts, self.v):
            g = g.clone()
            if self.t > self.warmup:
                mask = g**2 > self.theta * v
                g[mask] = torch.sign(g[mask]) * torch.sqrt(self.theta * v[mask])
                n_clipped += int(mask.sum())
            out.append(g)
        self.v = [self.beta * v + (1 - self.beta) * g**2 for g, v in zip(out, self.v)]
        self.clipped.append(n_clipped)
        return out


class RefSpamAdam:
    """Adam (debiased, as torch.optim.Adam) whose gradient is first spike-clipped with its own
    previous second moment (SPAM without momentum reset and without its sparse masks)."""

    def __init__(self, lr, beta1=0.9, beta2=0.999, eps=1e-8, theta=5000.0, warmup=20):
        self.lr, self.b1, self.b2, self.eps, self.theta, self.warmup = lr, beta1, beta2, eps, theta, warmup
        self.m: list[Tensor] | None = None
        self.v: list[Tensor] | None = None
        self.t = 0

    def step(self, params: list[Tensor], grads: Sequence[Tensor]) -> list[Tensor]:
        self.t += 1
        if self.m is None:
            self.m = [torch.zeros_like(g) for g in grads]
            self.v = [torch.zeros_like(g) for g in grads]
        new = []
        for i, (p, g) in enumerate(zip(params, grads)):
            g = g.clone()
            if self.t > self.warmup:
                mask = g**2 > self.theta * self.v[i]
                g[mask] = torch.sign(g[mask]) * torch.sqrt(self.theta * self.v[i][mask])
            self.m[i] = self.b1 * self.m[i] + (1 - self.b1) * g
            self.v[i] = self.b2 * self.v[i] + (1 - self.b2) * g * g
            mh = self.m[i] / (1 - self.b1**self.t)
            vh = self.v[i] / (1 - self.b2**self.t)
            new.append(p - self.lr * mh / (vh.sqrt() + self.eps))
        return new


# ------------------------------------------------------------------------------ spike guard
class RefSkipOnSpike:
    """Skip when the norm is not finite or ``(g - mean) / max(std, min_rel_std * mean) > sigma``
    over the last ``window`` norms of steps that were not skipped, once ``warmup`` norms are
    collected; a norm equal to the one skipped on the step before is accepted (the gradient
    did not change, so skipping it again could never end)."""

    def __init__(self, sigma=6.0, window=128, warmup=32, min_rel_std=0.1):
        self.sigma, self.window, self.warmup, self.min_rel_std = sigma, window, warmup, min_rel_std
        self.accepted: list[float] = []
        self.last_skipped: float | None = None

    def is_spike(self, ts: Sequence[Tensor]) -> bool:
        g = global_norm(ts)
        if not math.isfinite(g):
            self.last_skipped = g
            return True
        if len(self.accepted) >= self.warmup and g != self.last_skipped:
            w = self.accepted[-self.window :]
            mean, std = statistics.fmean(w), statistics.stdev(w)
            if (g - mean) / max(std, self.min_rel_std * mean) > self.sigma:
                self.last_skipped = g
                return True
        self.last_skipped = None
        self.accepted.append(g)
        return False


# ----------------------------------------------------------------------------- the stream
SHAPES = [(), (7,), (6, 5), (4, 3, 2, 2)]


def spike_stream(
    steps: int = 120,
    shapes: Sequence[tuple[int, ...]] = SHAPES,
    seed: int = 0,
    spike_every: int = 17,
    start: int = 30,
    dtype: torch.dtype = D,
) -> tuple[list[list[Tensor]], list[int]]:
    """A gradient stream: Gaussian noise around a slowly rotating mean direction whose scale
    drifts slowly (0.5x .. 2x), each tensor with its own scale; from step ``start`` on, every
    ``spike_every``-th step is a spike, alternately a norm spike (the whole gradient times
    30 .. 1000) and an element spike (3 elements times 200 .. 2000).

    Returns the stream (one list of tensors per step) and the indices of the spike steps.
    """
    g = torch.Generator().manual_seed(seed)
    tensor_scale = [10 ** (torch.rand((), generator=g, dtype=D).item() - 0.5) for _ in shapes]
    mean_dir = [torch.randn(s, generator=g, dtype=D) for s in shapes]
    stream, spikes = [], []
    for t in range(steps):
        drift = 2 ** math.sin(2 * math.pi * t / steps)
        step = []
        for s, sc, m in zip(shapes, tensor_scale, mean_dir):
            step.append((0.5 * m + torch.randn(s, generator=g, dtype=D)) * sc * drift)
        if t >= start and (t - start) % spike_every == 0:
            k = (t - start) // spike_every
            if k % 2 == 0:
                f = 10 ** (1.5 + 1.5 * torch.rand((), generator=g, dtype=D).item())
                step = [x * f for x in step]
            else:
                flat_sizes = [x.numel() for x in step]
                for _ in range(3):
                    i = int(torch.randint(len(step), (), generator=g))
                    if flat_sizes[i] == 0:
                        continue
                    j = int(torch.randint(flat_sizes[i], (), generator=g))
                    f = 10 ** (2.3 + torch.rand((), generator=g, dtype=D).item())
                    step[i] = step[i].clone()
                    step[i].view(-1)[j] *= f
            spikes.append(t)
        stream.append([x.to(dtype) for x in step])
    return stream, spikes
