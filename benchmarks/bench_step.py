"""Optimizer-step time: torchzero vs torch, interleaved in one process.

For every (workload, case) pair two independent, identical parameter sets are
built (``workloads.make_pair``). Both sides are warmed up, then for R repeats
one torchzero step and one torch step are timed alternately with
``time.perf_counter``. Gradients are not regenerated between steps (the same
``.grad`` tensors are reused), which is fine for timing. The table reports the
median and min step time of each side and the torchzero / torch ratio.

    python benchmarks/bench_step.py --workload all
    python benchmarks/bench_step.py --workload small --repeats 100 --cases adam
    python benchmarks/bench_step.py --workload all --json bench.json

Adding a case: append a ``Case`` to ``CASES``. ``tz`` and ``torch`` are
factories ``params -> step`` where ``step`` is a zero-argument callable that
performs one full optimizer step (including any gradient clipping) on
``params``. Factories are only called at benchmark time, so they may refer to
``tz`` (torchzero) freely.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shlex
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
# benchmark the working tree's torchzero, and make `workloads` importable
for _p in (_HERE, _ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import workloads  # noqa: E402

try:
    import torchzero as tz
except ModuleNotFoundError as e:  # only swallow "torchzero itself is missing"
    if e.name != "torchzero":
        raise
    tz = None

StepFn = Callable[[], object]
Factory = Callable[[list[torch.Tensor]], StepFn]


@dataclass(frozen=True)
class Case:
    name: str
    tz: Factory  # params -> step() for torchzero
    torch: Factory  # params -> step() for the torch reference
    description: str = ""
    # the workloads the case runs on (None: transformer and small; matrix preconditioners take
    # the 2-D "matrices" workload, which only they run on)
    workloads: tuple[str, ...] | None = None


NONFINITE = "skip"  # torchzero's default; --nonfinite propagate measures torch.optim's semantics


def _modular(params, *modules):
    return tz.Modular(params, *modules, nonfinite=NONFINITE)


# --------------------------------------------------------------------------- #
# torch reference sides
# --------------------------------------------------------------------------- #
def torch_adam(params: list[torch.Tensor], lr: float = 1e-3) -> StepFn:
    opt = torch.optim.Adam(params, lr=lr, fused=True)
    return opt.step


def torch_clipnorm_adam(params: list[torch.Tensor], max_norm: float = 1.0, lr: float = 1e-3) -> StepFn:
    opt = torch.optim.Adam(params, lr=lr, fused=True)

    def step():
        torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
        opt.step()

    return step


# --------------------------------------------------------------------------- #
# cases
# --------------------------------------------------------------------------- #
CASES: list[Case] = [
    Case(
        name="clipnorm+adam",
        tz=lambda p: _modular(p, tz.m.ClipNorm(1.0, dim="global"), tz.m.Adam(), tz.m.LR(1e-3)).step,
        torch=torch_clipnorm_adam,
        description="global grad-norm clip to 1.0 + Adam(lr=1e-3) vs clip_grad_norm_(foreach) + Adam(fused)",
    ),
    Case(
        name="adam",
        tz=lambda p: _modular(p, tz.m.Adam(), tz.m.LR(1e-3)).step,
        torch=torch_adam,
        description="Adam(lr=1e-3) vs torch.optim.Adam(fused=True)",
    ),
]

def torch_adamw(params: list[torch.Tensor], lr: float = 1e-3, weight_decay: float = 0.01) -> StepFn:
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    return opt.step


# Reference sides for "each clipping module + LR": the same math written directly with
# torch._foreach_* ops on a copy of the gradients (torchzero's modules leave p.grad alone by
# default too), then p -= lr * update. Stateful ones keep their state in closures.
LR = 1e-3


def _finish(params, update):
    torch._foreach_add_(params, update, alpha=-LR)


def _grads(params):
    return [p.grad for p in params]


def foreach_clip_value(params, value=0.01):
    def step():
        u = torch._foreach_clamp_max(_grads(params), value)
        torch._foreach_clamp_min_(u, -value)
        _finish(params, u)
    return step


def foreach_clip_norm(params, max_norm=1.0):
    def step():
        g = _grads(params)
        n = torch.stack(torch._foreach_norm(g))
        f = torch.where(n > 1e-12, (max_norm / n).clamp(max=1), 1.0)
        u = torch._foreach_mul(g, list(f.unbind()))
        _finish(params, u)
    return step


def foreach_clip_norm_global(params, max_norm=1.0):
    def step():
        g = _grads(params)
        n = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(g)))
        f = torch.where(n > 1e-12, (max_norm / n).clamp(max=1), 1.0)
        u = torch._foreach_mul(g, f)
        _finish(params, u)
    return step


def foreach_normalize(params, norm_value=1.0):
    def step():
        g = _grads(params)
        n = torch.stack(torch._foreach_norm(g))
        f = torch.where(n > 1e-12, norm_value / n, 1.0)
        u = torch._foreach_mul(g, list(f.unbind()))
        _finish(params, u)
    return step


def foreach_centralize(params):
    def step():
        g = _grads(params)
        u = [t - t.mean(dim=tuple(range(1, t.ndim)), keepdim=True) if t.ndim > 1 else t.clone() for t in g]
        _finish(params, u)
    return step


def foreach_clip_norm_by_ema(params, beta=0.99, growth=1.5, eps=1e-6, normalize=False):
    ema = [torch.zeros_like(p) for p in params]
    prev: list = [None]

    def step():
        g = _grads(params)
        torch._foreach_lerp_(ema, g, 1 - beta)
        e = torch.stack(torch._foreach_norm(ema))
        if prev[0] is None:
            prev[0] = e
        allowed = (prev[0] * growth).clamp_min(1e-6)
        over = e > allowed
        torch._foreach_mul_(ema, list(torch.where(over, allowed / e, 1.0).unbind()))
        e = torch.where(over, allowed, e)
        prev[0] = e
        d = torch.stack(torch._foreach_norm(g)) / e.clamp_min(eps)
        d = d.clamp_min(eps) if normalize else d.clamp_min(1)
        u = torch._foreach_div(g, list(d.unbind()))
        _finish(params, u)
    return step


def foreach_clip_value_by_ema(params, beta=0.99):
    ema = [torch.zeros_like(p) for p in params]

    def step():
        g = _grads(params)
        torch._foreach_lerp_(ema, torch._foreach_abs(g), 1 - beta)
        u = torch._foreach_minimum(g, ema)
        torch._foreach_maximum_(u, torch._foreach_neg(ema))
        _finish(params, u)
    return step


def foreach_clip_norm_growth(params, mul=1.5, min_value=1e-4, max_decay=2.0):
    prev: list = [None]

    def step():
        g = _grads(params)
        n = torch.stack(torch._foreach_norm(g))
        if prev[0] is None:
            prev[0] = n
            _finish(params, [t.clone() for t in g])
            return
        p = prev[0]
        d = torch.where(n > p * mul, n / (p * mul), 1.0).clamp_min(min_value)
        new = torch.where(n / p < 1 / max_decay, p / max_decay, n / d).clamp_min(min_value)
        prev[0] = new
        u = torch._foreach_div(g, list(d.unbind()))
        _finish(params, u)
    return step


def foreach_clip_value_growth(params, mul=1.5, min_value=1e-4, max_decay=2.0):
    prev: list = [None]

    def step():
        g = _grads(params)
        if prev[0] is None:
            prev[0] = [t.clone() for t in g]
            _finish(params, [t.clone() for t in g])
            return
        pm = torch._foreach_clamp_min(torch._foreach_abs(prev[0]), min_value)
        r = torch._foreach_div(torch._foreach_abs(g), pm)
        torch._foreach_clamp_min_(r, 1e-8)
        u = [torch.where(ri > mul, gi / (ri / mul), gi) for gi, ri in zip(g, r)]
        prev[0] = [torch.where(ri < 1 / max_decay, pi / max_decay, ui) for pi, ri, ui in zip(prev[0], r, u)]
        _finish(params, u)
    return step


def _tz(modules_fn):
    return lambda p: _modular(p, *modules_fn(), tz.m.LR(LR)).step


CASES += [
    Case(
        name="clipnorm(grad)+adam",
        tz=lambda p: _modular(p, tz.m.ClipNorm(1.0, dim="global", target="grad"), tz.m.Adam(), tz.m.LR(1e-3)).step,
        torch=torch_clipnorm_adam,
        description="as clipnorm+adam, with target='grad' (p.grad holds the clipped gradient, as after torch's clip_grad_norm_)",
    ),
    Case(
        name="adamw",
        tz=lambda p: _modular(p, tz.m.Adam(), tz.m.WeightDecay(0.01), tz.m.LR(1e-3)).step,
        torch=torch_adamw,
        description="Adam, WeightDecay(0.01), LR(1e-3) vs torch.optim.AdamW(weight_decay=0.01, fused=True)",
    ),
    Case("ClipValue", _tz(lambda: [tz.m.ClipValue(0.01)]), foreach_clip_value, "vs foreach clamp"),
    Case("ClipNorm", _tz(lambda: [tz.m.ClipNorm(1.0)]), foreach_clip_norm, "per-tensor, vs foreach norms"),
    Case("ClipNorm-global", _tz(lambda: [tz.m.ClipNorm(1.0, dim="global")]), foreach_clip_norm_global, "vs foreach global norm"),
    Case("Normalize", _tz(lambda: [tz.m.Normalize(1.0)]), foreach_normalize, "per-tensor, vs foreach norms"),
    Case("Centralize", _tz(lambda: [tz.m.Centralize(dim=0, inverse_dims=True)]), foreach_centralize, "per output unit, vs per-tensor means"),
    Case("ClipNormByEMA", _tz(lambda: [tz.m.ClipNormByEMA()]), foreach_clip_norm_by_ema, "vs foreach EMA"),
    Case("NormalizeByEMA", _tz(lambda: [tz.m.NormalizeByEMA()]), lambda p: foreach_clip_norm_by_ema(p, normalize=True), "vs foreach EMA"),
    Case("ClipValueByEMA", _tz(lambda: [tz.m.ClipValueByEMA()]), foreach_clip_value_by_ema, "vs foreach EMA"),
    Case("ClipValueGrowth", _tz(lambda: [tz.m.ClipValueGrowth()]), foreach_clip_value_growth, "vs foreach/where"),
    Case("ClipNormGrowth", _tz(lambda: [tz.m.ClipNormGrowth()]), foreach_clip_norm_growth, "vs foreach norms"),
]

# torch.optim.Muon and torch.optim.Adafactor, against the same chains (the goal: <= 1.0x)
CASES += [
    Case(
        "Muon",
        lambda p: _modular(p, tz.m.Muon(), tz.m.WeightDecay(0.01), tz.m.LR(0.02)).step,
        lambda p: torch.optim.Muon(p, lr=0.02, weight_decay=0.01).step,
        "Muon(), WeightDecay(0.01), LR(0.02) vs torch.optim.Muon(lr=0.02, weight_decay=0.01); bfloat16 Newton-Schulz both",
        workloads=("matrices",),
    ),
    Case(
        "Adafactor",
        lambda p: _modular(p, tz.m.Adafactor(lr=1e-2)).step,
        lambda p: torch.optim.Adafactor(p, lr=1e-2).step,
        "Adafactor(lr=1e-2) vs torch.optim.Adafactor(lr=1e-2) (foreach)",
        workloads=("transformer", "small", "matrices"),
    ),
]



def _fresh_grads(make: Callable[[list[torch.Tensor]], torch.optim.Optimizer]) -> Factory:
    """A factory whose step hands the optimizer a fresh copy of the workload's gradients (heavyball
    clears ``p.grad`` after its step; both sides of a heavyball case get the same treatment)."""

    def factory(params: list[torch.Tensor]) -> StepFn:
        opt = make(params)
        grads = [p.grad.clone() for p in params]

        def step() -> None:
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()

        step.__self__ = opt  # type: ignore[attr-defined]  (for the state-memory column)
        return step

    return factory


def _heavyball(make: Callable[..., torch.optim.Optimizer]) -> Factory:
    """A heavyball optimizer (the "bench" extra) in eager mode: no torch.compile."""

    def build(params: list[torch.Tensor]) -> torch.optim.Optimizer:
        import heavyball
        import heavyball.utils

        heavyball.utils.compile_mode = None
        return make(heavyball, params)

    return _fresh_grads(build)


def _tz_with_grads(modules_fn: Callable[[], list]) -> Factory:
    """A torchzero chain, stepped as the heavyball side is."""
    return _fresh_grads(lambda params: _modular(params, *modules_fn()))


# heavyball's equivalents (pip install -e ".[bench]"), eager mode, the same hyperparameters;
# the algorithms are not identical (max|dp| is not ~0): these compare step time and memory
CASES += [
    Case(
        "Muon-vs-heavyball",
        _tz_with_grads(lambda: [tz.m.Muon(momentum=0.9), tz.m.LR(0.02)]),
        _heavyball(lambda hb, p: hb.Muon(p, lr=0.02, betas=(0.9, 0.99))),
        "Muon(momentum=0.9), LR(0.02) vs heavyball.Muon(lr=0.02, betas=(0.9, 0.99))",
        workloads=("matrices",),
    ),
    Case(
        "SOAP-vs-heavyball",
        _tz_with_grads(lambda: [tz.m.SOAP(0.9, 0.95, 0.95, 10, True, 2048, False), tz.m.LR(3e-3)]),
        _heavyball(lambda hb, p: hb.SOAP(
            p, lr=3e-3, betas=(0.9, 0.95), shampoo_beta=0.95, weight_decay=0.0, precondition_frequency=10,
            max_precond_dim=2048, merge_dims=True, precondition_1d=False, use_precond_schedule=False,
        )),
        "SOAP(precond_freq=10, max_dim=2048) vs heavyball.SOAP(precondition_frequency=10, max_precond_dim=2048, no schedule)",
        workloads=("matrices",),
    ),
    # heavyball's PSGDPRO is the same algorithm as ours (the author's Q0.5EQ1.5 fitting rule with
    # Procrustes steps, dense factors); heavyball.PSGDKron is the older triangular-Q rule
    *[
        Case(
            f"PSGDKron{tag}-vs-heavyball{suffix}",
            _tz_with_grads(lambda prob=prob: [tz.m.PSGDKron(max_size=2048, max_skew=float("inf"), update_probability=prob), tz.m.LR(1e-3)]),
            _heavyball(lambda hb, p, prob=prob, peer=peer: getattr(hb, peer)(
                p, lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0, preconditioner_update_probability=prob,
                max_size_triangular=2048, min_ndim_triangular=2, memory_save_mode=None, q_dtype="float32",
                precond_lr=0.5,
            )),
            f"PSGDKron(max_size=2048, dense factors) vs heavyball.{peer} ({rule}), fitting {when}",
            workloads=("matrices",),
        )
        for suffix, peer, rule in (("", "PSGDKron", "its triangular-Q rule"), ("-PRO", "PSGDPRO", "the same Q0.5EQ1.5 rule"))
        for tag, prob, when in (("", 1.0, "every step"), ("-p0.1", 0.1, "on 1 step in 10 (the author's annealed setting)"))
    ],
    Case(
        "Shampoo-vs-heavyball",
        _tz_with_grads(lambda: [tz.m.Shampoo(update_freq=10, max_dim=2048), tz.m.LR(3e-3)]),
        _heavyball(lambda hb, p: hb.KLShampoo(
            p, lr=3e-3, weight_decay=0.0, precondition_frequency=10, max_precond_dim=2048, merge_dims=True,
            precondition_1d=False, use_precond_schedule=False,
        )),
        "Shampoo(update_freq=10, max_dim=2048) vs heavyball.KLShampoo (its Shampoo; a KL-divergence variant)",
        workloads=("matrices",),
    ),
]

DEFAULT_REPEATS = {"transformer": 15, "small": 50, "matrices": 10}


# --------------------------------------------------------------------------- #
# measurement
# --------------------------------------------------------------------------- #
def _runs_on(case: Case, workload: str) -> bool:
    return workload in (case.workloads or ("transformer", "small"))


def _state_bytes(step: StepFn) -> int:
    """The bytes of the tensors in the optimizer state of a bound ``opt.step`` (0 if unknown)."""
    opt = getattr(step, "__self__", None)
    if not isinstance(opt, torch.optim.Optimizer):
        return 0
    seen: set[int] = set()

    def size(v: object) -> int:  # heavyball nests its state in dicts and lists
        if isinstance(v, torch.Tensor):
            key = v.untyped_storage().data_ptr() if v.numel() else id(v)
            if key in seen:
                return 0
            seen.add(key)
            return v.untyped_storage().nbytes()
        if isinstance(v, dict):
            return sum(size(x) for x in v.values())
        if isinstance(v, (list, tuple)):
            return sum(size(x) for x in v)
        return 0

    return sum(size(st) for st in opt.state.values())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step: StepFn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    step()
    _sync(device)
    return time.perf_counter() - t0


@torch.no_grad()
def _max_abs_diff(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


def run_case(case: Case, workload: str, repeats: int, warmup: int, device: torch.device, seed: int) -> dict:
    p_tz, p_torch = workloads.make_pair(workload, seed=seed, device=device)
    n_tensors, n_params = len(p_tz), sum(p.numel() for p in p_tz)
    raw_torch = case.torch(p_torch)  # (heavyball's factory reads the gradients: built before any step)
    step_tz, step_torch = case.tz(p_tz), torch.no_grad()(raw_torch)

    for _ in range(warmup):
        step_tz()
        step_torch()
    _sync(device)

    t_tz: list[float] = []
    t_torch: list[float] = []
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            t_tz.append(_timed(step_tz, device))
            t_torch.append(_timed(step_torch, device))
    finally:
        if gc_was_enabled:
            gc.enable()

    state_tz, state_torch = _state_bytes(step_tz), _state_bytes(raw_torch)
    # sanity check: both sides made warmup + repeats steps from identical
    # parameters with identical gradients, so they should agree closely.
    max_diff = _max_abs_diff(p_tz, p_torch)

    ms_tz = [t * 1e3 for t in t_tz]
    ms_torch = [t * 1e3 for t in t_torch]
    med_tz, med_torch = statistics.median(ms_tz), statistics.median(ms_torch)
    min_tz, min_torch = min(ms_tz), min(ms_torch)
    return dict(
        workload=workload,
        case=case.name,
        description=case.description,
        n_tensors=n_tensors,
        n_params=n_params,
        repeats=repeats,
        warmup=warmup,
        tz_median_ms=med_tz,
        torch_median_ms=med_torch,
        ratio_median=med_tz / med_torch,
        tz_min_ms=min_tz,
        torch_min_ms=min_torch,
        ratio_min=min_tz / min_torch,
        max_abs_param_diff=max_diff,
        tz_state_mb=state_tz / 2**20,
        torch_state_mb=state_torch / 2**20,
        state_ratio=state_tz / state_torch if state_torch else float("nan"),
        tz_times_ms=ms_tz,
        torch_times_ms=ms_torch,
    )


# --------------------------------------------------------------------------- #
# reporting
# --------------------------------------------------------------------------- #
_COLS = (
    ("workload", "{:<11}", "workload"),
    ("case", "{:<20}", "case"),
    ("R", "{:>4}", "repeats"),
    ("tz med ms", "{:>10.3f}", "tz_median_ms"),
    ("torch med ms", "{:>12.3f}", "torch_median_ms"),
    ("ratio", "{:>6.2f}", "ratio_median"),
    ("tz min ms", "{:>10.3f}", "tz_min_ms"),
    ("torch min ms", "{:>12.3f}", "torch_min_ms"),
    ("ratio(min)", "{:>10.2f}", "ratio_min"),
    ("max|dp|", "{:>9.1e}", "max_abs_param_diff"),
    ("state MB", "{:>9.1f}", "tz_state_mb"),
    ("torch MB", "{:>9.1f}", "torch_state_mb"),
)


def _header() -> str:
    parts = []
    for title, fmt, _ in _COLS:
        width = int("".join(c for c in fmt.split(":")[1].split(".")[0] if c.isdigit()))
        align = "<" if "<" in fmt else ">"
        parts.append(f"{title:{align}{width}}")
    return "  ".join(parts)


def _row(r: dict) -> str:
    return "  ".join(fmt.format(r[key]) for _, fmt, key in _COLS)


def environment(device: torch.device) -> dict:
    env = dict(
        command=shlex.join([os.path.basename(sys.executable) or "python", *sys.argv]),
        python=platform.python_version(),
        torch_version=torch.__version__,
        torchzero_version=getattr(tz, "__version__", None),
        torchzero_path=getattr(tz, "__file__", None),
        num_threads=torch.get_num_threads(),
        num_interop_threads=torch.get_num_interop_threads(),
        cpu_count=os.cpu_count(),
        platform=platform.platform(),
        processor=platform.processor() or platform.machine(),
        device=str(device),
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    if device.type == "cuda":
        env["cuda_device"] = torch.cuda.get_device_name(device)
    return env


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", choices=["transformer", "small", "matrices", "all"], default="all")
    ap.add_argument(
        "--cases",
        nargs="+",
        default=None,
        metavar="NAME",
        help=f"cases to run (default: all). Available: {', '.join(c.name for c in CASES)}",
    )
    ap.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed steps per side (default: %s)" % ", ".join(f"{k}={v}" for k, v in DEFAULT_REPEATS.items()),
    )
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps per side before timing (default: 5)")
    ap.add_argument("--seed", type=int, default=workloads.DEFAULT_SEED)
    ap.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    ap.add_argument("--json", metavar="PATH", default=None, help="also write results as JSON to PATH")
    ap.add_argument(
        "--nonfinite",
        choices=["skip", "raise", "propagate"],
        default="skip",
        help="torchzero's non-finite policy (default: skip, the library default; 'propagate' is torch.optim's behaviour)",
    )
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    global NONFINITE
    NONFINITE = args.nonfinite
    if tz is None or not hasattr(tz, "Modular"):
        why = "module not found" if tz is None else f"{tz!r} has no `Modular` (package incomplete?)"
        print(f"error: `import torchzero` is not usable: {why}", file=sys.stderr)
        return 2

    by_name = {c.name: c for c in CASES}
    if args.cases is None:
        cases = list(CASES)
    else:
        unknown = [n for n in args.cases if n not in by_name]
        if unknown:
            print(f"error: unknown case(s) {unknown}; available: {list(by_name)}", file=sys.stderr)
            return 2
        cases = [by_name[n] for n in args.cases]
    wls = ["transformer", "small", "matrices"] if args.workload == "all" else [args.workload]
    wls = [w for w in wls if any(_runs_on(c, w) for c in cases)]
    device = torch.device(args.device)

    env = environment(device)
    print(f"command:     {env['command']}")
    print(f"torch:       {env['torch_version']}   torchzero: {env['torchzero_version']} ({env['torchzero_path']})")
    print(f"threads:     torch.get_num_threads()={env['num_threads']}  (os.cpu_count()={env['cpu_count']})")
    print(f"platform:    {env['platform']}  python {env['python']}  device={env['device']}")
    print(f"nonfinite:   {args.nonfinite} (torchzero's non-finite policy)")
    for w in wls:
        ps = workloads.WORKLOADS[w](seed=args.seed, device="cpu")
        print(f"workload:    {w:<11} {workloads.describe(ps)}")
        del ps
    print(
        f"method:      warmup={args.warmup}, then R repeats alternating one torchzero step / one torch step; "
        "ratio = torchzero / torch (<1 means torchzero is faster)"
    )
    print()
    print(_header())
    sys.stdout.flush()

    results, failures = [], []
    for w in wls:
        repeats = args.repeats if args.repeats is not None else DEFAULT_REPEATS[w]
        for case in (c for c in cases if _runs_on(c, w)):
            try:
                r = run_case(case, w, repeats, args.warmup, device, args.seed)
            except Exception as e:  # keep going so one broken case does not hide the others
                failures.append(dict(workload=w, case=case.name, error=f"{type(e).__name__}: {e}"))
                print(f"{w:<11}  {case.name:<16}  FAILED: {type(e).__name__}: {e}")
                traceback.print_exc(file=sys.stderr)
            else:
                results.append(r)
                print(_row(r))
            sys.stdout.flush()
            gc.collect()

    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(environment=env, results=results, failures=failures), f, indent=1)
        print(f"\nwrote {args.json}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
