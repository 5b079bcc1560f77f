"""Registry entries for the control modules: GradientAccumulation, Split, Alternate, Multistep, Wrap.

``Split`` is built with predicates here (the generic tests pass plain tensors, without names);
name patterns are tested on a real model in tests/modules/control/test_control_split.py.
"""
from __future__ import annotations

import math

import torch

import torchzero as tz

from . import BadArg, Case

NAN, INF = math.nan, math.inf


def _is_matrix(p):
    return p.ndim >= 2


def _is_scalar(p):
    return p.ndim == 0


CASES = [
    Case("GradientAccumulation", lambda: tz.m.GradientAccumulation(2), ("GradientAccumulation",)),
    Case("GradientAccumulation-sum-nostop", lambda: tz.m.GradientAccumulation(3, mean=False, stop=False), ("GradientAccumulation",)),
    Case("GradientAccumulation-Adam", lambda: [tz.m.GradientAccumulation(2), tz.m.Adam()], ("GradientAccumulation",)),
    Case("Split-predicate", lambda: tz.m.Split(_is_matrix, tz.m.Adam(), [tz.m.ClipNorm(0.5), tz.m.Adam(beta1=0.5)]), ("Split",)),
    Case("Split-identity-branch", lambda: tz.m.Split(_is_scalar, None, [tz.m.Adam(), tz.m.Mul(0.5)]), ("Split",)),
    Case("Split-accumulating-branch", lambda: tz.m.Split(_is_matrix, tz.m.GradientAccumulation(2), tz.m.Adam()), ("Split",)),
    Case("Alternate", lambda: tz.m.Alternate(tz.m.Adam(), [tz.m.Sign(), tz.m.Mul(0.1)]), ("Alternate",)),
    Case("Alternate-steps-per-module", lambda: tz.m.Alternate(tz.m.Adam(), tz.m.Adam(beta1=0.5), tz.m.Identity(), steps=(2, 1, 1)), ("Alternate",)),
    Case("Multistep-1", lambda: tz.m.Multistep([tz.m.Adam(), tz.m.LR(0.1)], 1), ("Multistep",)),
    Case("Multistep-3", lambda: tz.m.Multistep([tz.m.Adam(), tz.m.LR(0.1)], 3), ("Multistep",), needs_closure=True),
    Case("Wrap-Adam", lambda: tz.m.Wrap(torch.optim.Adam, lr=0.1), ("Wrap",), tags=frozenset({"torch-optimizer"})),
    Case("Wrap-SGD-momentum", lambda: tz.m.Wrap(torch.optim.SGD, 1.0, momentum=0.9, nesterov=True), ("Wrap",)),
    Case("Wrap-AdamW-amsgrad", lambda: tz.m.Wrap(torch.optim.AdamW, lr=0.1, amsgrad=True, weight_decay=0.1), ("Wrap",), tags=frozenset({"torch-optimizer"})),
]


def _bad(cls_name: str, arg: str, make, shown) -> BadArg:
    return BadArg(f"{cls_name}-{arg}={shown!r}", make, (ValueError, TypeError), rf"{cls_name}.*{arg}")


def _ga(arg, v):
    kw = {"n": 2, arg: v}
    return _bad("GradientAccumulation", arg, lambda: tz.m.GradientAccumulation(**kw), v)


def _split(arg, v):
    kw = {"filter": _is_matrix, "true": None, "false": None, arg: v}
    return _bad("Split", arg, lambda: tz.m.Split(**kw), v)


def _alt_steps(v):
    return _bad("Alternate", "steps", lambda: tz.m.Alternate(tz.m.Adam(), tz.m.Sign(), steps=v), v)


def _alt_modules(mods):
    return _bad("Alternate", "modules", lambda: tz.m.Alternate(*mods), mods)


def _multistep(arg, v):
    kw = {"module": tz.m.Adam(), "steps": 2, arg: v}
    return _bad("Multistep", arg, lambda: tz.m.Multistep(**kw), v)


def _wrap(arg, opt_fn=torch.optim.Adam, **kwargs):
    return _bad("Wrap", arg, lambda: tz.m.Wrap(opt_fn, **kwargs), kwargs.get(arg, opt_fn))


BAD_ARGS = [
    *[_ga("n", v) for v in [0, -1, 1.5, "4", None, True, INF]],
    *[_ga(a, v) for a in ("mean", "stop") for v in [1, "yes", None]],
    *[_split("filter", v) for v in [3, 1.5, None, True, [], [3], [torch.zeros(1), 2.0], {"a": 1}, b"*.bias", "", int]],
    *[_split(a, v) for a in ("true", "false") for v in ["Adam", 1, [tz.m.Adam(), 1]]],
    *[_alt_steps(v) for v in [0, -1, 1.5, "2", None, True, (1,), (1, 0), (1, 2, 3), (1, 1.5)]],
    *[_alt_modules(m) for m in [(), ("Adam",), (tz.m.Adam(), 1), (tz.m.Adam,)]],
    *[_multistep("steps", v) for v in [0, -1, 1.5, "3", None, True]],
    *[_multistep("module", v) for v in [None, "Adam", 3, tz.m.Adam]],
    *[_wrap("opt_fn", opt_fn=v) for v in [3, None, "Adam", torch.optim.Adam([torch.zeros(1, requires_grad=True)]), lambda ps: 3]],
    _wrap("lr", lr=-1.0),
    _wrap("lr", lr="fast"),
    _wrap("betas", betas=(0.9, 1.5)),
    _wrap("eps", eps=-1e-8),
    _wrap("weight_decay", weight_decay=-0.1),
    _wrap("momentum", torch.optim.SGD, lr=0.1, momentum=-0.9),
    _wrap("unknown_arg", unknown_arg=1),
]
