"""Registry entries for the gradient estimators (zeroth order) and the least-squares modules."""
from __future__ import annotations

import math

import torchzero as tz

from . import BadArg, Case

NAN, INF = math.nan, math.inf

CASES = [
    Case("FDM", lambda: tz.m.FDM(), ("FDM", "GradientEstimator"), stateful=False, needs_closure=True, lr=0.1),
    Case("FDM-forward2", lambda: tz.m.FDM(h=1e-2, formula="forward2"), ("FDM",), stateful=False, needs_closure=True, lr=0.1),
    Case("FDM-backward", lambda: tz.m.FDM(formula="backward"), ("FDM",), stateful=False, needs_closure=True, lr=0.1),
    Case("RandomizedFDM-sphere-forward", lambda: tz.m.RandomizedFDM(n_samples=3, formula="forward", distribution="sphere", seed=1), ("RandomizedFDM",), stateful=False, needs_closure=True, lr=0.01),
    Case("SPSA", lambda: tz.m.SPSA(seed=0), ("SPSA",), stateful=False, needs_closure=True, lr=0.01),
    Case("SPSA-Adam", lambda: [tz.m.SPSA(), tz.m.Adam()], ("SPSA", "Adam"), needs_closure=True, lr=0.01),
    Case("RDSA-backward", lambda: tz.m.RDSA(n_samples=2, formula="backward", seed=5), ("RDSA",), stateful=False, needs_closure=True, lr=0.01),
    Case("GaussianSmoothing", lambda: tz.m.GaussianSmoothing(n_samples=8, seed=2), ("GaussianSmoothing",), stateful=False, needs_closure=True, lr=0.01),
    Case("MeZO", lambda: tz.m.MeZO(seed=3), ("MeZO",), stateful=False, needs_closure=True, lr=0.01),
    Case("MeZO-gaussian-2", lambda: tz.m.MeZO(n_samples=2, distribution="gaussian"), ("MeZO",), stateful=False, needs_closure=True, lr=0.01),
    Case("ForwardGradient", lambda: tz.m.ForwardGradient(seed=4), ("ForwardGradient",), stateful=False, needs_closure=True, lr=0.01),
    Case("ForwardGradient-central-rademacher", lambda: tz.m.ForwardGradient(n_samples=2, distribution="rademacher", jvp_method="central"), ("ForwardGradient",), stateful=False, needs_closure=True, lr=0.01),
    Case("ForwardGradient-forward", lambda: tz.m.ForwardGradient(jvp_method="forward", seed=1), ("ForwardGradient",), stateful=False, needs_closure=True, lr=0.01),
    Case("GaussNewton-Backtracking", lambda: [tz.m.GaussNewton(), tz.m.Backtracking()], ("GaussNewton", "Backtracking"), stateful=False, needs_closure=True, lr=1.0),
    Case("GaussNewton-matrix_free", lambda: tz.m.GaussNewton(reg=1e-3, matrix_free=True, maxiter=5), ("GaussNewton",), stateful=False, needs_closure=True, lr=0.5),
    Case("LevenbergMarquardt-GaussNewton", lambda: tz.m.LevenbergMarquardt(tz.m.GaussNewton()), ("LevenbergMarquardt", "GaussNewton"), needs_closure=True, lr=1.0),
    Case("LevenbergMarquardt-more", lambda: tz.m.LevenbergMarquardt(tz.m.GaussNewton(reg=0.0), more=True), ("LevenbergMarquardt",), needs_closure=True, lr=1.0),
    Case("SumOfSquares-LBFGS", lambda: [tz.m.SumOfSquares(), tz.m.LBFGS()], ("SumOfSquares", "LBFGS"), needs_closure=True, lr=0.1),
]

BAD_ARGS = [
    *[BadArg(f"FDM-h={v!r}", lambda v=v: tz.m.FDM(h=v), (ValueError, TypeError), "FDM.*h") for v in [0.0, -1e-3, NAN, INF, "1e-3"]],
    *[BadArg(f"FDM-formula={v!r}", lambda v=v: tz.m.FDM(formula=v), (ValueError, TypeError), "FDM.*formula") for v in ["forward3", None]],
    *[BadArg(f"RandomizedFDM-n_samples={v!r}", lambda v=v: tz.m.RandomizedFDM(n_samples=v), (ValueError, TypeError), "RandomizedFDM.*n_samples") for v in [0, 1.5, None]],
    *[BadArg(f"SPSA-distribution={v!r}", lambda v=v: tz.m.SPSA(distribution=v), (ValueError, TypeError), "SPSA.*distribution") for v in ["normal", 1]],
    *[BadArg(f"RDSA-seed={v!r}", lambda v=v: tz.m.RDSA(seed=v), (ValueError, TypeError), "RDSA.*seed") for v in [-1, 1.5, "0"]],
    BadArg("GaussianSmoothing-h=0", lambda: tz.m.GaussianSmoothing(h=0.0), ValueError, "GaussianSmoothing.*h"),
    *[BadArg(f"MeZO-distribution={v!r}", lambda v=v: tz.m.MeZO(distribution=v), (ValueError, TypeError), "MeZO.*distribution") for v in ["sphere", None]],
    *[BadArg(f"ForwardGradient-jvp_method={v!r}", lambda v=v: tz.m.ForwardGradient(jvp_method=v), (ValueError, TypeError), "ForwardGradient.*jvp_method") for v in ["backward", "jvp"]],
    *[BadArg(f"GaussNewton-reg={v!r}", lambda v=v: tz.m.GaussNewton(reg=v), (ValueError, TypeError), "GaussNewton.*reg") for v in [-1.0, NAN, None]],
    *[BadArg(f"GaussNewton-maxiter={v!r}", lambda v=v: tz.m.GaussNewton(maxiter=v), (ValueError, TypeError), "GaussNewton.*maxiter") for v in [0, 2.5]],
    BadArg("GaussNewton-matrix_free=1", lambda: tz.m.GaussNewton(matrix_free=1), TypeError, "GaussNewton.*matrix_free"),
    *[BadArg(f"LevenbergMarquardt-more={v!r}", lambda v=v: tz.m.LevenbergMarquardt(more=v), TypeError, "LevenbergMarquardt.*more") for v in [1, "yes"]],
    BadArg("LevenbergMarquardt-hess_module=SumOfSquares", lambda: tz.m.LevenbergMarquardt(tz.m.SumOfSquares()), TypeError, "LevenbergMarquardt.*hess_module"),
]
