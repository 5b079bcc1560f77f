"""Registry entries for the classical methods: line searches (Backtracking, StrongWolfe) and
quasi-Newton (LBFGS)."""
from __future__ import annotations

import math

import torchzero as tz

from . import BadArg, Case

NAN, INF = math.nan, math.inf

CASES = [
    Case("TerminateAfterNSteps", lambda: [tz.m.TerminateAfterNSteps(4), tz.m.Adam()], ("TerminateAfterNSteps",)),
    Case("TerminateByGradientNorm", lambda: [tz.m.TerminateByGradientNorm(1e-12), tz.m.Adam()], ("TerminateByGradientNorm",)),
    Case("TerminateByUpdateNorm", lambda: [tz.m.TerminateByUpdateNorm(1e-12, ord="linf"), tz.m.Adam()], ("TerminateByUpdateNorm",)),
    Case("TerminateOnNoImprovement", lambda: [tz.m.TerminateOnNoImprovement(n=3), tz.m.Adam()], ("TerminateOnNoImprovement",), needs_closure=True),
    Case("TerminateOnLossReached", lambda: [tz.m.TerminateOnLossReached(-1.0), tz.m.Adam()], ("TerminateOnLossReached",), needs_closure=True),
    Case(
        "TerminateAny-All",
        lambda: [
            tz.m.TerminateAny(tz.m.TerminateAfterNSteps(50), tz.m.TerminateAll(tz.m.TerminateByGradientNorm(1e-12), tz.m.TerminateAfterNSteps(2))),
            tz.m.Adam(),
        ],
        ("TerminateAny", "TerminateAll"),
    ),
    Case("LBFGS", lambda: tz.m.LBFGS(), ("LBFGS",)),
    Case("LBFGS-history2-reset", lambda: tz.m.LBFGS(history_size=2, tol_reset=True), ("LBFGS",)),
    Case("LBFGS-inner-Adam", lambda: tz.m.LBFGS(inner=tz.m.Adam()), ("LBFGS",)),
    Case("LBFGS-update_freq2", lambda: tz.m.LBFGS(update_freq=2), ("LBFGS",)),
    Case("LBFGS-damping", lambda: tz.m.LBFGS(damping=True), ("LBFGS",)),
    Case("LBFGS-first_step-torch", lambda: tz.m.LBFGS(first_step="torch"), ("LBFGS",)),
    Case("Backtracking", lambda: tz.m.Backtracking(), ("Backtracking",), needs_closure=True, lr=1.0),
    Case("Backtracking-decrease", lambda: tz.m.Backtracking(init=2.0, condition="decrease", adaptive=False), ("Backtracking",), needs_closure=True, lr=1.0),
    Case("StrongWolfe", lambda: tz.m.StrongWolfe(), ("StrongWolfe",), needs_closure=True, lr=1.0),
    Case("LBFGS-StrongWolfe", lambda: [tz.m.LBFGS(), tz.m.StrongWolfe()], ("LBFGS", "StrongWolfe"), needs_closure=True, lr=1.0),
    Case("BarzilaiBorwein", lambda: tz.m.BarzilaiBorwein(), ("BarzilaiBorwein",)),
    Case("BarzilaiBorwein-short-update", lambda: tz.m.BarzilaiBorwein(type="short", use_grad=False, scale_first=False), ("BarzilaiBorwein",)),
    Case("PolyakStepSize", lambda: tz.m.PolyakStepSize(f_star=-1.0, max=1.0), ("PolyakStepSize",), needs_closure=True),
    Case("PolyakStepSize-estimated", lambda: tz.m.PolyakStepSize(f_star=None, use_grad=False), ("PolyakStepSize",), needs_closure=True),
    Case("LSR1", lambda: tz.m.LSR1(), ("LSR1",)),
    Case("LSR1-StrongWolfe", lambda: [tz.m.LSR1(history_size=3), tz.m.StrongWolfe(plus_minus=True)], ("LSR1",), needs_closure=True, lr=1.0),
    Case("AdaptiveBacktracking", lambda: [tz.m.Adam(), tz.m.AdaptiveBacktracking()], ("AdaptiveBacktracking",), needs_closure=True, lr=1.0),
    Case("AdaptiveBacktracking-target2", lambda: tz.m.AdaptiveBacktracking(target_iters=2, scale_beta=0.5), ("AdaptiveBacktracking",), needs_closure=True, lr=1.0),
    Case("BFGS", lambda: tz.m.BFGS(), ("BFGS",)),
    Case("BFGS-damping-reset", lambda: tz.m.BFGS(damping=True, reset_interval=3), ("BFGS",)),
    Case("DFP", lambda: tz.m.DFP(init_scale=0.5), ("DFP",)),
    Case("SR1", lambda: tz.m.SR1(), ("SR1",)),
    Case("BFGS-StrongWolfe", lambda: [tz.m.BFGS(), tz.m.StrongWolfe()], ("BFGS", "StrongWolfe"), needs_closure=True, lr=1.0),
    Case("Newton", lambda: tz.m.Newton(damping=1e-3), ("Newton",), stateful=False, needs_closure=True, lr=0.5),
    Case("Newton-saddle-free-Backtracking", lambda: [tz.m.Newton(eigval_fn=lambda v: v.abs() + 1e-3), tz.m.Backtracking()], ("Newton", "Backtracking"), stateful=False, needs_closure=True, lr=1.0),
    Case("Newton-central", lambda: tz.m.Newton(damping=1e-2, hessian_method="central", vectorize=False), ("Newton",), stateful=False, needs_closure=True, lr=0.5),
    Case("NewtonCG", lambda: tz.m.NewtonCG(reg=1e-3), ("NewtonCG",), needs_closure=True, lr=0.5),
    Case("NewtonCG-StrongWolfe", lambda: [tz.m.NewtonCG(), tz.m.StrongWolfe()], ("NewtonCG", "StrongWolfe"), needs_closure=True, lr=1.0),
    Case("NewtonCG-central-warm-sqrt", lambda: tz.m.NewtonCG(hvp_method="central", warm_start=True, forcing="sqrt", maxiter=5, reg=1e-3), ("NewtonCG",), needs_closure=True, lr=0.5),
    Case("NewtonCGSteihaug", lambda: tz.m.NewtonCGSteihaug(), ("NewtonCGSteihaug", "TrustRegion"), needs_closure=True, lr=1.0),
    Case("NewtonCGSteihaug-central", lambda: tz.m.NewtonCGSteihaug(hvp_method="central", init=0.1, eta=0.0, nplus=3.0, maxiter=4), ("NewtonCGSteihaug",), needs_closure=True, lr=1.0),
    Case("Dogleg", lambda: tz.m.Dogleg(), ("Dogleg", "DenseTrustRegion"), needs_closure=True, lr=1.0),
    Case("Dogleg-BFGS", lambda: tz.m.Dogleg(tz.m.BFGS(), init=0.1), ("Dogleg",), needs_closure=True, lr=1.0),
    Case("LevenbergMarquardt", lambda: tz.m.LevenbergMarquardt(eta=0.0, nplus=3.0), ("LevenbergMarquardt",), needs_closure=True, lr=1.0),
    Case("AdaHessian", lambda: tz.m.AdaHessian(), ("AdaHessian",), needs_closure=True, lr=0.05),
    Case("AdaHessian-freq2-power05", lambda: tz.m.AdaHessian(update_freq=2, hessian_power=0.5, n_samples=2, seed=3), ("AdaHessian",), needs_closure=True, lr=0.05),
    Case("SophiaH", lambda: tz.m.SophiaH(update_freq=2), ("SophiaH",), needs_closure=True, lr=0.01),
    Case("CubicRegularization", lambda: tz.m.CubicRegularization(), ("CubicRegularization",), needs_closure=True, lr=1.0),
    Case("TrustCG-SR1", lambda: tz.m.TrustCG(tz.m.SR1(), init=0.1, max_attempts=3), ("TrustCG",), needs_closure=True, lr=1.0),
    Case("NewtonCG-forward-fixed", lambda: tz.m.NewtonCG(hvp_method="forward", forcing="fixed", tol=1e-2, reg=1e-3), ("NewtonCG",), needs_closure=True, lr=0.5),
    *[
        Case(name, (lambda name=name: getattr(tz.m, name)()), (name,))
        for name in ("PolakRibiere", "FletcherReeves", "HestenesStiefel", "DaiYuan", "LiuStorey", "HagerZhang")
    ],
    Case("PolakRibiere-auto-reset-powell", lambda: tz.m.PolakRibiere(reset_interval="auto", powell_restart=0.1), ("PolakRibiere",)),
    Case(
        "HagerZhang-StrongWolfe",
        lambda: [tz.m.HagerZhang(), tz.m.StrongWolfe(c2=0.1, a_init="first-order")],
        ("HagerZhang", "StrongWolfe"),
        needs_closure=True,
        lr=1.0,
    ),
    Case(
        "StrongWolfe-first-order-bisection",
        lambda: tz.m.StrongWolfe(c2=0.1, a_init="first-order", interpolation="bisection", fallback=True),
        ("StrongWolfe",),
        needs_closure=True,
        lr=1.0,
    ),
]

