"""Shared by the distributed tests and their worker processes: the model, the data, the chains
and a launcher that runs dist_worker.py on several ranks (gloo, CPU, a FileStore: no ports).

The worker processes import this file as a plain module (``tests/distributed`` is put on their
``sys.path``); the pytest process imports it the same way, so both build the same models and
chains from the same code.
"""
from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

import torchzero as tz

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WORKER = HERE / "dist_worker.py"

BATCH = 8  # divisible by every world size used (1, 2, 4): each rank gets an equal share
STEPS = 6


# ------------------------------------------------------------------------------------ model and data
class Net(nn.Module):
    """Small, with awkward shapes for sharding on dim 0: sizes 4, 7, 3 and 1 rows, a 3-D conv
    weight, and tensors with fewer rows than ranks (empty local shards with 4 ranks)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, 4, 2)  # weight (4, 3, 2), bias (4,)
        self.fc1 = nn.Linear(16, 7)
        self.fc2 = nn.Linear(7, 3)
        self.head = nn.Linear(3, 1)  # weight (1, 3), bias (1,): one row, so most ranks hold nothing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv(x)).flatten(1)
        h = torch.tanh(self.fc1(h))
        h = torch.tanh(self.fc2(h))
        return self.head(h)


def make_model(dtype: torch.dtype = torch.float64, seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net().to(dtype)


def full_batch(step: int, dtype: torch.dtype = torch.float64, poison: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch of ``step``; ``poison``: the last sample (on the last rank) is NaN."""
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(BATCH, 3, 5, generator=g, dtype=dtype)
    y = 3 * torch.randn(BATCH, 1, generator=g, dtype=dtype)
    if poison:
        x[-1] = math.nan
    return x, y


