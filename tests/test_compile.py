"""``torch.compile(opt.step)`` matches eager, with a bounded number of recompiles.

Every module that compiles is in at least one chain below (``test_chains_cover_every_compilable_module``
fails when a new module is in neither ``CHAINS`` nor ``NOT_FULLGRAPH``); several modules share
one chain to keep the number of compilations, which dominate this file's run time, low. Each
chain runs its optimizer eagerly and compiled (``fullgraph=True``, inductor) on identical
parameters and gradients and compares the parameters after every step (rtol 1e-5, float32).
The modules that cannot be captured in one graph are in ``NOT_FULLGRAPH`` with the reason
(docs/guide/compile.md lists them too): the step guards (and ``nonfinite="skip"``/``"raise"``)
stop a ``fullgraph=True`` compilation with a message that says what to do and match eager with
``fullgraph=False``; ``Wrap`` and ``Multistep(steps > 1)`` fail to trace.

Recompiles: state is created on the first step (one graph), Python-int step counters are
specialised on the second and dynamic from the third; modules with phases (warm-up, cycles)
add a graph per phase. After ``WARMUP`` steps no chain may recompile (``error_on_recompile``).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

import torchzero as tz
from conftest import set_grads
from registry import CASES

SHAPES = [(4, 3), (3,), (2, 3, 2)]
WARMUP = 5  # steps after which a chain must not recompile
STEPS = 8  # steps in all
RTOL, ATOL = 1e-5, 1e-6


def _is_matrix(p: torch.Tensor) -> bool:
    return p.ndim >= 2


def _spike_clip_source() -> list[Any]:
    adam = tz.m.Adam()
    return [tz.m.SpikeClip(theta=2.0, warmup=1, source=adam), adam]


# name -> (modules, Modular kwargs, the most graphs the chain may compile[, steps before no recompile])
CHAINS: dict[str, tuple[Any, ...]] = {
    # the fused-path chains, with the default fused=None (the compiled step traces the general path)
    "ClipNorm-global+Adam+LR": (lambda: [tz.m.ClipNorm(1.0, dim="global"), tz.m.Adam(), tz.m.LR(1e-3)], {}, 3),
    "Adam+LR": (lambda: [tz.m.Adam(), tz.m.LR(1e-3)], {}, 3),
    "Adam+WeightDecay+LR": (lambda: [tz.m.Adam(), tz.m.WeightDecay(0.01), tz.m.LR(1e-3)], {}, 3),
    "clipping": (
        lambda: [
            tz.m.ClipValue(0.5, target="grad"),
            tz.m.ClipNorm(0.5),
            tz.m.ClipNorm(0.5, ord="linf", dim=0, inverse_dims=True),
            tz.m.Centralize(dim=0, inverse_dims=True),
            tz.m.Centralize(dim="global"),
            tz.m.ClipNormByEMA(),
            tz.m.ClipNormByEMA(0.9, tensorwise=False, ema_init="update", inner=tz.m.Adam()),
            tz.m.ClipValueByEMA(ema_init="update", ema_tfm=tz.m.LR(2.0)),
            tz.m.ClipValueGrowth(add=0.1),
            tz.m.ClipNormGrowth(),
            tz.m.ClipNormGrowth(add=0.5, mul=None, parameterwise=False),
            tz.m.Normalize(),
            tz.m.Normalize(2.0, ord="mad", dim="global"),
            tz.m.NormalizeByEMA(max_ema_growth=None),
            tz.m.LR(0.1),
        ],
        {},
        3,
    ),
    "adaptive-clipping": (
        lambda: [
            tz.m.AGC(),
            tz.m.AGC(clipping=0.1, dim="global", target="grad"),
            tz.m.AutoClip(percentile=50, history=2),
            tz.m.ZClip(warmup_steps=2),
            tz.m.ZClip(warmup_steps=1, mode="percentile", max_grad_norm=None, z_thresh=0.5),
            tz.m.ZClip(0.5, 0.1, None, warmup_steps=2, clip_option="mean", skip_update_on_spike=True),
            tz.m.SpikeClip(theta=2.0, warmup=1),
            *_spike_clip_source(),
            tz.m.LR(1e-2),
        ],
        {},
        5,
    ),
    "adaptive": (
        lambda: [
            tz.m.Adam(amsgrad=True, pow=3, inner=tz.m.ClipNorm(1.0)),
            tz.m.RMSprop(0.9, 1e-6, debiased=True, amsgrad=True, pow=3, inner=tz.m.ClipNorm(1.0)),
            tz.m.RMSprop(centered=True, amsgrad=True),
            tz.m.Adagrad(lr_decay=0.1, initial_accumulator_value=0.5, eps=1e-6, alpha=0.5),
            tz.m.Adagrad(pow=3, use_sqrt=False, divide=True, beta=0.9, decay=0.01, initial_accumulator_value=1.0, inner=tz.m.LR(0.5)),
            tz.m.Adan(),
            tz.m.Orthogonalize(),
            tz.m.Orthogonalize(3, adjust_lr=True, dual_norm_correction=True, method="svd"),
            tz.m.Rprop(1.5, 0.25, lb=0.01, ub=10, backtrack=False, alpha=0.5),
            tz.m.Rprop(),
            tz.m.Lion(),
            tz.m.Adadelta(0.95, 1e-5),
            tz.m.LR(1e-3),
        ],
        {},
        3,
    ),
    # in float32: with the default bfloat16 iteration the compiled step agrees with eager to
    # bfloat16 rounding only (inductor fuses the normalization in float32 before rounding)
    "Muon": (
        lambda: [tz.m.Muon(ns_dtype="float32"), tz.m.Orthogonalize(ns_dtype="float32", adjust_lr=True, adjust_lr_fn="match_rms_adamw"), tz.m.LR(1e-2)],
        {},
        3,
    ),
    "MARS": (
        lambda: [tz.m.MARSCorrection(0.9), tz.m.MARSCorrection(0.5, max_norm=0.5, tensorwise=False), tz.m.Adam(), tz.m.LR(1e-3)],
        {},
        3,
    ),
    "momentum": (
        lambda: [
            tz.m.EMA(0.8, dampening=0.3, debiased=True),
            tz.m.Cautious(mode="grad"),
            tz.m.HeavyBall(0.5, dampening=0.5, lerp=True),
            tz.m.Cautious(normalize=True),
            tz.m.NAG(0.95, dampening=0.1, lerp=True, target="grad"),
            tz.m.Cautious(),
            tz.m.EMA(lerp=False, ema_init="update"),
            tz.m.Cautious(mode="backtrack"),
            tz.m.Debias(beta1=0.9, beta2=0.999, alpha=2.0),
            tz.m.LR(1e-2),
        ],
        {},
        3,
    ),
    "ops": (
        lambda: [
            tz.m.Mul(0.5),
            tz.m.Div([tz.m.Abs(), tz.m.Add(1.0)]),
            tz.m.Add(0.1, alpha=2),
            tz.m.Sub(tz.m.Sign(), alpha=0.25),
            tz.m.Negate(),
            tz.m.Clip(min=tz.m.Mul(2.0), max=[tz.m.Abs(), tz.m.Mul(0.5)]),
            tz.m.Clip(-1.0, tz.m.ClipValueByEMA(ema_init="update")),
            tz.m.NanToNum(1.0, 2.0, -2.0),
            tz.m.Identity(),
            tz.m.Mul(tz.m.Adam()),
            tz.m.Add(tz.m.Adam(), alpha=0.5),
            tz.m.Graft(tz.m.Adam()),
            tz.m.Graft([tz.m.Grad(), tz.m.Adam()], tensorwise=False, ord="linf"),
            tz.m.Dropout(0.0),
            tz.m.Dropout(0.0, graft=True),
            tz.m.Sign(),
            tz.m.LR(1e-2),
        ],
        {},
        3,
    ),
    "step-size+weight-decay": (
        lambda: [
            tz.m.WeightDecay(0.1),
            tz.m.HeavyBall(),
            tz.m.StepSize(0.5, key="a"),
            tz.m.Adam(),
            tz.m.StepSize(2.0, key="b"),
            tz.m.WeightDecay(0.05, ord=1),
            tz.m.WeightDecay(0.05, ord=3),
            tz.m.DirectWeightDecay(0.01, ord=1.5),
            tz.m.Warmup(steps=3, start_lr=0.1, end_lr=1.0),
            tz.m.WarmupNormClip(steps=3, start_norm=0.01, end_norm=1.0),
            tz.m.LR(1e-2),
        ],
        {},
        4,
    ),
    # cycles of 2 steps everywhere, so the phases line up and the chain has few variants
    "control": (
        lambda: [
            tz.m.GradientAccumulation(2, mean=False, stop=False),
            tz.m.Split(_is_matrix, tz.m.Adam(), [tz.m.ClipNorm(0.5), tz.m.Adam(beta1=0.5)]),
            tz.m.Alternate(tz.m.Adam(), [tz.m.Sign(), tz.m.Mul(0.1)]),
            tz.m.Alternate(tz.m.HeavyBall(), tz.m.Identity(), steps=(1, 1)),
            tz.m.Multistep([tz.m.Adam(), tz.m.LR(0.1)], 1),
            tz.m.LR(1e-2),
        ],
        {},
        5,
    ),
    "conjugate-gradient": (
        lambda: [
            tz.m.PolakRibiere(),
            tz.m.FletcherReeves(reset_interval=2),
            tz.m.HestenesStiefel(),
            tz.m.DaiYuan(),
            tz.m.LiuStorey(powell_restart=0.1),
            tz.m.HagerZhang(),
            tz.m.Normalize(1.0),
            tz.m.LR(1e-2),
        ],
        {},
        4,
    ),
    # the modules after it run every other step, so their counters settle later
    "GradientAccumulation-stop": (lambda: [tz.m.GradientAccumulation(2), tz.m.Adam(), tz.m.LR(1e-2)], {}, 6, 6),
}

# tz.m classes that torch.compile(opt.step, fullgraph=True) cannot capture, and why
NOT_FULLGRAPH = {
    "SkipNonFinite": "decides on the host whether to skip the step (one host sync per step)",
    "SkipOnSpike": "decides on the host whether to skip the step (one host sync per step)",
    "Wrap": "runs a torch.optim optimizer, whose step contains a graph break and which is built on the first step",
    "Multistep": "with steps > 1 it evaluates the closure (a backward pass) inside the step; steps=1 compiles",
    "Backtracking": "a line search: evaluates the closure at trial points and tests each on the host",
    "StrongWolfe": "a line search: evaluates the closure at trial points and tests each on the host",
    "AdaptiveBacktracking": "a line search: evaluates the closure at trial points and tests each on the host",
    "LSR1": "decides on the host whether to keep each curvature pair (one host sync per step)",
    "LBFGS": "decides on the host whether to keep each curvature pair (one host sync per step)",
    "BFGS": "decides on the host whether to keep each curvature pair (one host sync per step)",
    "DFP": "decides on the host whether to keep each curvature pair (one host sync per step)",
    "SR1": "decides on the host whether to keep each curvature pair (one host sync per step)",
    "PolyakStepSize": "computes its step size on the host from the loss (one host sync per step)",
    "BarzilaiBorwein": "computes its step size on the host (one host sync per step)",
    "TerminateAfterNSteps": "a termination module decides on the host whether to end the optimization",
    "TerminateByGradientNorm": "a termination module decides on the host whether to end the optimization",
    "TerminateByUpdateNorm": "a termination module decides on the host whether to end the optimization",
    "TerminateOnNoImprovement": "a termination module decides on the host whether to end the optimization",
    "TerminateOnLossReached": "a termination module decides on the host whether to end the optimization",
    "TerminateAny": "a termination module decides on the host whether to end the optimization",
    "TerminateAll": "a termination module decides on the host whether to end the optimization",
    "Newton": "differentiates the loss of the closure again (Hessian-vector products) and tests on the host",
    "NewtonCG": "differentiates the loss of the closure again (Hessian-vector products) and tests on the host",
    "NewtonCGSteihaug": "a trust region: evaluates the closure at the trial point and decides on the host",
    "TrustRegion": "a trust region: evaluates the closure at the trial point and decides on the host",
    "DenseTrustRegion": "a trust region: evaluates the closure at the trial point and decides on the host",
    "Dogleg": "a trust region: evaluates the closure at the trial point and decides on the host",
    "LevenbergMarquardt": "a trust region: evaluates the closure at the trial point and decides on the host",
    "TrustCG": "a trust region: evaluates the closure at the trial point and decides on the host",
    "AdaHessian": "differentiates the loss of the closure again (Hessian-vector products)",
    "SophiaH": "differentiates the loss of the closure again (Hessian-vector products)",
    "CubicRegularization": "a trust region: evaluates the closure at the trial point and decides on the host",
    "NAdam": "reads its per-parameter step count and momentum product on the host (torch's single-tensor form)",
    "RAdam": "reads its per-parameter step count on the host to decide the rectification (torch's single-tensor form)",
    "Adamax": "reads its per-parameter step count on the host for the bias correction",
    "ASGD": "reads its step size and averaging weight (0-dim state tensors, as torch keeps them) on the host",
    "Prodigy": "reads its distance estimate's sums on the host (one d for all parameters)",
    "PSGDKron": "reads its step count on the host (the fitting schedule, the momentum warm-up) and seeds a generator per step",
    "Shampoo": "reads its step count on the host to recompute the roots every update_freq steps; eigh decompositions",
    "SOAP": "reads its step count on the host (the first step, the refreshes of its bases); eigh/QR decompositions",
    "AdEMAMix": "reads its per-parameter step count on the host (the warm-ups of alpha and beta3, the bias corrections)",
    "Adafactor": "reads the parameter's and the update's norms on the host (torch's relative step size and clipping)",
    "SAM": "evaluates the closure (the gradient at the perturbed point, a backward pass) inside the step",
    "ASAM": "evaluates the closure (the gradient at the perturbed point, a backward pass) inside the step",
    "ScheduleFree": "keeps its step count and averaging weights as Python numbers, as the schedulefree package does (a graph per step)",
    "GradientEstimator": "evaluates the closure (the loss at perturbed points) and computes on the host",
    "FDM": "evaluates the closure (the loss at perturbed points) and computes on the host",
    "RandomizedFDM": "evaluates the closure (the loss at perturbed points) and computes on the host",
    "SPSA": "evaluates the closure (the loss at perturbed points) and computes on the host",
    "RDSA": "evaluates the closure (the loss at perturbed points) and computes on the host",
    "GaussianSmoothing": "evaluates the closure (the loss at perturbed points) and computes on the host",
    "MeZO": "evaluates the closure (the loss at perturbed points) and computes on the host",
    "ForwardGradient": "evaluates the closure in forward mode (dual tensors) and computes on the host",
    "GaussNewton": "evaluates the closure's residuals and their Jacobian; the solve decides on the host",
    "SumOfSquares": "the closure returns residuals: the step evaluates them and their gradient",
}


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def _params(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g).requires_grad_() for s in SHAPES]


def _graphs() -> int:
    return counters["stats"]["unique_graphs"]


def _compare_chain(
    make: Callable[[], list[Any]],
    kwargs: dict[str, Any],
    max_graphs: int,
    fullgraph: bool = True,
    bad_steps: tuple[int, ...] = (),
    warmup: int = WARMUP,
    steps: int = STEPS,
) -> None:
    """Eager and compiled optimizers on identical parameters and gradients: equal after every
    step; at most ``max_graphs`` graphs, none compiled after ``warmup`` steps."""
    kwargs = {"nonfinite": "propagate", **kwargs}
    eager_p, comp_p = _params(), _params()
    eager = tz.Modular(eager_p, *make(), **kwargs)
    opt = tz.Modular(comp_p, *make(), **kwargs)
    step = torch.compile(opt.step, fullgraph=fullgraph)
    for s in range(steps):
        for ps in (eager_p, comp_p):
            set_grads(ps, s)
            if s in bad_steps:
                ps[0].grad[0, 0] = math.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            eager.step()
            if s < warmup:
                step()
            else:
                with torch._dynamo.config.patch(error_on_recompile=True):
                    step()
        for i, (a, b) in enumerate(zip(eager_p, comp_p)):
            torch.testing.assert_close(b, a, rtol=RTOL, atol=ATOL, msg=lambda m: f"step {s}, parameter {i}: {m}")
    assert _graphs() <= max_graphs, f"{_graphs()} graphs compiled, expected at most {max_graphs}"
    assert opt.skipped_steps == eager.skipped_steps


@pytest.mark.parametrize("name", list(CHAINS))
def test_compiled_step_matches_eager(name: str) -> None:
    make, kwargs, max_graphs, *warmup = CHAINS[name]
    _compare_chain(make, kwargs, max_graphs, warmup=warmup[0] if warmup else WARMUP, steps=STEPS + (warmup[0] - WARMUP if warmup else 0))


def test_chains_cover_every_compilable_module() -> None:
    """Every tz.m module with a registry case is in a compiled chain, or listed as not compilable."""
    in_chains: set[str] = set()

    def collect(m: Any) -> None:
        in_chains.add(type(m).__name__)
        for child in m.children.values():
            collect(child)

    for make, *_ in CHAINS.values():
        for m in make():
            collect(m)
    in_chains.add("Split")  # also by name, below
    registry = {name for c in CASES for name in c.covers}
    missing = sorted(registry - in_chains - set(NOT_FULLGRAPH))
    assert not missing, f"modules neither in a compiled chain of tests/test_compile.py nor in NOT_FULLGRAPH: {missing}"


def test_split_by_name_compiles() -> None:
    """Name patterns are matched when Modular binds the param groups, not in the compiled step."""
    torch.manual_seed(0)
    models = [torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.Linear(3, 2)) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    opts = [
        tz.Modular(m.named_parameters(), tz.m.Split("*.bias", tz.m.Adam(), tz.m.HeavyBall()), tz.m.LR(1e-2), nonfinite="propagate")
        for m in models
    ]
    step = torch.compile(opts[1].step, fullgraph=True)
    for s in range(4):
        for m in models:
            set_grads(list(m.parameters()), s)
        opts[0].step()
        step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(b, a, rtol=RTOL, atol=ATOL)
    assert _graphs() <= 3


def test_lr_scheduler_does_not_recompile() -> None:
    """A scheduler changes group["lr"] (a Python float, dynamic under dynamo): no recompile per step.

    The scheduler is created before compiling, so ``opt.step`` is already its wrapper; that
    wrapper is not traced (it is in torch's skip list), so ``fullgraph`` must be False, but
    ``Modular.step`` itself is still one graph.
    """
    ps = [_params(), _params()]
    opts = [tz.Modular(p, tz.m.Adam(), tz.m.LR(1e-2), nonfinite="propagate") for p in ps]
    scheds = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=4) for o in opts]
    step = torch.compile(opts[1].step)
    for s in range(8):
        for p in ps:
            set_grads(p, s)
        opts[0].step()
        if s < 3:
            step()
        else:
            with torch._dynamo.config.patch(error_on_recompile=True):
                step()
        for sch in scheds:
            sch.step()
    for a, b in zip(*ps):
        torch.testing.assert_close(b, a, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------------- host syncs
def _fullgraph_error(opt: tz.Modular) -> str:
    step = torch.compile(opt.step, fullgraph=True, backend="eager")  # fails while tracing: no backend needed
    set_grads([p for g in opt.param_groups for p in g["params"]], 0)
    with pytest.raises(torch._dynamo.exc.Unsupported) as info:
        step()
    return str(info.value)


@pytest.mark.parametrize("policy", ["skip", "raise"])
def test_fullgraph_with_host_sync_policy_says_what_to_do(policy: str) -> None:
    opt = tz.Modular(_params(), tz.m.Adam(), tz.m.LR(1e-3), nonfinite=policy)
    msg = _fullgraph_error(opt)
    assert "nonfinite='propagate'" in msg and "fullgraph" in msg, msg


@pytest.mark.parametrize("guard", ["SkipNonFinite", "SkipOnSpike"])
def test_fullgraph_with_step_guard_says_what_to_do(guard: str) -> None:
    opt = tz.Modular(_params(), getattr(tz.m, guard)(), tz.m.Adam(), tz.m.LR(1e-3), nonfinite="propagate")
    msg = _fullgraph_error(opt)
    assert f"{guard} decides on the host" in msg and "fullgraph=True" in msg, msg


@pytest.mark.parametrize(
    "make",
    [lambda: tz.m.Wrap(torch.optim.Adam, lr=0.1), lambda: tz.m.Multistep([tz.m.Adam(), tz.m.LR(0.1)], 3)],
    ids=["Wrap", "Multistep-3"],
)
def test_not_fullgraph_modules_fail_to_trace(make: Callable[[], Any]) -> None:
    params = _params()
    opt = tz.Modular(params, make(), tz.m.LR(1e-2), nonfinite="propagate")
    step = torch.compile(opt.step, fullgraph=True, backend="eager")

    def closure(backward: bool = True) -> torch.Tensor:
        loss = sum((p * p).sum() for p in params)
        if backward:
            opt.zero_grad()
            loss.backward()
        return loss

    set_grads(params, 0)
    with pytest.raises(torch._dynamo.exc.Unsupported):
        step(closure)


# Without fullgraph the step compiles in pieces around the host sync; the pieces compile as
# their code paths are first taken, so these tests check the total instead of a warm-up.
def test_skip_policy_compiles_without_fullgraph() -> None:
    """nonfinite="skip" (the default) under torch.compile(opt.step): a graph break at the check, same results."""
    make = lambda: [tz.m.ClipNorm(1.0, dim="global"), tz.m.Adam(), tz.m.LR(1e-2)]  # noqa: E731
    _compare_chain(make, {"nonfinite": "skip"}, max_graphs=12, fullgraph=False, bad_steps=(2,), warmup=STEPS)


def test_step_guards_compile_without_fullgraph() -> None:
    """The guards' host sync is a graph break too; the guard still skips the bad step."""
    make = lambda: [tz.m.SkipNonFinite(), tz.m.SkipOnSpike(warmup=2), tz.m.Adam(), tz.m.LR(1e-2)]  # noqa: E731
    _compare_chain(make, {}, max_graphs=24, fullgraph=False, bad_steps=(3,), warmup=STEPS)