BAD_ARGS = [
    *[
        BadArg(f"LBFGS-history_size={v!r}", lambda v=v: tz.m.LBFGS(history_size=v), (ValueError, TypeError), "LBFGS.*history_size")
        for v in [0, -1, 2.5, None, "10"]
    ],
    *[BadArg(f"LBFGS-tol={v!r}", lambda v=v: tz.m.LBFGS(tol=v), (ValueError, TypeError), "LBFGS.*tol") for v in [-1.0, NAN, "x"]],
    *[BadArg(f"Newton-damping={v!r}", lambda v=v: tz.m.Newton(damping=v), (ValueError, TypeError), "Newton.*damping") for v in [-1.0, NAN, "x"]],
    *[BadArg(f"Newton-hessian_method={v!r}", lambda v=v: tz.m.Newton(hessian_method=v), (ValueError, TypeError), "Newton.*hessian_method") for v in ["forward", None]],
    BadArg("Newton-eigval_fn=1", lambda: tz.m.Newton(eigval_fn=1), TypeError, "Newton.*eigval_fn"),
    *[BadArg(f"NewtonCG-maxiter={v!r}", lambda v=v: tz.m.NewtonCG(maxiter=v), (ValueError, TypeError), "NewtonCG.*maxiter") for v in [0, 2.5, "3"]],
    *[BadArg(f"NewtonCG-hvp_method={v!r}", lambda v=v: tz.m.NewtonCG(hvp_method=v), (ValueError, TypeError), "NewtonCG.*hvp_method") for v in ["fd", None]],
    *[BadArg(f"NewtonCG-forcing={v!r}", lambda v=v: tz.m.NewtonCG(forcing=v), (ValueError, TypeError), "NewtonCG.*forcing") for v in ["ew", 0.5]],
    *[BadArg(f"NewtonCG-h={v!r}", lambda v=v: tz.m.NewtonCG(h=v), (ValueError, TypeError), "NewtonCG.*h") for v in [0.0, -1e-3, NAN]],
    *[BadArg(f"NewtonCGSteihaug-eta={v!r}", lambda v=v: tz.m.NewtonCGSteihaug(eta=v), (ValueError, TypeError), "NewtonCGSteihaug.*eta") for v in [0.25, -0.1, NAN]],
    *[BadArg(f"NewtonCGSteihaug-nminus={v!r}", lambda v=v: tz.m.NewtonCGSteihaug(nminus=v), (ValueError, TypeError), "NewtonCGSteihaug.*nminus") for v in [0.0, 1.0, 2.0]],
    *[BadArg(f"NewtonCGSteihaug-nplus={v!r}", lambda v=v: tz.m.NewtonCGSteihaug(nplus=v), (ValueError, TypeError), "NewtonCGSteihaug.*nplus") for v in [0.5, INF]],
    *[BadArg(f"NewtonCGSteihaug-init={v!r}", lambda v=v: tz.m.NewtonCGSteihaug(init=v), (ValueError, TypeError), "NewtonCGSteihaug.*init") for v in [0.0, -1.0, "1"]],
    *[BadArg(f"NewtonCGSteihaug-max_attempts={v!r}", lambda v=v: tz.m.NewtonCGSteihaug(max_attempts=v), (ValueError, TypeError), "NewtonCGSteihaug.*max_attempts") for v in [0, 1.5]],
    *[BadArg(f"Dogleg-eta={v!r}", lambda v=v: tz.m.Dogleg(eta=v), (ValueError, TypeError), "Dogleg.*eta") for v in [0.3, -1.0]],
    *[BadArg(f"LevenbergMarquardt-max_radius={v!r}", lambda v=v: tz.m.LevenbergMarquardt(max_radius=v), (ValueError, TypeError), "LevenbergMarquardt.*max_radius") for v in [0.0, NAN]],
    *[BadArg(f"CubicRegularization-nminus={v!r}", lambda v=v: tz.m.CubicRegularization(nminus=v), (ValueError, TypeError), "CubicRegularization.*nminus") for v in [1.0, 0.0]],
    *[BadArg(f"AdaHessian-hessian_power={v!r}", lambda v=v: tz.m.AdaHessian(hessian_power=v), (ValueError, TypeError), "AdaHessian.*hessian_power") for v in [1.5, -0.1]],
    *[BadArg(f"AdaHessian-beta1={v!r}", lambda v=v: tz.m.AdaHessian(beta1=v), (ValueError, TypeError), "AdaHessian.*beta1") for v in [1.0, -0.1]],
    *[BadArg(f"SophiaH-gamma={v!r}", lambda v=v: tz.m.SophiaH(gamma=v), (ValueError, TypeError), "SophiaH.*gamma") for v in [0.0, NAN]],
    *[BadArg(f"SophiaH-update_freq={v!r}", lambda v=v: tz.m.SophiaH(update_freq=v), (ValueError, TypeError), "SophiaH.*update_freq") for v in [0, 2.5]],
    BadArg("TrustCG-hess_module=Adam", lambda: tz.m.TrustCG(tz.m.Adam()), TypeError, "TrustCG.*hess_module"),
    *[BadArg(f"LBFGS-first_step={v!r}", lambda v=v: tz.m.LBFGS(first_step=v), (ValueError, TypeError), "LBFGS.*first_step") for v in ["l1", None, 1]],
    *[BadArg(f"LBFGS-update_freq={v!r}", lambda v=v: tz.m.LBFGS(update_freq=v), (ValueError, TypeError), "LBFGS.*update_freq") for v in [0, 1.5]],
    *[
        BadArg(f"Backtracking-beta={v!r}", lambda v=v: tz.m.Backtracking(beta=v), (ValueError, TypeError), "Backtracking.*beta")
        for v in [0.0, 1.0, -0.5, NAN, None]
    ],
    *[BadArg(f"Backtracking-init={v!r}", lambda v=v: tz.m.Backtracking(init=v), (ValueError, TypeError), "Backtracking.*init") for v in [0.0, -1.0, INF]],
    BadArg("Backtracking-condition=wolfe", lambda: tz.m.Backtracking(condition="wolfe"), ValueError, "Backtracking.*condition"),
    BadArg("Backtracking-maxiter=0", lambda: tz.m.Backtracking(maxiter=0), ValueError, "Backtracking.*maxiter"),
    *[BadArg(f"StrongWolfe-c1={v!r}", lambda v=v: tz.m.StrongWolfe(c1=v), (ValueError, TypeError), "StrongWolfe.*c1") for v in [0.0, 1.0, NAN]],
    BadArg("StrongWolfe-c2<c1", lambda: tz.m.StrongWolfe(c1=0.5, c2=0.1), ValueError, "StrongWolfe.*c2"),
    BadArg("StrongWolfe-a_init=cubic", lambda: tz.m.StrongWolfe(a_init="cubic"), ValueError, "StrongWolfe.*a_init"),
    BadArg("StrongWolfe-interpolation=polynomial", lambda: tz.m.StrongWolfe(interpolation="polynomial"), ValueError, "StrongWolfe.*interpolation"),
    BadArg("StrongWolfe-maxiter=0", lambda: tz.m.StrongWolfe(maxiter=0), ValueError, "StrongWolfe.*maxiter"),
    BadArg("StrongWolfe-maxeval=0", lambda: tz.m.StrongWolfe(maxeval=0), ValueError, "StrongWolfe.*maxeval"),
    *[BadArg(f"BFGS-init_scale={v!r}", lambda v=v: tz.m.BFGS(init_scale=v), (ValueError, TypeError), "BFGS.*init_scale") for v in [0.0, -1.0, "eye", NAN]],
    *[BadArg(f"DFP-tol={v!r}", lambda v=v: tz.m.DFP(tol=v), (ValueError, TypeError), "DFP.*tol") for v in [-1.0, None, INF]],
    BadArg("SR1-skip_r=-1", lambda: tz.m.SR1(skip_r=-1.0), ValueError, "SR1.*skip_r"),
    BadArg("BFGS-reset_interval=0", lambda: tz.m.BFGS(reset_interval=0), ValueError, "BFGS.*reset_interval"),
    BadArg("BFGS-damping=1", lambda: tz.m.BFGS(damping=1), TypeError, "BFGS.*damping"),
    *[
        BadArg(f"PolakRibiere-reset_interval={v!r}", lambda v=v: tz.m.PolakRibiere(reset_interval=v), (ValueError, TypeError), "PolakRibiere.*reset_interval")
        for v in [0, "always", 2.5]
    ],
    BadArg("FletcherReeves-powell_restart=0", lambda: tz.m.FletcherReeves(powell_restart=0.0), ValueError, "FletcherReeves.*powell_restart"),
    *[BadArg(f"TerminateAfterNSteps-steps={v!r}", lambda v=v: tz.m.TerminateAfterNSteps(v), (ValueError, TypeError), "TerminateAfterNSteps.*steps") for v in [-1, 2.5, None]],
    BadArg("TerminateByGradientNorm-tol=-1", lambda: tz.m.TerminateByGradientNorm(-1.0), ValueError, "TerminateByGradientNorm.*tol"),
    BadArg("TerminateByUpdateNorm-ord=x", lambda: tz.m.TerminateByUpdateNorm(ord="x"), ValueError, "TerminateByUpdateNorm.*ord"),
    BadArg("TerminateOnNoImprovement-n=0", lambda: tz.m.TerminateOnNoImprovement(n=0), ValueError, "TerminateOnNoImprovement.*n"),
    BadArg("TerminateOnLossReached-value=nan", lambda: tz.m.TerminateOnLossReached(NAN), ValueError, "TerminateOnLossReached.*value"),
    BadArg("TerminateAny-empty", lambda: tz.m.TerminateAny(), TypeError, "TerminateAny: give one or more termination modules"),
    BadArg("TerminateAll-not-a-criterion", lambda: tz.m.TerminateAll(tz.m.Adam()), TypeError, "TerminateAll: give one or more termination modules"),
    BadArg("BarzilaiBorwein-type=mid", lambda: tz.m.BarzilaiBorwein(type="mid"), ValueError, "BarzilaiBorwein.*type"),
    BadArg("BarzilaiBorwein-fallback=0", lambda: tz.m.BarzilaiBorwein(fallback=0.0), ValueError, "BarzilaiBorwein.*fallback"),
    BadArg("PolyakStepSize-y=0", lambda: tz.m.PolyakStepSize(y=0.0), ValueError, "PolyakStepSize.*y"),
    BadArg("PolyakStepSize-y_decay=1", lambda: tz.m.PolyakStepSize(y_decay=1.0), ValueError, "PolyakStepSize.*y_decay"),
    BadArg("PolyakStepSize-f_star=nan", lambda: tz.m.PolyakStepSize(f_star=NAN), ValueError, "PolyakStepSize.*f_star"),
    BadArg("LSR1-history_size=0", lambda: tz.m.LSR1(history_size=0), ValueError, "LSR1.*history_size"),
    BadArg("AdaptiveBacktracking-nplus=0.5", lambda: tz.m.AdaptiveBacktracking(nplus=0.5), ValueError, "AdaptiveBacktracking.*nplus"),
    BadArg("AdaptiveBacktracking-scale_beta=1", lambda: tz.m.AdaptiveBacktracking(scale_beta=1.0), ValueError, "AdaptiveBacktracking.*scale_beta"),
    BadArg("AdaptiveBacktracking-target_iters=-1", lambda: tz.m.AdaptiveBacktracking(target_iters=-1), ValueError, "AdaptiveBacktracking.*target_iters"),
    BadArg("HagerZhang-clip_beta=str", lambda: tz.m.HagerZhang(clip_beta="yes"), TypeError, "HagerZhang.*clip_beta"),
]