def local_batch(step: int, rank: int, world: int, dtype: torch.dtype = torch.float64, poison: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = full_batch(step, dtype, poison)
    n = BATCH // world
    return x[rank * n : (rank + 1) * n], y[rank * n : (rank + 1) * n]


def train(model: nn.Module, opt: torch.optim.Optimizer, rank: int = 0, world: int = 1, start: int = 0,
          stop: int = STEPS, dtype: torch.dtype = torch.float64, poison_step: int | None = None) -> None:
    """Mean-squared error on this rank's share of the batch; DDP and FSDP average the gradients
    over ranks, so every rank sees the gradient of the full batch's mean loss. On ``poison_step``
    one sample of the last rank is NaN."""
    for step in range(start, stop):
        x, y = local_batch(step, rank, world, dtype, poison=step == poison_step)
        loss = (model(x) - y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def train_closure(model: nn.Module, opt: torch.optim.Optimizer, rank: int = 0, world: int = 1, steps: int = STEPS) -> None:
    """As :func:`train`, with ``opt.step(closure)`` for chains that evaluate the loss again."""
    for step in range(steps):
        x, y = local_batch(step, rank, world)

        def closure(backward: bool = True) -> torch.Tensor:
            loss = (model(x) - y).pow(2).mean()
            if backward:
                opt.zero_grad()
                loss.backward()
            return loss

        opt.step(closure)


# closure-driven chains: the line search decides on the mean loss over ranks
CLOSURE_CASES: dict[str, Callable[[], list[Any]]] = {
    "LBFGS-StrongWolfe": lambda: [tz.m.LBFGS(), tz.m.StrongWolfe()],
    "PolakRibiere-StrongWolfe": lambda: [tz.m.PolakRibiere(), tz.m.StrongWolfe(c2=0.1, a_init="first-order")],
    "Adam-Backtracking": lambda: [tz.m.Adam(), tz.m.Backtracking(init=0.1)],
    "Newton-Backtracking": lambda: [tz.m.Newton(damping=1e-2), tz.m.Backtracking()],
    "NewtonCG-StrongWolfe": lambda: [tz.m.NewtonCG(), tz.m.StrongWolfe()],
    "NewtonCG-central-Backtracking": lambda: [tz.m.NewtonCG(hvp_method="central", maxiter=5), tz.m.Backtracking()],
    "NewtonCGSteihaug": lambda: [tz.m.NewtonCGSteihaug(init=0.1)],
    "LevenbergMarquardt": lambda: [tz.m.LevenbergMarquardt(init=0.1)],
    "CubicRegularization-BFGS": lambda: [tz.m.CubicRegularization(tz.m.BFGS(), init=0.1)],
    "AdaHessian-Backtracking": lambda: [tz.m.AdaHessian(), tz.m.Backtracking(init=0.1)],
    "SophiaH-Backtracking": lambda: [tz.m.SophiaH(update_freq=2), tz.m.Backtracking(init=0.1)],
    # SAM: the perturbation from the gradient DDP averaged in backward, the same on every rank
    "SAM-HeavyBall": lambda: [tz.m.SAM(0.05), tz.m.HeavyBall(0.9), tz.m.LR(0.1)],
    "ASAM-Adam": lambda: [tz.m.ASAM(0.5), tz.m.Adam(), tz.m.LR(1e-2)],
    # gradient estimators: the same directions on every rank (a fixed seed here, to compare with
    # one process), the loss averaged over the ranks
    "SPSA-Adam": lambda: [tz.m.SPSA(n_samples=2, seed=0), tz.m.Adam(), tz.m.LR(1e-2)],
    "MeZO-LR": lambda: [tz.m.MeZO(seed=1), tz.m.LR(1e-2)],
    "ForwardGradient-LR": lambda: [tz.m.ForwardGradient(seed=2), tz.m.LR(1e-2)],
    # no seed: each rank's global generator is seeded differently before training (the worker
    # does it for "-unseeded" cases); rank 0's draw is broadcast, so the replicas still agree
    "SPSA-unseeded": lambda: [tz.m.SPSA(n_samples=2), tz.m.LR(1e-2)],
}


def full_params(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter as a whole tensor (a collective for DTensors: call it on every rank)."""
    out = {}
    for name, p in model.named_parameters():
        t = p.detach()
        if hasattr(t, "full_tensor"):
            t = t.full_tensor()
        out[name.replace("module.", "", 1) if name.startswith("module.") else name] = t.clone()
    return out


# ------------------------------------------------------------------------------------------ chains
m = tz.m


def _clips() -> dict[str, Callable[[bool], Any]]:
    """name -> make(post) for every clipping module and mode. ``post=False``: the module clips the
    gradient, before Adam; ``post=True``: it clips Adam's update (elementwise about 1), so the
    thresholds differ. Each is chosen so that the module changes the result (tests check that)."""
    inf = math.inf
    return {
        "ClipValue": lambda post: m.ClipValue(0.5 if post else 0.03),
        "ClipNorm": lambda post: m.ClipNorm(1.0 if post else 0.05),
        "ClipNorm-global": lambda post: m.ClipNorm(3.0 if post else 0.2, dim="global"),
        "ClipNorm-ord1": lambda post: m.ClipNorm(3.0 if post else 0.1, ord=1),
        "ClipNorm-ordinf": lambda post: m.ClipNorm(0.5 if post else 0.03, ord=inf),
        "ClipNorm-ordinf-global": lambda post: m.ClipNorm(0.5 if post else 0.03, ord=inf, dim="global"),
        "ClipNorm-ord3-global": lambda post: m.ClipNorm(1.0 if post else 0.1, ord=3, dim="global"),
        "ClipNorm-ord0.5": lambda post: m.ClipNorm(30.0 if post else 2.0, ord=0.5),
        "ClipNorm-mad": lambda post: m.ClipNorm(0.5 if post else 0.02, ord="mad"),
        "ClipNorm-mad-global": lambda post: m.ClipNorm(0.5 if post else 0.02, ord="mad", dim="global"),
        "ClipNorm-std": lambda post: m.ClipNorm(0.5 if post else 0.02, ord="std"),
        "ClipNorm-var-global": lambda post: m.ClipNorm(0.3 if post else 0.001, ord="var", dim="global"),
        "ClipNorm-rows": lambda post: m.ClipNorm(0.5 if post else 0.02, dim=0, inverse_dims=True),
        "ClipNorm-cols": lambda post: m.ClipNorm(0.5 if post else 0.02, dim=0),
        "ClipNorm-dims02": lambda post: m.ClipNorm(0.5 if post else 0.02, dim=(0, 2), min_size=2),
        "Normalize": lambda post: m.Normalize(1.0 if post else 0.05),
        "Normalize-global": lambda post: m.Normalize(3.0 if post else 0.2, dim="global"),
        "Normalize-cols": lambda post: m.Normalize(0.5 if post else 0.02, dim=0),
        "Normalize-ord0-global": lambda post: m.Normalize(50.0, ord=0, dim="global"),
        "Normalize-ordneg1": lambda post: m.Normalize(0.01, ord=-1),
        "Normalize-ordneginf-global": lambda post: m.Normalize(1e-6 if post else 0.01, ord=-inf, dim="global"),
        "Normalize-ordneginf-cols": lambda post: m.Normalize(0.01, ord=-inf, dim=0),
        "Centralize": lambda post: m.Centralize(),
        "Centralize-global": lambda post: m.Centralize(dim="global"),
        "Centralize-rows": lambda post: m.Centralize(dim=0, inverse_dims=True),
        "Centralize-cols": lambda post: m.Centralize(dim=0),
        "ClipNormByEMA": lambda post: m.ClipNormByEMA(0.5, max_ema_growth=1.2),
        "ClipNormByEMA-global": lambda post: m.ClipNormByEMA(0.5, tensorwise=False, max_ema_growth=1.2),
        "ClipNormByEMA-ordinf": lambda post: m.ClipNormByEMA(0.5, ord=inf, ema_init="update"),
        "NormalizeByEMA": lambda post: m.NormalizeByEMA(0.5),
        "NormalizeByEMA-global": lambda post: m.NormalizeByEMA(0.5, tensorwise=False),
        "ClipValueByEMA": lambda post: m.ClipValueByEMA(0.5),
        "ClipValueByEMA-ema_tfm": lambda post: m.ClipValueByEMA(0.5, ema_init="update", ema_tfm=m.ClipNorm(1.0)),
        "ClipValueGrowth": lambda post: m.ClipValueGrowth(add=0.01 if not post else 0.2, mul=1.05),
        "ClipNormGrowth": lambda post: m.ClipNormGrowth(mul=1.05),
        "ClipNormGrowth-global": lambda post: m.ClipNormGrowth(mul=1.05, parameterwise=False),
        "AGC": lambda post: m.AGC(0.01),
        "AGC-tensorwise": lambda post: m.AGC(0.01, dim=None),
        "AGC-global": lambda post: m.AGC(0.01, dim="global"),
        "AutoClip": lambda post: m.AutoClip(30, history=3),
        "ZClip": lambda post: m.ZClip(0.5, z_thresh=0.01, max_grad_norm=None, warmup_steps=2, mode="percentile"),
        "ZClip-zscore": lambda post: m.ZClip(0.5, z_thresh=0.1, max_grad_norm=3.0 if post else 0.2, warmup_steps=2),
        "SpikeClip": lambda post: m.SpikeClip(theta=1.2, beta=0.5, warmup=1),
    }


CLIPS = _clips()
LR = 0.05


def chain_for(case: str) -> list[Any]:
    """``"<clip>-pre"``: [clip, Adam, LR]; ``"<clip>-post"``: [Adam(beta1=0), clip, LR] (without
    momentum Adam's update varies enough from step to step for the growth and history-based
    clips to act); ``"baseline-pre"``/``"baseline-post"``: the same without the clip."""
    name, order = case.rsplit("-", 1)
    clip = [] if name == "baseline" else [CLIPS[name](order == "post")]
    return [*clip, m.Adam(), m.LR(LR)] if order == "pre" else [m.Adam(0.0), *clip, m.LR(LR)]


FSDP_CASES = [f"{name}-{order}" for name in CLIPS for order in ("pre", "post")]

# more chains: (make, fused, dtype). The fused ones go through torch._fused_adam_ with the global
# clip folded into grad_scale (float32: as grad_scale; float64: the gradients are scaled first).
EXTRA_CASES: dict[str, tuple[Callable[[], list[Any]], bool, torch.dtype]] = {
    "fused-ClipNorm-global": (lambda: [m.ClipNorm(0.2, dim="global"), m.Adam(), m.LR(LR)], True, torch.float64),
    "fused-Normalize-global-grad": (lambda: [m.Normalize(0.2, dim="global", target="grad"), m.Adam(), m.LR(LR)], True, torch.float64),
    "fused-ClipNorm-ordinf-global": (lambda: [m.ClipNorm(0.03, ord=math.inf, dim="global"), m.Adam(), m.LR(LR)], True, torch.float64),
    "fused-f32-ClipNorm-global": (lambda: [m.ClipNorm(0.2, dim="global"), m.Adam(), m.LR(LR)], True, torch.float32),
    "fused-f32-Normalize-global-grad": (lambda: [m.Normalize(0.2, dim="global", target="grad"), m.Adam(), m.LR(LR)], True, torch.float32),
    "f32-ClipNorm-rows-ClipNormByEMA": (lambda: [m.ClipNorm(0.02, dim=0, inverse_dims=True), m.Adam(), m.ClipNormByEMA(0.5), m.LR(LR)], False, torch.float32),
    # a NaN in one rank's data on step POISON_STEP: every rank must skip that step (the decision
    # comes from the global gradient norm, the same on all ranks), as one process skips it
    "nonfinite-skip": (lambda: [m.ClipNormByEMA(0.5, tensorwise=False), m.Adam(), m.LR(LR)], False, torch.float64),
    "nonfinite-skip-fused": (lambda: [m.ClipNorm(0.2, dim="global"), m.Adam(), m.LR(LR)], True, torch.float64),
    # matrix preconditioners: each sharded update is gathered whole (Transform.WHOLE_TENSORS);
    # Newton-Schulz in float64 here (bfloat16 would round the sharded sums' last bits differently)
    "matrix-Muon": (lambda: [m.Muon(ns_dtype="float64"), m.WeightDecay(0.01), m.LR(LR)], False, torch.float64),
    "matrix-Shampoo": (lambda: [m.Shampoo(reg=1e-4, update_freq=2), m.Graft([m.Grad(), m.Adam()]), m.LR(LR)], False, torch.float64),
    # (max_dim=4 and no 1-D factors keep every factor full rank: a degenerate eigenspace would be
    # rotated by the last bits of the sharded sums, and SOAP would follow it)
    "matrix-SOAP": (lambda: [m.SOAP(precond_freq=2, max_dim=4, precondition_1d=False), m.LR(LR)], False, torch.float64),
}
POISON_STEP = 2
FUSED_CASES = [c for c, (_, fused, _) in EXTRA_CASES.items() if fused]


def poison_step(case: str) -> int | None:
    return POISON_STEP if case.startswith("nonfinite-") else None


# every module, per tensor and global, and the dims-based norms; 4 ranks leave tensors with
# fewer rows than ranks with empty shards (the 2-rank run has the other variants and orders)
FSDP4_CASES = [
    f"{name}-pre" for name in CLIPS
    if name in {
        "ClipValue", "ClipNorm", "ClipNorm-global", "ClipNorm-ordinf", "ClipNorm-ordinf-global", "ClipNorm-std",
        "ClipNorm-var-global", "ClipNorm-rows", "ClipNorm-cols", "Normalize", "Normalize-global", "Centralize",
        "Centralize-global", "Centralize-rows", "Centralize-cols", "ClipNormByEMA", "ClipNormByEMA-global",
        "NormalizeByEMA", "NormalizeByEMA-global", "ClipValueByEMA", "ClipValueGrowth", "ClipNormGrowth",
        "ClipNormGrowth-global", "AGC", "AGC-tensorwise", "AGC-global", "AutoClip", "ZClip", "SpikeClip",
    }
] + ["fused-ClipNorm-global", "fused-f32-ClipNorm-global", "nonfinite-skip", "nonfinite-skip-fused", "matrix-Muon", "matrix-Shampoo", "matrix-SOAP"]
FSDP2_CASES = FSDP_CASES + list(EXTRA_CASES)
DDP_CASES = ["ClipNorm-global-pre", "ClipNorm-pre", "ClipNormByEMA-pre", "ClipNormByEMA-global-pre", "baseline-pre", "fused-f32-ClipNorm-global"]
DCP_SPLIT, DCP_STOP = 3, 7


def make_chain(case: str) -> tuple[list[Any], bool | None, torch.dtype]:
    """The modules of ``case``, the ``fused`` argument of ``Modular`` and the dtype of the model."""
    if case in EXTRA_CASES:
        make, fused, dtype = EXTRA_CASES[case]
        return make(), fused, dtype
    return chain_for(case), False, torch.float64


@functools.lru_cache(maxsize=None)
def reference(case: str, dtype: torch.dtype | None = None, steps: int = STEPS) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """The parameters and the last step's statistics of the single-process, unsharded run on the
    full batch (in ``dtype``, else the case's); cached: do not modify the result."""
    modules, fused, case_dtype = make_chain(case)
    dtype = dtype or case_dtype
    model = make_model(dtype)
    opt = tz.Modular(model.parameters(), *modules, fused=fused)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the skipped step's warning; std of one element
        train(model, opt, stop=steps, dtype=dtype, poison_step=poison_step(case))
    return full_params(model), stats_values(opt)


def stats_values(opt: tz.Modular) -> dict[str, float]:
    """``opt.stats()`` as numbers (a DTensor statistic is read as the whole value)."""
    return {k: float(v.full_tensor() if hasattr(v, "full_tensor") else v) for k, v in opt.stats().items()}


def assert_close(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor], rtol: float = 1e-5, atol: float = 0.0, what: str = "") -> None:
    assert got.keys() == want.keys(), f"{what}: parameter names differ: {sorted(got)} vs {sorted(want)}"
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=rtol, atol=atol, msg=lambda s: f"{what}: parameter {name}: {s}")


# ------------------------------------------------------------------------------------------ launcher
def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), *filter(None, [env.get("PYTHONPATH")])])
    # several ranks share a few cores: one thread each, or they slow each other down
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return env


def launch(world: int, out: Path, *tasks: str, timeout: float = 120.0) -> str | None:
    """Runs ``dist_worker.py out *tasks`` on ``world`` ranks and waits for all of them.

    The ranks meet through a FileStore in a fresh temporary directory (no ports). If a rank
    fails or the time runs out, every rank still running is killed, and the returned message
    holds the logs of all ranks; ``None`` if all went well. Results of the tasks that finished
    are in ``out`` either way.
    """
    with tempfile.TemporaryDirectory(prefix="tz-dist-") as tmp:
        store = os.path.join(tmp, "store")
        procs, logs = [], []
        env = worker_env()
        for rank in range(world):
            log = open(os.path.join(tmp, f"rank{rank}.log"), "w+")
            logs.append(log)
            procs.append(subprocess.Popen(
                [sys.executable, str(WORKER), str(out), *tasks],
                env={**env, "RANK": str(rank), "WORLD_SIZE": str(world), "TZ_TEST_STORE": store},
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            ))
        deadline = time.monotonic() + timeout
        failed = None
        try:
            while True:
                codes = [p.poll() for p in procs]
                if any(c not in (None, 0) for c in codes):
                    failed = f"rank {next(i for i, c in enumerate(codes) if c not in (None, 0))} exited with an error"
                    break
                if all(c == 0 for c in codes):
                    break
                if time.monotonic() > deadline:
                    failed = f"timed out after {timeout:.0f} s"
                    break
                time.sleep(0.05)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
            for p in procs:
                p.wait()
        text = []
        for rank, log in enumerate(logs):
            log.seek(0)
            text.append(f"----- rank {rank} (exit code {procs[rank].returncode})\n{log.read()[-6000:]}")
            log.close()
        if failed:
            return f"{' '.join(t.split(':')[0] for t in tasks)} on {world} ranks: {failed}\n" + "\n".join(text)
        return None


# ------------------------------------------------------------------------------------ checkpoints
def dcp_chain() -> list[Any]:
    """A chain whose state appears lazily: the inactive branch of ``Alternate`` and ZClip's
    statistics (after warm-up) are created after the first step; ``Alternate`` keeps its step
    counter in global state."""
    return [
        m.ClipNorm(0.5, dim="global", target="grad"),
        m.Alternate(m.ClipNormGrowth(parameterwise=False), m.ClipNormByEMA(0.5)),
        m.ZClip(0.5, z_thresh=0.01, max_grad_norm=None, warmup_steps=2, mode="percentile"),
        m.Adam(),
        m.ClipValueGrowth(),
        m.LR(LR),
    ]


def match_checkpoint(osd: dict[str, Any], checkpoint_id: str | os.PathLike, params: dict[str, torch.Tensor], key: str = "optim") -> dict[str, Any]:
    """Makes a ``dcp.load`` template of an optimizer state dict match the checkpoint.

    ``dcp.load`` fills only the entries of the template it is given and fails on entries the
    checkpoint lacks. A template made from a fresh optimizer (``get_state_dict(model, opt)``)
    holds the state its modules create on the first step, and torchzero modules may create or
    replace state later (an ``Alternate`` branch, ZClip's statistics after warm-up). This adds
    the per-parameter state and global state the checkpoint has (tensors shaped like their
    parameter are made like the parameter, so DTensor state is loaded sharded; other tensors as
    plain tensors; anything else as a placeholder ``dcp.load`` replaces) and removes the
    per-parameter state it lacks.

    Args:
        osd: the optimizer template, saved under ``key`` in the checkpoint.
        checkpoint_id: the checkpoint directory.
        params: parameter name (as in ``osd``) -> parameter.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    metadata = dcp.FileSystemReader(checkpoint_id).read_metadata()
    saved = {metadata.planner_data[k]: v for k, v in metadata.state_dict_metadata.items()}
    saved = {path[1:]: meta for path, meta in saved.items() if path[0] == key}
    for name, st in osd["state"].items():  # state the checkpoint does not have
        for k in [k for k in st if ("state", name, k) not in saved]:
            del st[k]
    for path, meta in saved.items():
        node: Any = osd
        for part in path[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list) or path[-1] in node:
            continue
        if isinstance(meta, TensorStorageMetadata):
            p = params.get(path[1]) if path[0] == "state" else None
            if p is not None and tuple(meta.size) == tuple(p.shape):
                node[path[-1]] = torch.empty_like(p, dtype=meta.properties.dtype)
            else:
                node[path[-1]] = torch.empty(tuple(meta.size), dtype=meta.properties.dtype)
        else:
            node[path[-1]] = None
    return osd


# ----------------------------------------------------------------------- functional, sharded
FUNC_SHAPES = [(7, 5), (3,), (1, 3), (4, 3, 2), (2,), (0, 4), (5, 1)]
FUNC_ORDS: list[Any] = [2.0, 1.0, 3.0, 0.5, math.inf, -math.inf, 0.0, -1.0, 2, "mad", "std", "var", "sum"]


def func_tensors(dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    """The same tensors on every rank (whole; the worker shards them on dim 0)."""
    g = torch.Generator().manual_seed(5)
    out = [torch.randn(s, generator=g, dtype=dtype) for s in FUNC_SHAPES]
    out[1][1] = 0.0  # a zero (ord 0 counts nonzeros; negative ords see it)
    return out


def functional_results(ts: list[torch.Tensor], plain: torch.Tensor) -> dict[str, Any]:
    """The functional layer on ``ts`` (sharded or not) and ``plain`` (never sharded): every norm,
    globally, per tensor and over dims, and the in-place kernels on copies."""
    from torchzero.functional import centralize_, global_norm, scale_by_norm_, tensor_norm, tensor_norms

    def whole(x: Any) -> Any:
        return x.full_tensor() if hasattr(x, "full_tensor") else x

    out: dict[str, Any] = {}
    for ord in FUNC_ORDS:
        out[f"global/{ord}"] = global_norm(ts, ord)
        out[f"global+plain/{ord}"] = global_norm([*ts, plain], ord)
        for i, n in enumerate(tensor_norms([*ts, plain], ord)):
            out[f"tensor{i}/{ord}"] = n
        for i, t in enumerate(ts):
            for dims in ((0,), (1,), (0, 1), (1, 2), (0, 2)):
                if max(dims) < t.ndim:
                    out[f"dims{i}{dims}/{ord}"] = whole(tensor_norm(t, ord, dims))
    for dim, inv in (("global", False), (None, False), (0, False), (0, True)):
        c = [t.clone() for t in ts]
        centralize_(c, dim, inv, 1)
        out[f"centralize/{dim}/{inv}"] = [whole(x) for x in c]
        c = [t.clone() for t in ts]
        scale_by_norm_(c, 0.3, 2.0, dim, inv, 1, "clip")
        out[f"clip/{dim}/{inv}"] = [whole(x) for x in c]
    return out
